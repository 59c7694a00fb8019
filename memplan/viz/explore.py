"""Explore one plan step by step: what is on chip at a step, and a slider over steps.

::

    step_view(problem, plan)        # a step slider when ipywidgets is installed,
                                    # else the view of one step (static)
    resident_table(problem, plan, 12)   # the tensors on chip at step 12
    plot_step(problem, plan, 12)        # the memory map with step 12 marked

The slider needs ``ipywidgets`` (not a memplan dependency); without it, or with the
environment variable ``MEMPLAN_STATIC_VIEWS=1`` (how the tests run notebooks), every
view is static HTML.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError
from memplan.plan import Plan, Residency
from memplan.problem import Problem
from memplan.units import format_bytes
from memplan.viz.display import Html, figure_html_of, table
from memplan.viz.plots import require_plan

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Set to 1 to get static views even where ipywidgets is installed.
STATIC_ENV = "MEMPLAN_STATIC_VIEWS"

_STEP_COLOR = "#FFB000"


def residents_at(plan: Plan, step: int) -> list[Residency]:
    """The residencies on chip at ``step``, by offset."""
    return sorted((r for r in plan.residencies if r.covers(step)), key=lambda r: r.offset)


def check_step(plan: Plan, step: object, where: str) -> int:
    """``step`` if it is a step of ``plan`` (an int in ``0 .. len(plan.order) - 1``).

    The one check of :func:`resident_table`, :func:`plot_step` and :func:`step_view`:
    step 99 of a 2-step plan was an IndexError in the first, a picture marking nothing
    in the second, and -1 marked the step before the plan.

    Raises:
        ConfigError: ``step`` is not an int or is outside the plan's steps; the
            message names ``where`` and the allowed range.
    """
    n = len(plan.order)
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < n:
        allowed = f"use 0 .. {n - 1}" if n else "the plan has no steps (its graph has no ops)"
        raise ConfigError(f"{where}: step {step!r} is not a step of the plan; {allowed}")
    return step


def resident_table(problem: Problem, plan: Plan, step: int) -> Html:
    """What is on chip at ``step``: tensor, offset, size, stay and how it came and goes.

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one, or ``step`` is not a step of
            the plan.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    require_plan(problem, plan, "resident_table")
    check_step(plan, step, "resident_table")
    graph = problem.graph
    op = graph.ops[plan.order[step]]
    touched = set(op.inputs) | set(op.outputs)
    rows = []
    for r in residents_at(plan, step):
        tensor = graph.tensors[r.tensor]
        role = "read" if r.tensor in op.inputs else "written" if r.tensor in op.outputs else ""
        rows.append(
            (
                tensor.name,
                tensor.kind.value + (", output" if tensor.is_output else ""),
                r.offset,
                format_bytes(tensor.size_bytes),
                f"[{r.start}, {r.end})",
                r.arrive.value,
                r.leave.value,
                role or ("idle" if r.tensor not in touched else ""),
            )
        )
    live = sum(graph.tensors[r.tensor].size_bytes for r in residents_at(plan, step))
    heading = (
        f"<div style='font-weight:bold;margin-top:6px'>step {step}: {op.name} ({op.op_type}), "
        f"{len(rows)} tensors on chip, {format_bytes(live)} of "
        f"{format_bytes(problem.capacity_bytes)}</div>"
    )
    body = table(
        ["tensor", "kind", "offset", "size", "stay", "arrives", "leaves", "at this step"], rows
    )
    return Html(heading + body)


def plot_step(problem: Problem, plan: Plan, step: int) -> Figure:
    """The memory map and live bytes of ``plan`` with ``step`` marked.

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one, or ``step`` is not a step of
            the plan.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    from memplan.viz.plots import plot_plan

    require_plan(problem, plan, "plot_step")
    check_step(plan, step, "plot_step")
    fig = plot_plan(problem, plan, title=f"{problem.graph.name}: step {step} marked")
    for ax in fig.axes:
        ax.axvspan(step, step + 1, color=_STEP_COLOR, alpha=0.35, zorder=0)
    return fig


def static_views() -> bool:
    """True when views must be static (no ipywidgets, or :data:`STATIC_ENV` set)."""
    if os.environ.get(STATIC_ENV, "") not in ("", "0"):
        return True
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return True
    return False


def step_html(problem: Problem, plan: Plan, step: int) -> Html:
    """The static view of one step: its table above the marked memory map."""
    figure = figure_html_of(plot_step(problem, plan, step), f"step {step}")
    return Html(resident_table(problem, plan, step) + figure)


def step_view(problem: Problem, plan: Plan, step: int = 0) -> Any:
    """A step slider over ``plan`` (ipywidgets), or the static view of ``step``.

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one, or ``step`` is not a step of
            the plan.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    require_plan(problem, plan, "step_view")
    check_step(plan, step, "step_view")
    if static_views():
        return step_html(problem, plan, step)
    import ipywidgets
    from IPython.display import display

    slider = ipywidgets.IntSlider(value=step, min=0, max=len(plan.order) - 1, description="step")

    def show(step: int) -> None:
        display(step_html(problem, plan, step))

    return ipywidgets.interactive(show, step=slider)
