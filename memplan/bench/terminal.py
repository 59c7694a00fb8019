"""Terminal tables of ``memplan bench`` and ``memplan compare``, 80 columns wide.

Tables are built narrow rather than cut: one table per scope, short headers explained
by a legend under the table, and solver labels longer than :data:`LABEL_WIDTH` (a
solver with options, ``ilp[backend=milp,mode=fixed]``) shown as ``S1``, ``S2`` with
their full names in the legend. Every column folds instead of truncating, so even an
unusually long value wraps onto a second line rather than ending in "…".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memplan.bench.report import (
    MISSING,
    PARTIAL_MARK,
    change_text,
    common_notes,
    gap_text,
    percent_change,
    seconds,
    traffic_text,
)
from memplan.bench.rows import has_plan, solver_label
from memplan.bench.summary import SolverSummary, resolve_baseline
from memplan.units import format_bytes, format_seconds

if TYPE_CHECKING:
    from rich.console import Group
    from rich.table import Table

#: Longest solver label shown as is; longer ones get an alias and a legend line.
LABEL_WIDTH = 12


def short_labels(labels: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Aliases for labels longer than LABEL_WIDTH, and the legend lines that explain them."""
    aliases: dict[str, str] = {}
    legend: list[str] = []
    for label in dict.fromkeys(labels):
        if len(label) <= LABEL_WIDTH:
            aliases[label] = label
        else:
            alias = f"S{len(legend) + 1}"
            aliases[label] = alias
            legend.append(f"{alias} = {label}")
    return aliases, legend


def _table(title: str | None, headers: Sequence[str], left: int) -> Table:
    """A borderless table whose first ``left`` columns are left-aligned; cells fold."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
    )
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < left else "right", overflow="fold")
    return table


def _legend(lines: Sequence[str]) -> Any:
    from rich.text import Text

    return Text("\n".join(lines))


def bench_summary(
    summaries: Sequence[SolverSummary], baseline: str | None, progress: str | None = None
) -> Group:
    """The summary for the terminal: one table per scope, then all cells, then a legend.

    Args:
        summaries: from :func:`memplan.bench.summary.summarize`.
        baseline: the solver compared against.
        progress: the :func:`~memplan.bench.report.progress_line` of a partial run,
            shown first.
    """
    from rich.console import Group
    from rich.text import Text

    aliases, legend = short_labels(s.solver for s in summaries)
    headers = ["budget", "solver", "plans", "o/t/e/i", "non-comp.", "vs base", "gap", "time"]
    groups: dict[str, list[SolverSummary]] = {}
    for summary in summaries:
        groups.setdefault(summary.scope, []).append(summary)
    parts: list[Any] = [_legend([progress + "."])] if progress else []
    for scope, group in groups.items():
        title = "all scopes and budgets" if scope == "*" else f"scope {scope}"
        table = _table(title, headers, left=2)
        for s in group:
            table.add_row(
                *map(
                    Text,
                    (
                        "all" if s.budget == "*" else s.budget,
                        aliases[s.solver],
                        f"{s.plans}/{s.cells}" + (f" +{s.left_out}" if s.left_out else ""),
                        f"{s.optimal}/{s.timeouts}/{s.errors}/{s.infeasible}",
                        traffic_text(s),
                        percent_change(s.mean_reduction),
                        gap_text(s, digits=0),
                        seconds(s.mean_solve_s),
                    ),
                )
            )
        parts.append(table)
    base = baseline or "the baseline"
    parts.append(
        _legend(
            [
                *legend,
                "plans: cells with a valid plan / cells that every solver of the budget "
                "finished (+k: the solver's rows of other cells, left out of every figure); "
                "o/t/e/i: proven optimal / timed out / errors / infeasible (a budget below "
                "M_R, or proven so); non-comp.: total "
                f"non-compulsory traffic over the cells where both the solver and {base} have a "
                f"plan ({MISSING}: none; *: fewer than the solver's or {base}'s plans, see "
                f"below); vs base: mean change against {base} over those cells where {base} "
                "spills (trivial cells left out); "
                "gap: mean gap to each cell's best global lower bound over the rows that "
                f"have one (k/n when not all; {MISSING}: none); time: mean solve time "
                "(after warm-up).",
                *(f"{PARTIAL_MARK} {line}" for line in common_notes(summaries, baseline, aliases)),
            ]
        )
    )
    return Group(*parts)


def compare_table(rows: Sequence[Mapping[str, Any]], baseline: str) -> Group:
    """``memplan compare``: one line per (budget, solver), then capacities and messages.

    Args:
        rows: result rows of one workload and scope.
        baseline: the baseline's solver label (``greedy[order=model]``), or a solver name
            that only one label of the rows has (see
            :func:`memplan.bench.summary.resolve_baseline`).
    """
    from rich.console import Group
    from rich.text import Text

    first = rows[0]
    # Matched on the full label, as bench does: greedy and greedy[order=model] are two.
    baseline = resolve_baseline(rows, baseline) or baseline
    aliases, legend = short_labels([*(solver_label(r) for r in rows), baseline])
    headers = ["budget", "solver", "status", "non-comp.", "vs base", "bound", "gap", "time"]
    title = (
        f"{first['workload']}: {first['graph_ops']} ops, scope {first['scope']}, "
        f"MR {format_bytes(first['mr_bytes'])}, MP {format_bytes(first['mp_bytes'])}"
        + ("" if first.get("mp_proven") else " (heuristic)")
    )
    table = _table(title, headers, left=3)
    base = {r["budget"]: r for r in rows if solver_label(r) == baseline}
    capacities: dict[str, int] = {}
    messages: list[str] = []
    for row in rows:
        label = aliases[solver_label(row)]
        capacities.setdefault(row["budget"], row["capacity_bytes"])
        plan = has_plan(row)
        bound, gap, time_s = row.get("lower_bound_bytes"), row.get("gap"), row.get("solve_wall_s")
        cells = (
            row["budget"],
            label,
            "killed" if row.get("killed") else row["status"],
            format_bytes(row["non_compulsory_bytes"]) if plan else MISSING,
            _versus(row, base.get(row["budget"])),
            format_bytes(bound) if bound is not None else MISSING,
            f"{100 * gap:.1f}%" if gap is not None else MISSING,
            f"{time_s:.3g} s" if time_s is not None else MISSING,
        )
        table.add_row(*map(Text, cells))
        message = " ".join(str(row.get("message") or "").split())
        if message:
            messages.append(f"{row['budget']} {label}: {message[:200]}")
    lines = [
        *legend,
        "capacity: " + ", ".join(f"{b} = {format_bytes(c)}" for b, c in capacities.items()),
        *_latency_lines(rows, aliases),
        f"vs base: change of non-compulsory traffic against {aliases[baseline]}; bound: the "
        f"solver's lower bound over all plans, gap to it ({MISSING}: no bound); killed: did "
        "not return within time limit + grace.",
        *messages,
    ]
    return Group(table, _legend(lines))


def _latency_lines(rows: Sequence[Mapping[str, Any]], aliases: Mapping[str, str]) -> list[str]:
    """``latency (overlap) MR: greedy 20.74 us, S1 18.43 us``, one line per budget, when a
    run was asked to lower latency (``objective=latency``): traffic first, then latency,
    and the table showed no latency, so two rows of equal traffic looked the same."""
    if not any(str((r.get("options") or {}).get("objective")) == "latency" for r in rows):
        return []
    model = (rows[0].get("accelerator") or {}).get("timing_model", "serial")
    by_budget: dict[str, list[str]] = {}
    for row in rows:
        seconds = row.get("latency_s")
        shown = format_seconds(seconds) if has_plan(row) and seconds is not None else MISSING
        by_budget.setdefault(row["budget"], []).append(f"{aliases[solver_label(row)]} {shown}")
    note = "" if model == "overlap" else " (objective=latency lowers the overlap model's)"
    return [
        f"latency ({model}{note}) {budget}: {', '.join(items)}"
        for budget, items in by_budget.items()
    ]


def _versus(row: Mapping[str, Any], ref: Mapping[str, Any] | None) -> str:
    """Change of ``row``'s traffic against the baseline's row of the same budget."""
    if ref is None or ref is row or not has_plan(ref) or not has_plan(row):
        return MISSING
    ref_value, value = ref["non_compulsory_bytes"], row["non_compulsory_bytes"]
    if ref_value:
        return change_text((value - ref_value) / ref_value)
    return "trivial" if value == 0 else "+inf"
