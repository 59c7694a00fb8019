"""Benchmark reports: per-solver summaries against a baseline, as terminal, Markdown and CSV.

The headline figure is COSMA's: the reduction of non-compulsory traffic against the
greedy baseline, ``1 - solver / baseline`` per cell, averaged. Cells where the baseline
already has zero non-compulsory traffic are *trivial* (the budget is loose enough that
nobody spills): they are counted apart and left out of the averages, so that zeros do
not dilute, or flatter, the figures (ANCHORS.md, "Where the comparison is meaningful").

A *cell* here is (workload, scope, budget); each solver has one row per cell. The best
bound of a cell is the highest ``lower_bound_bytes`` any solver without an error
reported; a solver's gap is ``(value - best bound) / value`` (0 when value is 0).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.bench.rows import CellId, Row, cell_id, has_plan, solver_label
from memplan.io.files import atomic_write_text
from memplan.units import format_bytes

if TYPE_CHECKING:
    from rich.table import Table

#: Budgets listed first, in this order; others follow in order of appearance.
_BUDGET_RANK = {"MR": 0, "MH": 1, "MP": 2}
_SCOPE_RANK = {"activations": 0, "all": 1}


def ordered_rows(rows: Iterable[Row], baseline: str | None = None) -> list[Row]:
    """Rows by workload (first seen), scope, budget (MR, MH, MP, then others), solver.

    Workers finish out of order; reports list cells in a stable order instead, with
    the baseline solver first.
    """
    rows = list(rows)
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
    cells: int  # rows of this solver in the group
    plans: int  # rows with a valid plan
    optimal: int  # rows proven optimal
    infeasible: int  # rows proven infeasible
    timeouts: int  # rows that ran out of time (killed or not)
    errors: int  # rows that raised, crashed or returned an invalid plan
    non_compulsory_bytes: int  # sum over rows with a plan
    compared: int  # cells where the baseline spills and both have a plan
    trivial: int  # cells where the baseline's plan has zero non-compulsory traffic
    missing: int  # cells where the baseline has a plan and this solver has none
    mean_reduction: float | None  # mean of 1 - solver/baseline over compared cells
    total_reduction: float | None  # 1 - sum(solver)/sum(baseline) over compared cells
    bounded: int  # rows with a plan in cells that have a bound
    mean_gap: float | None  # mean gap to the cell's best bound over bounded rows
    best: int  # rows reaching the cell's lowest non-compulsory traffic
    mean_solve_s: float | None  # mean solve wall time (rows that report it)
    max_solve_s: float | None  # slowest solve wall time
    max_rss_bytes: int | None  # largest worker peak memory


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


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
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((str(row["scope"]), str(row["budget"]), solver_label(row)), []).append(
            row
        )
        if overall:
            groups.setdefault(("*", "*", solver_label(row)), []).append(row)
    order = _first_seen(rows)
    keys = sorted(groups, key=lambda k: (k[0] == "*", order.get(k[:2], 0), order.get(k[2], 0)))
    return [_summary(key, groups[key], by_cell, baseline) for key in keys]


def _first_seen(rows: Sequence[Row]) -> dict[Any, int]:
    """Order of first appearance of (scope, budget) pairs and of solvers."""
    order: dict[Any, int] = {}
    for row in rows:
        order.setdefault((str(row["scope"]), str(row["budget"])), len(order))
        order.setdefault(solver_label(row), len(order))
    return order


def _best_bound(cell_rows: Mapping[str, Row]) -> int | None:
    bounds = [
        int(r["lower_bound_bytes"])
        for r in cell_rows.values()
        if r.get("status") != "error" and r.get("lower_bound_bytes") is not None
    ]
    return max(bounds) if bounds else None


def _summary(
    key: tuple[str, str, str],
    group: list[Row],
    by_cell: Mapping[CellId, Mapping[str, Row]],
    baseline: str | None,
) -> SolverSummary:
    scope, budget, solver = key
    with_plan = [r for r in group if has_plan(r)]
    reductions: list[float] = []
    sum_solver = sum_base = 0
    trivial = missing = 0
    gaps: list[float] = []
    best = 0
    for row in group:
        cell = by_cell[cell_id(row)]
        base = cell.get(baseline) if baseline else None
        if base is not None and has_plan(base):
            base_value = int(base["non_compulsory_bytes"])
            if not has_plan(row):
                missing += 1
            elif base_value == 0:
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
            bound = _best_bound(cell)
            if bound is not None:
                gaps.append(0.0 if value == 0 else max(0.0, (value - bound) / value))
    times = [float(r["solve_wall_s"]) for r in group if r.get("solve_wall_s") is not None]
    rss = [int(r["worker_maxrss_bytes"]) for r in group if r.get("worker_maxrss_bytes")]
    statuses = [r.get("status") for r in group]
    compare = baseline is not None and solver != baseline
    return SolverSummary(
        scope=scope,
        budget=budget,
        solver=solver,
        cells=len(group),
        plans=len(with_plan),
        optimal=statuses.count("optimal"),
        infeasible=statuses.count("infeasible"),
        timeouts=statuses.count("timeout"),
        errors=statuses.count("error"),
        non_compulsory_bytes=sum(int(r["non_compulsory_bytes"]) for r in with_plan),
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
    )


# --------------------------------------------------------------------------- formatting
def _pct(value: float | None) -> str:
    """A traffic change: a reduction of 0.84 prints as -84.0%."""
    return "-" if value is None else f"{-100.0 * value:+.1f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} s" if value >= 0.01 else f"{value * 1e3:.2g} ms"


#: Summary columns: header and how to format a SolverSummary.
_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("scope", lambda s: s.scope),
    ("budget", lambda s: s.budget),
    ("solver", lambda s: s.solver),
    ("cells", lambda s: str(s.cells)),
    ("plans", lambda s: str(s.plans)),
    ("optimal", lambda s: str(s.optimal)),
    ("timeout", lambda s: str(s.timeouts)),
    ("error", lambda s: str(s.errors)),
    ("infeasible", lambda s: str(s.infeasible)),
    ("non-compulsory", lambda s: format_bytes(s.non_compulsory_bytes)),
    ("vs baseline (mean)", lambda s: _pct(s.mean_reduction)),
    ("vs baseline (total)", lambda s: _pct(s.total_reduction)),
    ("compared", lambda s: str(s.compared)),
    ("trivial", lambda s: str(s.trivial)),
    ("no plan", lambda s: str(s.missing)),
    ("gap to bound", lambda s: "-" if s.mean_gap is None else f"{100 * s.mean_gap:.1f}%"),
    ("best", lambda s: str(s.best)),
    ("mean time", lambda s: _seconds(s.mean_solve_s)),
    ("max time", lambda s: _seconds(s.max_solve_s)),
)


#: The narrower set of columns for the terminal.
_COMPACT: tuple[tuple[str, Any], ...] = (
    ("scope", lambda s: s.scope),
    ("budget", lambda s: s.budget),
    ("solver", lambda s: s.solver),
    ("plans/cells", lambda s: f"{s.plans}/{s.cells}"),
    ("opt/t-o/err", lambda s: f"{s.optimal}/{s.timeouts}/{s.errors}"),
    ("non-comp.", lambda s: format_bytes(s.non_compulsory_bytes)),
    ("vs base mean", lambda s: _pct(s.mean_reduction)),
    ("vs base total", lambda s: _pct(s.total_reduction)),
    ("cmp/triv", lambda s: f"{s.compared}/{s.trivial}"),
    ("gap", lambda s: "-" if s.mean_gap is None else f"{100 * s.mean_gap:.0f}%"),
    ("time", lambda s: _seconds(s.mean_solve_s)),
)


def summary_cells(
    summaries: Sequence[SolverSummary], compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted rows of the summary table (all columns, or the compact set)."""
    columns = _COMPACT if compact else _COLUMNS
    headers = [name for name, _ in columns]
    return headers, [[fmt(s) for _, fmt in columns] for s in summaries]


def rich_summary(summaries: Sequence[SolverSummary], baseline: str | None) -> Table:
    """The summary as a rich table for the terminal (compact columns; summary.md has all)."""
    from rich.table import Table
    from rich.text import Text

    title = "non-compulsory traffic"
    if baseline:
        title += f" vs {baseline} (trivial cells, where {baseline} has none, left out)"
    table = Table(title=Text(title), show_lines=False, pad_edge=False)
    headers, body = summary_cells(summaries, compact=True)
    for header in headers:
        table.add_column(
            header,
            justify="left" if header in ("scope", "budget", "solver") else "right",
            overflow="fold",
        )
    for summary, cells in zip(summaries, body, strict=True):
        table.add_row(*map(Text, cells), style="bold" if summary.scope == "*" else None)
    return table


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def cell_matrix(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Per (workload, scope, budget): M_R, M_P, capacity and each solver's result."""
    rows = ordered_rows(rows)
    solvers = list(dict.fromkeys(solver_label(r) for r in rows))
    by_cell: dict[CellId, dict[str, Row]] = {}
    for row in rows:
        by_cell.setdefault(cell_id(row), {})[solver_label(row)] = row
    headers = ["workload", "ops", "scope", "budget", "MR", "MP", "capacity", *solvers]
    body = []
    for (workload, scope, budget), cell in by_cell.items():
        any_row = next(iter(cell.values()))
        entries = []
        for solver in solvers:
            entry = cell.get(solver)
            if entry is None:
                entries.append("")
            elif has_plan(entry):
                entries.append(
                    f"{format_bytes(int(entry['non_compulsory_bytes']))}"
                    + ("" if entry["status"] == "feasible" else f" ({entry['status']})")
                )
            else:
                entries.append(str(entry.get("status", "?")))
        body.append(
            [
                workload,
                str(any_row.get("graph_ops", "")),
                scope,
                budget,
                format_bytes(int(any_row.get("mr_bytes") or 0)),
                format_bytes(int(any_row.get("mp_bytes") or 0)),
                format_bytes(int(any_row.get("capacity_bytes") or 0)),
                *entries,
            ]
        )
    return headers, body


def failures(rows: Sequence[Row]) -> list[str]:
    """One line per error or killed timeout."""
    lines = []
    for row in rows:
        if row.get("status") == "error" or row.get("killed"):
            message = " ".join(str(row.get("message", "")).split())
            lines.append(
                f"{row['workload']} / {row['scope']} / {row['budget']} / {row['solver']}: "
                f"{row['status']}: {message[:300]}"
            )
    return lines


def markdown_report(rows: Sequence[Row], baseline: str | None) -> str:
    """The whole report as Markdown: summary, per-cell results, failures."""
    rows = ordered_rows(rows, baseline)
    baseline = resolve_baseline(rows, baseline)
    summaries = summarize(rows, baseline)
    parts = ["# memplan bench report\n"]
    parts.append(
        f"Non-compulsory DRAM traffic per solver. Baseline: {baseline or 'none'}. "
        "'vs baseline' is the change of non-compulsory traffic against the baseline over the "
        "cells where the baseline spills (mean of per-cell ratios, and of the totals); "
        "'trivial' cells (the baseline has no non-compulsory traffic) are counted apart. "
        "'gap to bound' is the mean relative gap to the best lower bound any solver proved "
        "for the cell; 'best' counts cells where the solver has the lowest traffic.\n"
    )
    headers, body = summary_cells(summaries)
    parts.append(markdown_table(headers, body))
    parts.append("\n## Per cell\n")
    headers, body = cell_matrix(rows)
    parts.append(markdown_table(headers, body))
    lines = failures(rows)
    if lines:
        parts.append("\n## Errors and killed timeouts\n")
        parts.extend(f"- {line}\n" for line in lines)
    return "\n".join(parts)


#: Flat CSV columns of cells.csv (nested fields are JSON-encoded).
CELL_COLUMNS = (
    "workload",
    "scope",
    "budget",
    "solver",
    "status",
    "killed",
    "non_compulsory_bytes",
    "compulsory_bytes",
    "traffic_bytes",
    "peak_bytes",
    "max_live_bytes",
    "latency_s",
    "energy_j",
    "lower_bound_bytes",
    "gap",
    "capacity_bytes",
    "budget_note",
    "mr_bytes",
    "mp_bytes",
    "graph_ops",
    "graph_tensors",
    "solve_wall_s",
    "cell_wall_s",
    "worker_maxrss_bytes",
    "time_limit_s",
    "options",
    "model_sha256",
    "source",
    "key",
    "message",
)


def _csv(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def cells_csv(rows: Sequence[Row]) -> str:
    """Every row, flat, one line per cell and solver."""
    out = []
    for row in rows:
        values = []
        for column in CELL_COLUMNS:
            value = row.get(column)
            values.append(json.dumps(value, sort_keys=True) if isinstance(value, dict) else value)
        out.append(values)
    return _csv(CELL_COLUMNS, out)


def summary_csv(summaries: Sequence[SolverSummary]) -> str:
    """The summaries with raw numbers (bytes, fractions, seconds)."""
    dicts = [asdict(s) for s in summaries]
    headers = list(dicts[0]) if dicts else [f for f in SolverSummary.__slots__]
    return _csv(headers, ([d[h] for h in headers] for d in dicts))


def write_reports(
    out_dir: str | Path, rows: Sequence[Row], baseline: str | None, figures: bool = True
) -> list[Path]:
    """Write summary.md, summary.csv, cells.csv and (optionally) figures/*.png.

    Returns:
        The files written.
    """
    out = Path(out_dir)
    rows = ordered_rows(rows, baseline)
    baseline = resolve_baseline(rows, baseline)
    summaries = summarize(rows, baseline)
    written = []
    for name, text in (
        ("summary.md", markdown_report(rows, baseline)),
        ("summary.csv", summary_csv(summaries)),
        ("cells.csv", cells_csv(rows)),
    ):
        atomic_write_text(out / name, text, what="report", create_folders=True)
        written.append(out / name)
    if figures and rows:
        from memplan.bench.figures import write_figures

        written.extend(write_figures(out / "figures", rows, baseline))
    return written
