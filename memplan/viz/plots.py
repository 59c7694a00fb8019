"""Figures of a plan: the memory map above the live-bytes curve.

::

    address ^  capacity - - - - - - - - - - - - - - - - - - -
            |        ▶[////////]▶        one rectangle per residency:
            |  [#########]   [####]      x = steps [start, end), y = [offset, offset + size)
            |  [###]▶   ▶[######]        ▶ at the left edge: loaded; ▶ at the right: stored
            +--------------------------> step
    bytes   ^     _/‾‾\\__/‾‾‾\\_         sum of resident sizes per step, with the
            +--------------------------> step   capacity and the max live marked

matplotlib is imported lazily; figures are built with :class:`matplotlib.figure.Figure`
and the Agg canvas, never through pyplot's global state, so plotting works headless
and leaks no figures in long runs.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np

from memplan.errors import ConfigError
from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave, Plan, check_plan_fields, check_plan_shape
from memplan.problem import Problem, require_problem
from memplan.units import format_bytes

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: ``gid`` of the artists tests and tools can look up in a figure.
GID_RESIDENCIES = "residencies"
GID_CAPACITY = "capacity"
GID_LIVE = "live-bytes"

_KIND_COLORS = {
    TensorKind.ACTIVATION: "#4C72B0",
    TensorKind.INPUT: "#55A868",
    TensorKind.WEIGHT: "#8172B2",
}
_OUTPUT_COLOR = "#DD8452"
_LOAD_COLOR = "#2CA02C"
_STORE_COLOR = "#D62728"
_CAPACITY_COLOR = "#C44E52"


def require_plan(problem: object, plan: object, where: str) -> None:
    """Refuse a ``problem`` or ``plan`` that is not one, or a plan that does not fit the
    problem's graph, with one line naming ``where``.

    Every public figure and view taking a plan and a problem calls this first: a plan of
    another graph indexed the graph's tensors past the end (a raw IndexError, or a
    silently wrong picture). The shape check is the one :func:`memplan.cost.evaluate`
    and :func:`memplan.timing.simulate` make (:func:`memplan.plan.check_plan_shape`).

    Raises:
        ConfigError: ``problem`` is not a Problem or ``plan`` is not a Plan.
        InvalidPlanError: a field of the plan has the wrong type, or the plan's order is
            not a permutation of the graph's ops, or a residency names a tensor or steps
            the graph does not have.
    """
    checked = require_problem(problem, where)
    if not isinstance(plan, Plan):
        hint = ""
        if plan is None:
            hint = " (a result without a plan, e.g. infeasible, has nothing to draw)"
        elif hasattr(plan, "plan"):
            hint = " (pass result.plan)"
        raise ConfigError(f"{where}: plan must be a memplan Plan, got {type(plan).__name__}{hint}")
    check_plan_fields(plan, where)
    check_plan_shape(plan, checked.graph, where)


def live_bytes_of_plan(problem: Problem, plan: Plan) -> np.ndarray:
    """Sum of the resident tensors' sizes (bytes) at each step of ``plan``.

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    require_plan(problem, plan, "live_bytes_of_plan")
    n = len(plan.order)
    delta = np.zeros(n + 1, dtype=np.int64)
    sizes = problem.graph.tensors
    for r in plan.residencies:  # each inside the steps and tensors: require_plan checked
        delta[r.start] += sizes[r.tensor].size_bytes
        delta[r.end] -= sizes[r.tensor].size_bytes
    return np.cumsum(delta)[:-1]


def plot_plan(
    problem: Problem,
    plan: Plan,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Figure:
    """Draw ``plan``'s memory map above its live-bytes curve.

    Args:
        problem: the problem the plan solves (sizes, capacity).
        plan: the plan to draw.
        path: if given, save the figure there (PNG, SVG or PDF by suffix), atomically
            and by the rules of :mod:`memplan.io.files`.
        title: figure title; default names the model, capacity and scope.
        dpi: resolution of a saved raster image.

    Returns:
        The figure (a :class:`matplotlib.figure.Figure` with an Agg canvas).

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one (a result without a plan has
            nothing to draw), or ``path`` names a format memplan does not write.
        InvalidPlanError: ``plan`` does not fit the problem's graph (e.g. it was made
            for another problem).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    require_plan(problem, plan, "plot_plan")
    if path is not None:
        figure_format(path)  # refused before the drawing, not after it
    n = max(len(plan.order), 1)
    width = min(16.0, max(8.0, n / 25))
    fig = Figure(figsize=(width, 7.0), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax_map = fig.add_subplot(grid[0])
    ax_live = fig.add_subplot(grid[1], sharex=ax_map)
    _draw_map(ax_map, problem, plan)
    _draw_live(ax_live, problem, plan)
    fig.suptitle(title or plan_title(problem, plan), fontsize=11)
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


#: The figure formats :func:`save_figure` writes, by file suffix.
FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_format(path: str | os.PathLike[str]) -> str:
    """The format :func:`save_figure` writes to ``path``: its suffix, ``png`` without one.

    Raises:
        ConfigError: ``path`` is not a path, or its suffix names another format.
    """
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(f"figure path must be a file name, got {type(path).__name__}")
    suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".") or "png"
    if suffix not in FIGURE_FORMATS:
        raise ConfigError(
            f"figure {os.fspath(path)!r}: .{suffix} is not a figure format memplan writes; "
            "use a .png, .svg or .pdf file name"
        )
    return str(suffix)


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 120) -> None:
    """Save ``fig`` to ``path`` (PNG, SVG or PDF by suffix; PNG without one) atomically,
    by the rules of :mod:`memplan.io.files`.

    Raises:
        ConfigError: ``path`` is not a path, or its suffix names another format.
        OutputFileError: the path must not or cannot be written.
    """
    import io

    from memplan.io.files import atomic_write_bytes

    suffix = figure_format(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix, dpi=dpi)
    atomic_write_bytes(path, buffer.getvalue(), what="figure")


def plan_title(problem: Problem, plan: Plan) -> str:
    """The default title of a plan's figure: model, steps, residencies, capacity, scope."""
    return (
        f"{problem.graph.name}: {len(plan.order)} steps, {len(plan.residencies)} residencies, "
        f"scratchpad {format_bytes(problem.capacity_bytes)}, scope {problem.scope.value}"
    )


def draw_map(ax: Axes, problem: Problem, plan: Plan) -> None:
    """Draw the memory map alone into a given axes (steps across, addresses up), for
    figures that put other panels below it (:mod:`memplan.viz.cuts`).

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    require_plan(problem, plan, "draw_map")
    _draw_map(ax, problem, plan)


def draw_plan(ax_map: Axes, ax_live: Axes, problem: Problem, plan: Plan) -> None:
    """Draw the memory map and the live-bytes curve into two given axes (steps across).

    For figures that put the plan beside other panels (:mod:`memplan.viz.timeline`).

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    require_plan(problem, plan, "draw_plan")
    _draw_map(ax_map, problem, plan)
    _draw_live(ax_live, problem, plan)


def short_bytes(value: float) -> str:
    """Compact binary size for axis ticks: ``0``, ``512 B``, ``96 KiB``, ``1.5 MiB``."""
    if value == 0:
        return "0"
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {unit}"
    return f"{value:.4g} B"


def bytes_axis(ax: Axes, top: float, ticks: int = 8) -> None:
    """Ticks at multiples of a power of two (``ticks / 2`` to ``ticks`` of them), in KiB/MiB."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    step = 2 ** math.ceil(math.log2(max(top, ticks) / ticks))
    ax.yaxis.set_major_locator(MultipleLocator(step))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: short_bytes(v)))


def _draw_map(ax: Axes, problem: Problem, plan: Plan) -> None:
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    graph = problem.graph
    capacity = problem.capacity_bytes
    rects, colors = [], []
    # A load is a green edge and triangle just inside the left end of the residency, a
    # store a red one just inside its right end (so a store followed by a reload at the
    # same address shows both marks).
    loads_x, loads_y, stores_x, stores_y = [], [], [], []
    load_edges, store_edges = [], []
    for r in plan.residencies:
        tensor = graph.tensors[r.tensor]
        size = tensor.size_bytes
        rects.append(Rectangle((r.start, r.offset), r.end - r.start, size))
        colors.append(_OUTPUT_COLOR if tensor.is_output else _KIND_COLORS[tensor.kind])
        inset = min(0.08, 0.2 * (r.end - r.start))
        if r.arrive is Arrive.LOAD:
            x = r.start + inset
            loads_x.append(x)
            loads_y.append(r.offset + size / 2)
            load_edges.append([(x, r.offset), (x, r.offset + size)])
        if r.leave is Leave.STORE:
            x = r.end - inset
            stores_x.append(x)
            stores_y.append(r.offset + size / 2)
            store_edges.append([(x, r.offset), (x, r.offset + size)])
    dense = len(rects) > 400
    collection = PatchCollection(
        rects,
        facecolors=colors,
        edgecolors="white" if not dense else "none",
        linewidths=0.4,
        alpha=0.85,
    )
    collection.set_gid(GID_RESIDENCIES)
    ax.add_collection(collection)
    few_marks = len(loads_x) + len(stores_x) <= 100
    marker_size = 30 if few_marks else 8
    for edges, xs, ys, color in (
        (load_edges, loads_x, loads_y, _LOAD_COLOR),
        (store_edges, stores_x, stores_y, _STORE_COLOR),
    ):
        edge_width = 2.0 if not dense else (1.2 if few_marks else 0.6)
        ax.add_collection(LineCollection(edges, colors=color, linewidths=edge_width))
        ax.scatter(xs, ys, marker=">", s=marker_size, color=color, zorder=3, clip_on=False)
    line = ax.axhline(capacity, color=_CAPACITY_COLOR, linestyle="--", linewidth=1.2)
    line.set_gid(GID_CAPACITY)
    n = max(len(plan.order), 1)
    peak = max((r.offset + graph.tensors[r.tensor].size_bytes for r in plan.residencies), default=0)
    ax.set_xlim(0, n)
    top = max(capacity, peak)
    ax.set_ylim(0, top * 1.06 or 1)
    bytes_axis(ax, top)
    ax.set_ylabel("scratchpad address")
    ax.grid(axis="y", alpha=0.25)
    kinds_used = {graph.tensors[r.tensor].kind for r in plan.residencies}
    handles: list[Artist] = [
        Patch(color=_KIND_COLORS[k], label=k.value) for k in TensorKind if k in kinds_used
    ]
    if any(graph.tensors[r.tensor].is_output for r in plan.residencies):
        handles.append(Patch(color=_OUTPUT_COLOR, label="graph output"))
    handles += [
        Line2D(
            [],
            [],
            marker=">",
            linestyle="",
            color=_LOAD_COLOR,
            label=f"loaded from DRAM ({len(loads_x)})",
        ),
        Line2D(
            [],
            [],
            marker=">",
            linestyle="",
            color=_STORE_COLOR,
            label=f"stored to DRAM ({len(stores_x)})",
        ),
        Line2D(
            [],
            [],
            color=_CAPACITY_COLOR,
            linestyle="--",
            label=f"capacity {format_bytes(capacity)}",
        ),
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        title="box: a tensor's stay\non chip (steps x bytes)",
        title_fontsize=8,
    )


def _draw_live(ax: Axes, problem: Problem, plan: Plan) -> None:
    live = live_bytes_of_plan(problem, plan)
    capacity = problem.capacity_bytes
    n = len(live)
    steps = np.arange(n + 1)
    values = np.append(live, live[-1] if n else 0)
    (curve,) = ax.step(steps, values, where="post", color="#4C72B0", linewidth=1.2)
    curve.set_gid(GID_LIVE)
    curve.set_label("live bytes (sum of\nresident tensors)")
    ax.fill_between(steps, values, step="post", alpha=0.25, color="#4C72B0")
    line = ax.axhline(
        capacity,
        color=_CAPACITY_COLOR,
        linestyle="--",
        linewidth=1.2,
        label=f"capacity {format_bytes(capacity)}",
    )
    line.set_gid(GID_CAPACITY)
    if n:
        top = int(live.max())
        at = int(live.argmax())
        ax.axhline(
            top,
            color="#333333",
            linestyle=":",
            linewidth=1.0,
            label=f"max live {format_bytes(top)}",
        )
        ax.plot([at + 0.5], [top], marker="o", color="#333333", markersize=4)
    top = max(capacity, int(live.max()) if n else 0)
    ax.set_ylim(0, top * 1.12 or 1)
    bytes_axis(ax, top, ticks=4)
    ax.set_xlabel("step")
    ax.set_ylabel("live bytes")
    ax.grid(axis="y", alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure rendered as PNG bytes (for HTML embedding)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
