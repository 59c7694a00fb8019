"""Result rows of ``memplan bench``: the few facts every report and figure reads.

A results file may hold rows of several runs: an earlier solver version, a capacity
resolved from a heuristic M_P that has since been proven, another ``--dtype-bytes``.
Reports merge only rows that answer the same question: :func:`merge_rows` keeps the
latest row of each (workload, scope, budget, solver) and refuses to put rows of
different capacities side by side in one cell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memplan.errors import ConfigError
from memplan.units import format_bytes

Row = Mapping[str, Any]
CellId = tuple[str, str, str]  # (workload, scope, budget)


def cell_id(row: Row) -> CellId:
    """The (workload, scope, budget) a row belongs to."""
    return (str(row["workload"]), str(row["scope"]), str(row["budget"]))


def solver_label(row: Row) -> str:
    """The solver's name, with its options when it has any: ``greedy[order=min-peak]``."""
    options = row.get("options") or {}
    if not options:
        return str(row["solver"])
    return f"{row['solver']}[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]"


def has_plan(row: Row) -> bool:
    """Whether the row carries a valid plan's scores."""
    return row.get("status") != "error" and row.get("non_compulsory_bytes") is not None


def below_mr(row: Row) -> bool:
    """Whether the row's budget is below M_R: no plan exists, so no solver searched.

    Solvers answer such a cell INFEASIBLE at once (:func:`memplan.solver.infeasible_below_mr`);
    its microseconds are not a solve time, and reports leave them out of times.
    """
    capacity, mr = row.get("capacity_bytes"), row.get("mr_bytes")
    return capacity is not None and mr is not None and int(capacity) < int(mr)


def solve_time(row: Row) -> float | None:
    """The row's solve wall time in seconds, or None when no solve ran (or none reported):
    a cell below M_R without a plan has none."""
    value = row.get("solve_wall_s")
    if value is None or (below_mr(row) and not has_plan(row)):
        return None
    return float(value)


def merge_rows(rows: Iterable[Row]) -> list[Row]:
    """The latest row of each (cell, solver label), checked to share one capacity per cell.

    Args:
        rows: rows in the order they were written (later rows replace earlier ones of
            the same cell and solver: a rerun after a new solver version, say).

    Raises:
        ConfigError: two rows of one cell were solved at different capacities (their
            runs resolved the budget differently); they cannot be compared.
    """
    latest: dict[tuple[CellId, str], Row] = {}
    for row in rows:
        key = (cell_id(row), solver_label(row))
        latest.pop(key, None)
        latest[key] = row
    capacities: dict[CellId, dict[int, str]] = {}
    for (cell, label), row in latest.items():
        if row.get("capacity_bytes") is not None:
            capacities.setdefault(cell, {}).setdefault(int(row["capacity_bytes"]), label)
    for (workload, scope, budget), seen in capacities.items():
        if len(seen) > 1:
            shown = " and ".join(f"{format_bytes(c)} ({label})" for c, label in seen.items())
            raise ConfigError(
                f"cannot merge results: cell {workload} / {scope} / {budget} has rows at "
                f"capacities {shown}, from runs that resolved the budget differently (M_P, "
                "accelerator or --dtype-bytes); rerun the same `memplan bench` command (the "
                "cells whose capacity changed run again) or use a new output folder"
            )
    return list(latest.values())


def restricted_optimum(row: Row) -> str | None:
    """``"order"`` when a row's plan is optimal only under a restriction (``optimal_for_order``).

    Such a row's value is not a bound over all plans; the name of the restriction is
    shown beside it instead.
    """
    stats = row.get("stats") or {}
    for name, value in stats.items():
        if str(name).startswith("optimal_for_") and value is True:
            return str(name).removeprefix("optimal_for_").replace("_", " ")
    return None


def global_bound(row: Row) -> int | None:
    """The row's lower bound over all valid plans of its problem, or None.

    Error rows and rows optimal only under a restriction contribute none, whatever they
    carry; a status alone (OPTIMAL) is never taken as a bound.
    """
    bound = row.get("lower_bound_bytes")
    if bound is None or row.get("status") == "error" or restricted_optimum(row):
        return None
    return int(bound)


def best_bound(cell_rows: Iterable[Row]) -> tuple[int | None, list[str]]:
    """The highest global lower bound of a cell's rows, and the bounds that are not bounds.

    A "bound" above the traffic of a valid plan in the same cell contradicts that plan
    (a solver bug): it is left out and described in the returned lines.
    """
    cell_rows = list(cell_rows)
    values = [int(r["non_compulsory_bytes"]) for r in cell_rows if has_plan(r)]
    best_plan = min(values, default=None)
    bounds, problems = [], []
    for row in cell_rows:
        bound = global_bound(row)
        if bound is None:
            continue
        if best_plan is not None and bound > best_plan:
            problems.append(
                f"{row['workload']} / {row['scope']} / {row['budget']} / {solver_label(row)}: "
                f"lower bound {bound} B is above a valid plan's {best_plan} B; ignored"
            )
            continue
        bounds.append(bound)
    return (max(bounds) if bounds else None), problems


def bound_problems(rows: Sequence[Row]) -> list[str]:
    """One line per reported bound that a valid plan of its cell contradicts."""
    by_cell: dict[CellId, list[Row]] = {}
    for row in rows:
        by_cell.setdefault(cell_id(row), []).append(row)
    return [line for group in by_cell.values() for line in best_bound(group)[1]]
