"""The timeline figure: compute and DMA lanes over time, stalls marked.

::

    compute  |▓step 0▓|xx|▓▓step 1▓▓|▓2▓|xxxx|▓▓step 3▓▓|    x = stall: the step waits
    DMA      [load][stream ]   [store][load      ]          one transfer at a time
             +----------------------------------------------> time (µs)

:func:`plot_timeline` draws the lanes of one :class:`memplan.timing.Timeline`;
:func:`plot_schedule` puts them under the memory map and live-bytes panels of
:mod:`memplan.viz.plots` (steps across) for one plan, optionally beside a second
timeline (e.g. before and after the prefetch pass). Figures use the Agg canvas, never
pyplot's global state.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memplan.errors import ConfigError
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.timing import Timeline, TransferKind, simulate
from memplan.units import brief_repr
from memplan.viz.plots import figure_format, require_plan

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: ``gid`` of the artists tests and tools can look up in a figure.
GID_COMPUTE = "compute-lane"
GID_STALLS = "stalls"
GID_DMA = "dma-lane"

_COMPUTE_COLORS = ("#4C72B0", "#7A9CCB")  # alternate steps
_STALL_COLOR = "#D62728"
_TRANSFER_COLORS = {
    TransferKind.LOAD: "#2CA02C",
    TransferKind.STORE: "#FF7F0E",
    TransferKind.STREAM: "#8172B2",
}
_LANE_HEIGHT = 0.6


def time_unit(seconds: float) -> tuple[str, float]:
    """A readable unit for a span of ``seconds``: (name, seconds per unit)."""
    for name, factor in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= 2 * factor:
            return name, factor
    return "ns", 1e-9


def draw_timeline(
    ax: Axes, timeline: Timeline, *, label: str | None = None, span_s: float | None = None
) -> None:
    """Draw the compute and DMA lanes of ``timeline`` into ``ax`` (time across).

    Args:
        ax: the axes to draw into.
        timeline: what to draw.
        label: a prefix of the axes title (e.g. "after prefetch").
        span_s: seconds the time axis spans (default the latency), so that lanes of
            several timelines share one scale.
    """
    from matplotlib.patches import Patch

    span_s = span_s or timeline.latency_s
    unit, factor = time_unit(span_s)
    compute = [
        ((s / factor), (e - s) / factor)
        for s, e in zip(timeline.step_start_s, timeline.step_end_s, strict=True)
    ]
    for parity, color in enumerate(_COMPUTE_COLORS):
        bars = ax.broken_barh(compute[parity::2], (1 - _LANE_HEIGHT / 2, _LANE_HEIGHT))
        bars.set_facecolor(color)
        bars.set_gid(GID_COMPUTE)
    # Step k waits after step k - 1 ends (step 0 after time 0); cut to the steps there
    # are, so a graph without ops (no steps) draws empty lanes, not a zip() error.
    previous_end = [0.0, *timeline.step_end_s][: timeline.num_steps]
    stalls = [
        (e / factor, stall / factor)
        for e, stall in zip(previous_end, timeline.step_stall_s, strict=True)
        if stall > 0
    ]
    if timeline.tail_s > 0 and timeline.step_end_s:
        stalls.append((timeline.step_end_s[-1] / factor, timeline.tail_s / factor))
    bars = ax.broken_barh(stalls, (1 - _LANE_HEIGHT / 2, _LANE_HEIGHT))
    bars.set_facecolor("none")
    bars.set_edgecolor(_STALL_COLOR)
    bars.set_hatch("////")
    bars.set_gid(GID_STALLS)
    for kind, color in _TRANSFER_COLORS.items():
        spans = [
            (tr.issue_s / factor, tr.duration_s / factor)
            for tr in timeline.transfers
            if tr.kind is kind
        ]
        bars = ax.broken_barh(spans, (-_LANE_HEIGHT / 2, _LANE_HEIGHT))
        bars.set_facecolor(color)
        bars.set_edgecolor("none")
        bars.set_gid(f"{GID_DMA}-{kind.value}")
    ax.set_yticks([0, 1], ["DMA", "compute"])
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlim(0, max(span_s / factor, 1e-9))
    ax.set_xlabel(f"time ({unit})")
    ax.grid(axis="x", alpha=0.25)
    counts = {kind: sum(tr.kind is kind for tr in timeline.transfers) for kind in _TRANSFER_COLORS}
    handles = [
        Patch(color=_COMPUTE_COLORS[0], label=f"compute ({timeline.num_steps} steps)"),
        Patch(
            facecolor="none",
            edgecolor=_STALL_COLOR,
            hatch="////",
            label=f"stall ({timeline.stall_s / factor:.4g} {unit})",
        ),
        *(
            Patch(color=color, label=f"{kind.value} ({counts[kind]})")
            for kind, color in _TRANSFER_COLORS.items()
            if counts[kind]
        ),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_title(
        (f"{label}: " if label else "")
        + f"{timeline.model} model, latency {timeline.latency_s / factor:.4g} {unit}, "
        f"DMA busy {timeline.dma_busy_share:.0%}, {timeline.hidden_dma_share:.0%} of DMA "
        "hidden behind compute",
        fontsize=9,
        loc="left",
    )


def plot_timeline(
    problem: Problem,
    plan: Plan,
    timeline: Timeline | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    title: str | None = None,
) -> Figure:
    """The compute and DMA lanes of ``plan`` over time.

    Args:
        problem: the problem the plan solves.
        plan: the plan (valid).
        timeline: its timeline; default :func:`memplan.timing.simulate` under ``model``.
        path: if given, save the figure there (PNG, SVG or PDF by suffix).
        model: timing model when ``timeline`` is not given (default: the accelerator's).
        title: figure title; default names the model.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    require_plan(problem, plan, "plot_timeline")
    if path is not None:
        figure_format(path)  # refused before the drawing, not after it
    if timeline is not None and not isinstance(timeline, Timeline):
        raise ConfigError(
            f"plot_timeline: timeline must be a Timeline (memplan.simulate(problem, plan)), "
            f"got {type(timeline).__name__}"
        )
    timeline = timeline or simulate(problem, plan, model)
    fig = Figure(figsize=(12.0, 2.6), layout="constrained")
    FigureCanvasAgg(fig)
    draw_timeline(fig.add_subplot(), timeline)
    fig.suptitle(title or f"{problem.graph.name}: timeline", fontsize=11)
    _save(fig, path)
    return fig


def plot_schedule(
    problem: Problem,
    plan: Plan,
    timelines: Sequence[tuple[str, Timeline]] | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """The memory map and live bytes of ``plan`` (steps across) above its timelines.

    Args:
        problem: the problem the plan solves.
        plan: the plan drawn in the memory map.
        timelines: labelled timelines to draw below (time across); default the plan's
            own under the accelerator's timing model.
        path: if given, save the figure there (PNG, SVG or PDF by suffix).
        title: figure title; default names the model, capacity and scope.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from memplan.viz.plots import draw_plan, plan_title

    require_plan(problem, plan, "plot_schedule")
    if path is not None:
        figure_format(path)  # refused before the drawing, not after it
    lanes = list(timelines or [("", simulate(problem, plan))])
    for lane in lanes:
        if not (isinstance(lane, tuple) and len(lane) == 2 and isinstance(lane[1], Timeline)):
            raise ConfigError(
                "plot_schedule: timelines must be (label, Timeline) pairs, e.g. "
                f"[('before', simulate(problem, plan))], got {brief_repr(lane)}"
            )
    n = max(len(plan.order), 1)
    fig = Figure(
        figsize=(min(16.0, max(9.0, n / 25)), 7.0 + 1.9 * len(lanes)), layout="constrained"
    )
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2 + len(lanes), 1, height_ratios=(3, 1, *([1.1] * len(lanes))))
    ax_map = fig.add_subplot(grid[0])
    draw_plan(ax_map, fig.add_subplot(grid[1], sharex=ax_map), problem, plan)
    span_s = max(timeline.latency_s for _, timeline in lanes)
    shared: Axes | None = None
    for row, (label, timeline) in enumerate(lanes):
        ax = fig.add_subplot(grid[2 + row], sharex=shared)
        draw_timeline(ax, timeline, label=label or None, span_s=span_s)
        shared = shared or ax
    fig.suptitle(title or plan_title(problem, plan), fontsize=11)
    _save(fig, path)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is None:
        return
    import io

    from memplan.io.files import atomic_write_bytes

    suffix = figure_format(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix, dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def timeline_html(timeline: Timeline) -> str:
    """Jupyter view of a :class:`Timeline`: its figures as a table and the lanes."""
    from memplan.viz.display import Html, figure_html_of, table

    unit, factor = time_unit(timeline.latency_s)
    rows = [
        ("timing model", timeline.model),
        ("latency", f"{timeline.latency_s / factor:.4g} {unit}"),
        ("compute", f"{timeline.compute_s / factor:.4g} {unit}"),
        (
            "stalls",
            f"{timeline.stall_s / factor:.4g} {unit} in {len(timeline.stalled_steps())} steps",
        ),
        ("DMA busy", f"{timeline.dma_busy_s / factor:.4g} {unit} ({timeline.dma_busy_share:.1%})"),
        ("DMA hidden behind compute", f"{timeline.hidden_dma_share:.1%}"),
        ("transfers", len(timeline.transfers)),
    ]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 2.4), layout="constrained")
    FigureCanvasAgg(fig)
    draw_timeline(fig.add_subplot(), timeline)
    return Html(f"<div>{table(None, rows)}{figure_html_of(fig, 'timeline')}</div>")
