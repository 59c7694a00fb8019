"""Benchmark reports: per-solver summaries against a baseline, as terminal, Markdown and CSV.

The headline figure is COSMA's: the reduction of non-compulsory traffic against the
greedy baseline, ``1 - solver / baseline`` per cell, averaged. Cells where the baseline
already has zero non-compulsory traffic are *trivial* (the budget is loose enough that
nobody spills): they are counted apart and left out of the averages, so that zeros do
not dilute, or flatter, the figures (ANCHORS.md, "Where the comparison is meaningful").

A *cell* here is (workload, scope, budget); each solver has one row per cell (the latest,
see :func:`memplan.bench.rows.merge_rows`, which also refuses rows of one cell solved at
different capacities). The best bound of a cell is the highest *global* lower bound any
solver reported (a bound over all valid plans: never a status, never the optimum of an
order-restricted solve, see :func:`memplan.bench.rows.best_bound`); a solver's gap is
:func:`memplan.solver.relative_gap` of its value to that bound, and a row in a cell
without a bound has no gap ("–"), never 0.

Solvers are compared over the same cells: each summary row covers only the cells that
every solver of its group (its scope and budget; every solver, for the overall rows)
finished, and counts the rows it leaves out (an interrupted or partly resumed run). A
report of a folder whose run.json lists cells without a result says how many of them
are done (:func:`progress_line`). Within those, a solver's traffic is set against the
baseline's over the *common* cells, where both have a plan: a solver that errors on
half the cells has a total over the other half, which beside the baseline's total over
all of them would read as a saving. Such a total is marked and explained
(:func:`traffic_text`, :func:`common_notes`); a solver without any plan has no total
("–"), never "0 B".
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memplan.bench.rows import (
    CellId,
    Row,
    best_bound,
    bound_problems,
    cell_id,
    has_plan,
    merge_rows,
    restricted_optimum,
    solver_label,
)
from memplan.bench.summary import (
    SolverSummary,
    common_cells,
    ordered_rows,
    resolve_baseline,
    summarize,
)
from memplan.io.files import atomic_write_text
from memplan.units import format_bytes

#: Shown where a figure does not exist (no bound, no baseline, no time).
MISSING = "–"


def progress_line(out_dir: str | Path, rows: Iterable[Row]) -> str | None:
    """``"13 of 108 cells done; ..."`` when the folder's run.json plans cells that have
    no result yet (an interrupted run), else None.

    Args:
        out_dir: the results folder (its run.json lists the planned cells).
        rows: the folder's result rows.
    """
    from memplan.bench.runrecord import planned_cell, planned_cells

    planned = planned_cells(Path(out_dir))
    if not planned:
        return None
    rows = merge_rows(rows)
    have = {planned_cell(row) for row in rows}
    done = sum(1 for cell in planned if cell in have)
    if done == len(planned):
        return None
    common, total = common_cells(rows)
    return (
        f"partial results: {done} of {len(planned)} cells done (run the same `memplan bench` "
        f"command again to finish); solvers are compared over the {common} of {total} "
        "(workload, scope, budget) cells that every solver of their budget finished"
    )


# --------------------------------------------------------------------------- formatting
def change_text(change: float | None) -> str:
    """A relative change of traffic, signed: 0.133 prints as +13.3%, -0.84 as -84.0%.

    No change prints as 0.0% (never -0.0%); a change too small for one decimal keeps
    its sign and one significant digit: -0.04%.
    """
    if change is None:
        return MISSING
    percent = 100.0 * change
    if percent == 0:
        return "0.0%"
    return f"{percent:+.1f}%" if abs(percent) >= 0.05 else f"{percent:+.1g}%"


def percent_change(value: float | None) -> str:
    """A traffic reduction as a change: a reduction of 0.84 prints as -84.0%, none as 0.0%."""
    return change_text(None if value is None else -value)


#: Marks a total over fewer cells than the solver's or the baseline's plans.
PARTIAL_MARK = "*"


def traffic_text(summary: SolverSummary) -> str:
    """A summary's non-compulsory traffic over its common cells with the baseline.

    ``–`` when there are none (no plan); marked ``*`` when the common cells are fewer
    than the solver's or the baseline's plans (:func:`common_notes` says how many).
    """
    mark = PARTIAL_MARK if summary.partial else ""
    if summary.common_bytes is None:
        return MISSING + mark
    return format_bytes(summary.common_bytes) + mark


def common_notes(
    summaries: Iterable[SolverSummary],
    baseline: str | None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """What each ``*`` total is over: one line per :attr:`SolverSummary.partial` summary.

    ``flaky (activations / MR): over 1 cell where it and greedy both have a plan, of its
    1 and greedy's 2; greedy there: 480.00 KiB``.

    Args:
        summaries: from :func:`summarize`.
        baseline: the baseline's label.
        labels: short names to show for solver labels (the terminal's aliases).
    """
    labels = labels or {}
    lines = []
    for s in summaries:
        if not s.partial or baseline is None:
            continue
        where = "all scopes and budgets" if s.budget == "*" else f"{s.scope} / {s.budget}"
        name, base = labels.get(s.solver, s.solver), labels.get(baseline, baseline)
        line = (
            f"{name} ({where}): over {s.common} cell{'' if s.common == 1 else 's'} where it "
            f"and {base} both have a plan, of its {s.plans} and {base}'s {s.baseline_plans}"
        )
        if s.baseline_common_bytes is not None:
            line += f"; {base} there: {format_bytes(s.baseline_common_bytes)}"
        if s.common < s.plans and s.non_compulsory_bytes is not None:
            line += f"; {name} over all its plans: {format_bytes(s.non_compulsory_bytes)}"
        lines.append(line)
    return lines


def seconds(value: float | None) -> str:
    """``0.363 s``, ``4.2 ms``; the missing mark for None."""
    if value is None:
        return MISSING
    return f"{value:.3g} s" if value >= 0.01 else f"{value * 1e3:.2g} ms"


def gap_text(summary: SolverSummary, digits: int = 1) -> str:
    """Mean gap, with how many rows had a bound when not all did: ``8.0% (7/9)``."""
    if summary.mean_gap is None:
        return MISSING
    text = f"{100 * summary.mean_gap:.{digits}f}%"
    return (
        text if summary.bounded == summary.plans else f"{text} ({summary.bounded}/{summary.plans})"
    )


#: Summary columns of summary.md: header and how to format a SolverSummary.
_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("scope", lambda s: s.scope),
    ("budget", lambda s: s.budget),
    ("solver", lambda s: s.solver),
    ("cells", lambda s: str(s.cells)),
    ("left out", lambda s: str(s.left_out)),
    ("plans", lambda s: str(s.plans)),
    ("optimal", lambda s: str(s.optimal)),
    ("timeout", lambda s: str(s.timeouts)),
    ("error", lambda s: str(s.errors)),
    ("infeasible", lambda s: str(s.infeasible)),
    ("non-compulsory", traffic_text),
    ("vs baseline (mean)", lambda s: percent_change(s.mean_reduction)),
    ("vs baseline (median)", lambda s: percent_change(s.median_reduction)),
    ("vs baseline (total)", lambda s: percent_change(s.total_reduction)),
    ("common", lambda s: str(s.common)),
    ("compared", lambda s: str(s.compared)),
    ("trivial", lambda s: str(s.trivial)),
    ("no plan", lambda s: str(s.missing)),
    ("bounded", lambda s: str(s.bounded)),
    ("gap to bound", gap_text),
    ("best", lambda s: str(s.best)),
    ("mean time", lambda s: seconds(s.mean_solve_s)),
    ("median time", lambda s: seconds(s.median_solve_s)),
    ("max time", lambda s: seconds(s.max_solve_s)),
)


def summary_cells(summaries: Sequence[SolverSummary]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted rows of the full summary table (summary.md)."""
    headers = [name for name, _ in _COLUMNS]
    return headers, [[fmt(s) for _, fmt in _COLUMNS] for s in summaries]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def row_result(row: Row) -> str:
    """A row's outcome in a cell table: ``1.20 MiB (optimal)``, ``timeout``, ``error``.

    A plan optimal only under a restriction says so: ``2.1 MiB (optimal for order)``.
    """
    if not has_plan(row):
        return str(row.get("status", "?")) + (" (killed)" if row.get("killed") else "")
    text = format_bytes(int(row["non_compulsory_bytes"]))
    restriction = restricted_optimum(row)
    if restriction is not None:
        return f"{text} (optimal for {restriction})"
    return text if row["status"] == "feasible" else f"{text} ({row['status']})"


def mp_text(row: Row) -> str:
    """M_P of a row's cell, marked ``proven`` or ``heuristic``."""
    if row.get("mp_bytes") is None:
        return MISSING
    proven = row.get("mp_proven")
    mark = "" if proven is None else " (proven)" if proven else " (heuristic)"
    return format_bytes(int(row["mp_bytes"])) + mark


def cell_matrix(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Per (workload, scope, budget): M_R, M_P, capacity, best bound, each solver's result."""
    rows = ordered_rows(rows)
    solvers = list(dict.fromkeys(solver_label(r) for r in rows))
    by_cell: dict[CellId, dict[str, Row]] = {}
    for row in rows:
        by_cell.setdefault(cell_id(row), {})[solver_label(row)] = row
    headers = ["workload", "ops", "scope", "budget", "MR", "MP", "capacity", "bound", *solvers]
    body = []
    for (workload, scope, budget), cell in by_cell.items():
        any_row = next(iter(cell.values()))
        bound = best_bound(cell.values())[0]
        body.append(
            [
                workload,
                str(any_row.get("graph_ops", "")),
                scope,
                budget,
                format_bytes(int(any_row.get("mr_bytes") or 0)),
                mp_text(any_row),
                format_bytes(int(any_row.get("capacity_bytes") or 0)),
                MISSING if bound is None else format_bytes(bound),
                *(row_result(cell[s]) if s in cell else "" for s in solvers),
            ]
        )
    return headers, body


def failures(rows: Sequence[Row]) -> list[str]:
    """One line per error, killed timeout or solve that returned past its time limit
    (within the grace), and per bound that a valid plan contradicts."""
    lines = []
    for row in rows:
        if row.get("status") == "error" or row.get("killed") or row.get("over_time_limit"):
            message = " ".join(str(row.get("message", "")).split())
            lines.append(
                f"{row['workload']} / {row['scope']} / {row['budget']} / {solver_label(row)}: "
                f"{row['status']}: {message[:300]}"
            )
    return lines + bound_problems(rows)


def mp_provenance(rows: Sequence[Row]) -> str:
    """How many (workload, scope) pairs had M_P proven: ``M_P proven for 12 of 18 ...``."""
    pairs: dict[tuple[str, str], bool | None] = {}
    for row in rows:
        pairs[(str(row["workload"]), str(row["scope"]))] = row.get("mp_proven")
    proven = sum(1 for p in pairs.values() if p)
    return (
        f"M_P proven for {proven} of {len(pairs)} (workload, scope) pairs; the others use "
        "the heuristic min-peak order's peak, an upper bound on M_P."
    )


def markdown_report(rows: Sequence[Row], baseline: str | None, progress: str | None = None) -> str:
    """The whole report as Markdown: summary, per-cell results, failures.

    Args:
        rows: result rows.
        baseline: the solver to compare against.
        progress: the :func:`progress_line` of a partial run, shown first.
    """
    rows = ordered_rows(rows, baseline)
    baseline = resolve_baseline(rows, baseline)
    summaries = summarize(rows, baseline)
    parts = ["# memplan bench report\n"]
    if progress:
        parts.append(f"**{progress}.**\n")
    parts.append(
        f"Non-compulsory DRAM traffic per solver. Baseline: {baseline or 'none'}. "
        "Each summary row covers only the cells that every solver of its scope and budget "
        "finished ('cells'; every solver, for the overall rows); 'left out' counts the "
        "solver's other rows, which no figure includes. "
        "'non-compulsory' is the solver's total over the 'common' cells, where both it and "
        "the baseline have a plan (– when none; marked * and explained under the table when "
        "these are fewer than its plans or the baseline's). "
        "'vs baseline' is the change of non-compulsory traffic against the baseline over the "
        "'compared' cells, the common cells where the baseline spills (mean of per-cell "
        "ratios, and of the totals); 'trivial' cells (the baseline has no non-compulsory "
        "traffic) are counted apart. "
        "'optimal' counts rows proven optimal over all plans. 'gap to bound' is the mean "
        "relative gap to the best global lower bound any solver reported for the cell, over "
        "the 'bounded' rows (with their count when not every plan has one; – when none "
        "has); 'best' counts cells where the solver has the lowest traffic. 'mean time' and "
        "'max time' are over the cells a solver solved: a budget below M_R is 'infeasible' "
        "without a solve and is not timed. "
        f"{mp_provenance(rows)}\n"
    )
    headers, body = summary_cells(summaries)
    parts.append(markdown_table(headers, body))
    notes = common_notes(summaries, baseline)
    if notes:
        parts.append("".join(f"- \\{PARTIAL_MARK} {line}\n" for line in notes))
    parts.append("\n## Per cell\n")
    headers, body = cell_matrix(rows)
    parts.append(markdown_table(headers, body))
    lines = failures(rows)
    if lines:
        parts.append("\n## Errors, killed timeouts, late returns and contradicted bounds\n")
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
    "mp_proven",
    "graph_ops",
    "graph_tensors",
    "solve_wall_s",
    "over_time_limit",
    "solver_wall_s",
    "import_wall_s",
    "warmup_wall_s",
    "cell_wall_s",
    "worker_maxrss_bytes",
    "time_limit_s",
    "options",
    "solver_version",
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


#: The report files :func:`write_reports` writes in the results folder (and ``memplan
#: bench`` checks are writable before its cells run).
REPORT_NAMES = ("summary.md", "summary.csv", "cells.csv")


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
    texts = (
        markdown_report(rows, baseline, progress_line(out, rows)),
        summary_csv(summaries),
        cells_csv(rows),
    )
    for name, text in zip(REPORT_NAMES, texts, strict=True):
        atomic_write_text(out / name, text, what="report", create_folders=True)
        written.append(out / name)
    if figures and rows:
        from memplan.bench.figures import write_figures

        written.extend(write_figures(out / "figures", rows, baseline))
    return written
