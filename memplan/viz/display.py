"""HTML views for Jupyter: graphs, costs, results, plans and comparisons.

``Graph``, ``Cost`` and ``SolveResult`` show themselves through ``_repr_html_``, which
calls the renderers here. A plan knows nothing of its problem, so it is shown through
a view that holds both::

    from memplan.viz.display import PlanView, ResultView, compare
    PlanView(problem, plan)             # summary, memory-map figure, residency table
    ResultView(problem, result)         # status, cost, bound and gap, figure
    compare({"MR": r1, "MP": r2})       # one row per result

Plain HTML tables, no extra dependency; the figure is an embedded PNG when matplotlib
can be imported, and is simply left out otherwise.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError
from memplan.ir import Graph, TensorKind
from memplan.units import format_bytes, format_joules, format_seconds

if TYPE_CHECKING:
    from memplan.cost import Cost
    from memplan.plan import Plan
    from memplan.problem import Problem
    from memplan.solver import SolveResult

#: Rows shown before a long table is cut.
MAX_ROWS = 40

_TABLE = 'style="border-collapse:collapse;font-family:monospace;font-size:12px;margin:4px 0"'
_CELL = 'style="border:1px solid #ccc;padding:2px 6px;text-align:{align}"'


class Html(str):
    """A string of HTML that Jupyter renders (``_repr_html_``) and prints as itself."""

    def _repr_html_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"<HTML, {len(self)} characters: display it in Jupyter>"


def _e(value: Any) -> str:
    return html.escape(str(value))


def table(
    header: Sequence[str] | None, rows: Iterable[Sequence[Any]], *, total: int | None = None
) -> Html:
    """An HTML table; numbers are right-aligned; ``total`` > shown rows adds a '... more' row."""
    parts = [f"<table {_TABLE}>"]
    if header:
        cells = "".join(f"<th {_CELL.format(align='left')}>{_e(h)}</th>" for h in header)
        parts.append(f"<tr style='background:#f0f0f0'>{cells}</tr>")
    shown = 0
    width = len(header) if header else 1
    for row in rows:
        shown += 1
        cells = "".join(
            f"<td {_CELL.format(align='right' if _numeric(v) else 'left')}>{_e(v)}</td>"
            for v in row
        )
        parts.append(f"<tr>{cells}</tr>")
        width = len(row)
    if total is not None and total > shown:
        parts.append(
            f"<tr><td colspan={width} {_CELL.format(align='left')}><i>... "
            f"{total - shown} more</i></td></tr>"
        )
    parts.append("</table>")
    return Html("".join(parts))


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n} B" if abs(n) < 1024 else f"{format_bytes(n)} ({n:,} B)"


def _heading(text: str) -> str:
    return f"<div style='font-weight:bold;margin-top:6px'>{_e(text)}</div>"


# ------------------------------------------------------------------- graph
def graph_html(graph: Graph, max_rows: int = MAX_ROWS) -> Html:
    """Summary of ``graph`` and a table of its first ``max_rows`` ops."""
    summary = table(
        None,
        [
            ("ops", graph.num_ops),
            ("tensors", graph.num_tensors),
            ("inputs", _bytes(graph.bytes_of_kind(TensorKind.INPUT))),
            ("weights", _bytes(graph.bytes_of_kind(TensorKind.WEIGHT))),
            ("activations", _bytes(graph.bytes_of_kind(TensorKind.ACTIVATION))),
            ("MACs", f"{sum(op.macs for op in graph.ops):,}"),
            (
                "op types",
                ", ".join(f"{k} x{v}" for k, v in list(graph.op_histogram().items())[:12]),
            ),
        ],
    )

    def tensors_text(ids: Sequence[int]) -> str:
        out = []
        for t in ids:
            tensor = graph.tensors[t]
            mark = {TensorKind.WEIGHT: "w:", TensorKind.INPUT: "in:"}.get(tensor.kind, "")
            star = "*" if tensor.is_output else ""
            out.append(f"{mark}{tensor.name}{star} {format_bytes(tensor.size_bytes)}")
        return ", ".join(out)

    ops = table(
        ["#", "name", "type", "inputs", "outputs", "MACs"],
        (
            (op.id, op.name, op.op_type, tensors_text(op.inputs), tensors_text(op.outputs), op.macs)
            for op in graph.ops[:max_rows]
        ),
        total=graph.num_ops,
    )
    return Html(
        f"<div>{_heading(f'graph {graph.name}')}{summary}{ops}"
        "<div style='font-size:11px;color:#666'>w: weight, in: graph input, "
        "*: graph output</div></div>"
    )


# ------------------------------------------------------------------- cost and results
def _cost_rows(cost: Cost) -> list[tuple[str, str]]:
    return [
        ("non-compulsory traffic", _bytes(cost.non_compulsory_bytes)),
        ("compulsory traffic", _bytes(cost.compulsory_bytes)),
        ("total traffic", _bytes(cost.traffic_bytes)),
        (
            "loads / stores",
            f"{format_bytes(cost.loaded_bytes)} / {format_bytes(cost.stored_bytes)}",
        ),
        ("streamed weights", _bytes(cost.streamed_weight_bytes)),
        ("peak (highest byte used)", _bytes(cost.peak_bytes)),
        ("max live", _bytes(cost.max_live_bytes)),
        ("latency", cost.latency_text(4)),
        ("energy", format_joules(cost.energy_j)),
    ]


def cost_html(cost: Cost) -> Html:
    """A two-column table of a :class:`~memplan.cost.Cost`."""
    return table(["score", "value"], _cost_rows(cost))


def _gap_text(gap: float | None) -> str:
    """The gap as a percentage; "–" without a bound (never a gap of 0 %)."""
    return "–" if gap is None else f"{gap:.1%}"


def result_html(result: SolveResult, problem: Problem | None = None, plot: bool = True) -> Html:
    """Status, cost, bound, gap and wall time of a result; with ``problem``, the figure too."""
    rows: list[tuple[str, str]] = [
        ("solver", result.solver),
        ("status", result.status.value),
        ("wall time", f"{result.wall_s:.3f} s"),
    ]
    if problem is not None:
        rows.insert(2, ("scratchpad", _bytes(problem.capacity_bytes)))
    if result.cost is not None:
        rows += _cost_rows(result.cost)
    rows += [
        ("lower bound (non-compulsory)", _bytes(result.lower_bound_bytes)),
        ("gap to the bound", _gap_text(result.gap)),
    ]
    if result.options:
        rows.append(("options", ", ".join(f"{k}={v}" for k, v in result.options.items())))
    if result.message:
        rows.append(("message", result.message))
    parts = [_heading(f"{result.solver}: {result.status.value}"), table(None, rows)]
    if plot and problem is not None and result.plan is not None:
        parts.append(figure_html(problem, result.plan))
    return Html(f"<div>{''.join(parts)}</div>")


def figure_html(problem: Problem, plan: Plan) -> Html:
    """The :func:`memplan.viz.plots.plot_plan` figure as an embedded PNG ('' without matplotlib)."""
    try:
        from memplan.viz.plots import plot_plan
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return Html("")
    try:
        fig = plot_plan(problem, plan)
    except ImportError:  # pragma: no cover
        return Html("")
    return figure_html_of(fig, f"memory map of {problem.graph.name}")


def figure_html_of(fig: Any, alt: str = "figure") -> Html:
    """A matplotlib figure as an embedded PNG ``<img>``."""
    from memplan.viz.plots import figure_png

    data = base64.b64encode(figure_png(fig, dpi=80)).decode("ascii")
    return Html(f"<img alt='{_e(alt)}' style='max-width:100%' src='data:image/png;base64,{data}'/>")


# ------------------------------------------------------------------- plans
def plan_html(plan: Plan, problem: Problem, plot: bool = True, max_rows: int = MAX_ROWS) -> Html:
    """Validity, cost, figure and residency table of ``plan`` for ``problem``."""
    from memplan.cost import evaluate
    from memplan.plan import Arrive, Leave
    from memplan.validate import validate

    graph = problem.graph
    violations = validate(problem, plan)
    loads = sum(r.arrive is Arrive.LOAD for r in plan.residencies)
    stores = sum(r.leave is Leave.STORE for r in plan.residencies)
    summary = [
        ("steps", len(plan.order)),
        ("residencies", len(plan.residencies)),
        ("loads / stores", f"{loads} / {stores}"),
        ("scratchpad", _bytes(problem.capacity_bytes)),
        ("valid", "yes" if not violations else f"no: {len(violations)} violation(s)"),
    ]
    parts = [_heading(f"plan for {graph.name} ({problem.scope.value} scope)"), table(None, summary)]
    if violations:
        parts.append(
            table(
                ["violation", "message"],
                ((v.kind.value, v.message) for v in violations[:max_rows]),
                total=len(violations),
            )
        )
    else:
        parts.append(cost_html(evaluate(problem, plan)))
        if plot:
            parts.append(figure_html(problem, plan))
    shown = plan.residencies[:max_rows]
    parts.append(
        table(
            ["tensor", "steps", "offset", "size", "arrive", "leave"],
            (
                (
                    graph.tensors[r.tensor].name if 0 <= r.tensor < graph.num_tensors else r.tensor,
                    f"[{r.start}, {r.end})",
                    r.offset,
                    graph.tensors[r.tensor].size_bytes
                    if 0 <= r.tensor < graph.num_tensors
                    else "?",
                    r.arrive.value,
                    r.leave.value,
                )
                for r in shown
            ),
            total=len(plan.residencies),
        )
    )
    return Html(f"<div>{''.join(parts)}</div>")


@dataclass(frozen=True)
class PlanView:
    """A plan with its problem, shown in Jupyter by :func:`plan_html`."""

    problem: Problem  # the problem the plan solves
    plan: Plan  # the plan to show
    plot: bool = True  # embed the memory-map figure

    def __post_init__(self) -> None:
        from memplan.viz.plots import require_plan

        require_plan(self.problem, self.plan, "PlanView")

    def _repr_html_(self) -> str:
        return plan_html(self.plan, self.problem, plot=self.plot)

    def __repr__(self) -> str:
        return (
            f"PlanView({self.problem.graph.name!r}, {len(self.plan.order)} steps, "
            f"{len(self.plan.residencies)} residencies, scratchpad {self.problem.capacity_bytes} B)"
        )

    def __str__(self) -> str:
        from memplan.plan import memory_map

        return memory_map(self.plan, self.problem.graph, self.problem.capacity_bytes)


@dataclass(frozen=True)
class ResultView:
    """A result with its problem, shown in Jupyter by :func:`result_html` with the figure."""

    problem: Problem  # the problem that was solved
    result: SolveResult  # the solve's outcome
    plot: bool = True  # embed the memory-map figure

    def __post_init__(self) -> None:
        from memplan.problem import require_problem
        from memplan.solver import SolveResult

        require_problem(self.problem, "ResultView")
        if not isinstance(self.result, SolveResult):
            raise ConfigError(
                "ResultView: result must be a SolveResult (what solver.solve returns), "
                f"got {type(self.result).__name__}"
            )
        if self.result.plan is not None:
            from memplan.viz.plots import require_plan

            # A result of another problem failed only when shown, with an IndexError.
            require_plan(self.problem, self.result.plan, "ResultView")

    def _repr_html_(self) -> str:
        return result_html(self.result, self.problem, plot=self.plot)

    def __repr__(self) -> str:
        cost = self.result.cost
        traffic = f", non-compulsory {cost.non_compulsory_bytes} B" if cost else ""
        return (
            f"ResultView({self.problem.graph.name!r}, {self.result.solver}: "
            f"{self.result.status.value}{traffic})"
        )


def show_plan(problem: Problem, plan: Plan) -> PlanView:
    """A Jupyter view of ``plan`` for ``problem`` (the last expression of a cell shows it)."""
    return PlanView(problem, plan)


def compare(results: Mapping[str, SolveResult]) -> Html:
    """One row per labelled result: status, traffic, peak, latency, energy, gap, time.

    Raises:
        ConfigError: ``results`` is not a mapping of labels to SolveResults (a list of
            results takes ``{r.solver: r for r in results}``).
    """
    from memplan.solver import SolveResult

    if not isinstance(results, Mapping) or not all(
        isinstance(r, SolveResult) for r in results.values()
    ):
        raise ConfigError(
            "compare: pass a mapping of labels to SolveResults, e.g. "
            f"{{r.solver: r for r in results}}, got {type(results).__name__}"
        )
    rows = []
    for label, r in results.items():
        c = r.cost
        rows.append(
            (
                label,
                r.solver,
                r.status.value,
                format_bytes(c.non_compulsory_bytes) if c else "-",
                format_bytes(c.traffic_bytes) if c else "-",
                format_bytes(c.peak_bytes) if c else "-",
                format_seconds(c.latency_s) if c else "-",
                format_joules(c.energy_j) if c else "-",
                _gap_text(r.gap),
                f"{r.wall_s:.2f}",
            )
        )
    return table(
        [
            "run",
            "solver",
            "status",
            "non-compulsory",
            "traffic",
            "peak",
            "latency",
            "energy",
            "gap",
            "wall s",
        ],
        rows,
    )
