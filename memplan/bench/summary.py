"""Benchmark summaries: the numbers behind every report, per solver and group of cells.

A *cell* is (workload, scope, budget); each solver has one row per cell (the latest, see
:func:`memplan.bench.rows.merge_rows`). :func:`summarize` gives one
:class:`SolverSummary` per solver of each (scope, budget) group and overall, over the
cells every solver of the group finished (it counts the rows it leaves out), with the
solver's traffic set against the baseline's over the cells where both have a plan, and
its mean reduction over the cells where the baseline spills (trivial cells apart).
:mod:`memplan.bench.report` writes them as Markdown and CSV, :mod:`memplan.bench.terminal`
as rich tables.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memplan.bench.rows import (
    CellId,
    Row,
    best_bound,
    cell_id,
    has_plan,
    merge_rows,
    solve_time,
    solver_label,
)
from memplan.solver import relative_gap

#: Budgets listed first, in this order; others follow in order of appearance.
_BUDGET_RANK = {"MR": 0, "MH": 1, "MP": 2}


_SCOPE_RANK = {"activations": 0, "all": 1}


def ordered_rows(rows: Iterable[Row], baseline: str | None = None) -> list[Row]:
    """Rows by workload (first seen), scope, budget (MR, MH, MP, then others), solver.

    Workers finish out of order; reports list cells in a stable order instead, with
    the baseline solver first.
    """
    rows = merge_rows(rows)
    seen: dict[tuple[str, str], int] = {}
    label = resolve_baseline(rows, baseline)
    if label is not None:
        seen[("s", label)] = -1
    for row in rows:
        seen.setdefault(("w", str(row["workload"])), len(seen))
        seen.setdefault(("b", str(row["budget"])), len(seen))
        seen.setdefault(("s", solver_label(row)), len(seen))

    def key(row: Row) -> tuple[int, int, int, int, int]:
        budget = str(row["budget"])
        return (
            seen[("w", str(row["workload"]))],
            _SCOPE_RANK.get(str(row["scope"]), 2),
            _BUDGET_RANK.get(budget, 3),
            seen[("b", budget)],
            seen[("s", solver_label(row))],
        )

    return sorted(rows, key=key)


def default_baseline(names: Mapping[str, str]) -> str | None:
    """The baseline when none is given, among ``names`` (each label or spec as written,
    mapped to its solver's name): the one written ``greedy``, else the only one of solver
    greedy; None (then the first solver is) when there is no such one. The same rule for
    the specs of a run (``memplan bench``) and the labels of its rows (``bench report``)."""
    if "greedy" in names:
        return "greedy"
    greedy = [label for label, name in names.items() if name == "greedy"]
    return greedy[0] if len(greedy) == 1 else None


def resolve_baseline(rows: Iterable[Row], baseline: str | None) -> str | None:
    """The solver label ``baseline`` names: itself, or the one label of that solver name."""
    if baseline is None:
        return None
    labels = {solver_label(r): str(r["solver"]) for r in rows}
    if baseline in labels:
        return baseline
    matches = [label for label, name in labels.items() if name == baseline]
    return matches[0] if len(matches) == 1 else baseline


@dataclass(frozen=True, slots=True)
class SolverSummary:
    """One solver's results over a group of cells (a scope and budget, or everything)."""

    scope: str  # scope, or "*" for every scope
    budget: str  # budget spec, or "*" for every budget
    solver: str  # solver name
    cells: int  # rows of this solver in the group's common cells (every solver finished)
    left_out: int  # rows of this solver in cells another solver of the group has not finished
    plans: int  # rows with a valid plan
    optimal: int  # rows with status OPTIMAL (proven over all plans)
    infeasible: int  # rows proven infeasible
    timeouts: int  # rows that ran out of time (killed or not)
    errors: int  # rows that raised, crashed or returned an invalid plan
    non_compulsory_bytes: int | None  # sum over rows with a plan; None: no plan
    common: int  # cells where it and the baseline both have a plan (no baseline plan: its plans)
    common_bytes: int | None  # this solver's traffic summed over the common cells; None: none
    baseline_plans: int | None  # the baseline's plans in these cells; None: no baseline plan
    baseline_common_bytes: int | None  # the baseline's traffic over the common cells
    compared: int  # cells where the baseline spills and both have a plan
    trivial: int  # cells where the baseline's plan has zero non-compulsory traffic
    missing: int  # cells where the baseline has a plan and this solver has none
    mean_reduction: float | None  # mean of 1 - solver/baseline over compared cells
    total_reduction: float | None  # 1 - sum(solver)/sum(baseline) over compared cells
    bounded: int  # rows with a plan in cells that have a global bound
    mean_gap: float | None  # mean gap to the cell's best bound over bounded rows; None: none
    best: int  # rows reaching the cell's lowest non-compulsory traffic
    mean_solve_s: float | None  # mean solve wall time (rows that solved: not below M_R)
    max_solve_s: float | None  # slowest solve wall time
    max_rss_bytes: int | None  # largest worker peak memory
    median_reduction: float | None = None  # median of 1 - solver/baseline over compared cells
    median_solve_s: float | None = None  # median solve wall time (rows that solved)

    @property
    def partial(self) -> bool:
        """Whether this solver has plans and its common cells with the baseline are fewer
        than its plans or the baseline's: its total and change are then over those alone."""
        if self.baseline_plans is None or not self.plans:
            return False
        return not self.common == self.plans == self.baseline_plans


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    rows: Iterable[Row], baseline: str | None = "greedy", overall: bool = True
) -> list[SolverSummary]:
    """Per (scope, budget, solver) summaries, then one per solver over everything.

    Args:
        rows: result rows (latest per key).
        baseline: the solver to compare against; None or absent from the rows = no
            reduction figures.
        overall: add the ``("*", "*", solver)`` summaries.
    """
    rows = ordered_rows(rows, baseline)
    baseline = resolve_baseline(rows, baseline)
    by_cell: dict[CellId, dict[str, Row]] = {}
    for row in rows:
        by_cell.setdefault(cell_id(row), {})[solver_label(row)] = row
    # The solvers compared in each (scope, budget) group, and over everything.
    compared: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        compared.setdefault((str(row["scope"]), str(row["budget"])), set()).add(solver_label(row))
        compared.setdefault(("*", "*"), set()).add(solver_label(row))
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((str(row["scope"]), str(row["budget"]), solver_label(row)), []).append(
            row
        )
        if overall:
            groups.setdefault(("*", "*", solver_label(row)), []).append(row)
    order = _first_seen(rows)
    keys = sorted(groups, key=lambda k: (k[0] == "*", order.get(k[:2], 0), order.get(k[2], 0)))
    summaries = []
    for key in keys:
        solvers = compared[key[:2]]
        common = [r for r in groups[key] if solvers <= by_cell[cell_id(r)].keys()]
        summaries.append(_summary(key, common, len(groups[key]) - len(common), by_cell, baseline))
    return summaries


def common_cells(rows: Iterable[Row]) -> tuple[int, int]:
    """Cells (workload, scope, budget) that every solver of their scope and budget
    finished, and all cells.

    Returns:
        ``(common, total)``: the summaries compare solvers over the ``common`` cells.
    """
    rows = merge_rows(rows)
    labels: dict[tuple[str, str], set[str]] = {}
    by_cell: dict[CellId, set[str]] = {}
    for row in rows:
        labels.setdefault((str(row["scope"]), str(row["budget"])), set()).add(solver_label(row))
        by_cell.setdefault(cell_id(row), set()).add(solver_label(row))
    common = sum(1 for (_, scope, budget), s in by_cell.items() if labels[(scope, budget)] <= s)
    return common, len(by_cell)


def _first_seen(rows: Sequence[Row]) -> dict[Any, int]:
    """Order of first appearance of (scope, budget) pairs and of solvers."""
    order: dict[Any, int] = {}
    for row in rows:
        order.setdefault((str(row["scope"]), str(row["budget"])), len(order))
        order.setdefault(solver_label(row), len(order))
    return order


def _summary(
    key: tuple[str, str, str],
    group: list[Row],
    left_out: int,
    by_cell: Mapping[CellId, Mapping[str, Row]],
    baseline: str | None,
) -> SolverSummary:
    scope, budget, solver = key
    with_plan = [r for r in group if has_plan(r)]
    reductions: list[float] = []
    sum_solver = sum_base = 0
    trivial = missing = 0
    baseline_plans = common = common_bytes = baseline_common_bytes = 0
    gaps: list[float] = []
    best = 0
    for row in group:
        cell = by_cell[cell_id(row)]
        base = cell.get(baseline) if baseline else None
        if base is not None and has_plan(base):
            baseline_plans += 1
            base_value = int(base["non_compulsory_bytes"])
            if not has_plan(row):
                missing += 1
                continue
            common += 1
            common_bytes += int(row["non_compulsory_bytes"])
            baseline_common_bytes += base_value
            if base_value == 0:
                trivial += 1
            else:
                value = int(row["non_compulsory_bytes"])
                reductions.append(1.0 - value / base_value)
                sum_solver += value
                sum_base += base_value
        if has_plan(row):
            value = int(row["non_compulsory_bytes"])
            values = [int(r["non_compulsory_bytes"]) for r in cell.values() if has_plan(r)]
            best += value == min(values)
            gap = relative_gap(value, best_bound(cell.values())[0])
            if gap is not None:
                gaps.append(gap)
    # Cells below M_R are infeasible without a solve: counted as infeasible, not timed.
    times = [t for t in map(solve_time, group) if t is not None]
    rss = [int(r["worker_maxrss_bytes"]) for r in group if r.get("worker_maxrss_bytes")]
    statuses = [r.get("status") for r in group]
    compare = baseline is not None and solver != baseline
    total = sum(int(r["non_compulsory_bytes"]) for r in with_plan)
    if not baseline_plans:  # nothing to set against: the solver's own plans
        common, common_bytes, baseline_common_bytes = len(with_plan), total, 0
    return SolverSummary(
        scope=scope,
        budget=budget,
        solver=solver,
        cells=len(group),
        left_out=left_out,
        plans=len(with_plan),
        optimal=statuses.count("optimal"),
        infeasible=statuses.count("infeasible"),
        timeouts=statuses.count("timeout"),
        errors=statuses.count("error"),
        non_compulsory_bytes=total if with_plan else None,
        common=common,
        common_bytes=common_bytes if common else None,
        baseline_plans=baseline_plans or None,
        baseline_common_bytes=baseline_common_bytes if baseline_plans and common else None,
        compared=len(reductions),
        trivial=trivial,
        missing=missing,
        mean_reduction=_mean(reductions) if compare else None,
        total_reduction=(1.0 - sum_solver / sum_base) if compare and sum_base else None,
        bounded=len(gaps),
        mean_gap=_mean(gaps),
        best=best,
        mean_solve_s=_mean(times),
        max_solve_s=max(times) if times else None,
        max_rss_bytes=max(rss) if rss else None,
        median_reduction=_median(reductions) if compare else None,
        median_solve_s=_median(times),
    )
