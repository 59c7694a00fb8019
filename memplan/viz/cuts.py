"""The figure of a divide-and-conquer result: its cuts over the live-bytes curve.

::

    bytes ^      no spilling _/‾‾\\_       _/‾‾‾\\_
          |  capacity - - -|- - - - - - - |- - - - - -
          |   resident  __/‾‾\\__/‾‾\\____/‾‾\\__
          +-------------|--------------|-----------> step
                       cut            cut        (dashed: the bytes crossing each cut)
    crossing ^   ▂▃▅▇▅▂▁▂▃▅▇▅▃▁▂▃▇█▇▃▂
             +-------------|--------------|------> step

Above both, the plan's memory map with the same cut lines. ``dnc`` records its cut
steps in ``result.stats["cuts"]``; :func:`plot_result` draws them for a result that has
them (``memplan optimize --plot``) and the plain plan
figure of :mod:`memplan.viz.plots` otherwise. matplotlib is imported lazily, without
pyplot's global state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np

from memplan.analysis import live_bytes_per_step
from memplan.cut import crossing_bytes
from memplan.errors import ConfigError
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import SolveResult
from memplan.units import format_bytes
from memplan.viz.plots import (
    bytes_axis,
    draw_map,
    live_bytes_of_plan,
    plot_plan,
    require_plan,
    save_figure,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: ``gid`` of the artists tests and tools can look up in the figure.
GID_CUT = "cut"
GID_RESIDENT = "resident-bytes"
GID_NO_SPILL = "no-spill-bytes"
GID_CROSSING = "crossing-bytes"


def cuts_of(result: SolveResult) -> list[int] | None:
    """The cut steps a result records (``stats["cuts"]``), or None."""
    cuts = result.stats.get("cuts") if result.stats else None
    if not isinstance(cuts, list) or not all(isinstance(c, int) for c in cuts):
        return None
    return list(cuts)


def check_cuts(cuts: object, num_steps: int, where: str) -> list[int]:
    """``cuts`` as a list of ints if each is a step strictly inside a plan of
    ``num_steps`` steps: in ``1 .. num_steps - 1``, the boundary before step ``c`` (a
    cut at 0 or ``num_steps`` splits nothing off).

    Raises:
        ConfigError: ``cuts`` is not a sequence of such whole numbers (a string of
            digits was drawn as cuts, and 99 or -1 as lines outside the plan).
    """
    if isinstance(cuts, str | bytes) or not isinstance(cuts, Iterable):
        raise ConfigError(
            f"{where}: cuts must be a list of step numbers, e.g. [10, 20], got "
            f"{type(cuts).__name__}"
        )
    checked = []
    for cut in cuts:
        if isinstance(cut, bool) or not isinstance(cut, Integral) or not 0 < int(cut) < num_steps:
            allowed = (
                f"give steps in 1 .. {num_steps - 1}"
                if num_steps > 1
                else "a plan of fewer than 2 steps has no cut (give [])"
            )
            raise ConfigError(
                f"{where}: cut {cut!r} is not a step strictly inside the plan's "
                f"{num_steps} steps; {allowed}"
            )
        checked.append(int(cut))
    return checked


def plot_cuts(
    problem: Problem,
    plan: Plan,
    cuts: Sequence[int],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    dpi: int = 120,
) -> Figure:
    """Draw the plan's memory map, its resident bytes and its order's no-spill live
    bytes, the capacity, the cut steps (in every panel), and the bytes crossing every
    step boundary.

    Args:
        problem: the problem the plan solves.
        plan: the plan to draw.
        cuts: steps where the order was cut (each in ``1 .. n - 1``).
        path: if given, save the figure there (PNG, SVG or PDF by suffix), atomically.
        title: figure title; default names the model, the cuts and the capacity.
        dpi: resolution of a saved raster image.

    Raises:
        ConfigError: ``problem`` or ``plan`` is not one, a cut is not a step strictly
            inside the plan, or ``path`` names a format memplan does not write.
        InvalidPlanError: ``plan`` does not fit the problem's graph.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    require_plan(problem, plan, "plot_cuts")
    n = len(plan.order)
    cuts = check_cuts(cuts, n, "plot_cuts")
    sizes = [t.size_bytes for t in problem.graph.tensors]
    resident = live_bytes_of_plan(problem, plan)
    no_spill = live_bytes_per_step(problem.graph, plan.order, sizes, problem.in_scope)
    crossing = crossing_bytes(problem, plan.order)
    steps = np.arange(n + 1)
    fig = Figure(figsize=(min(16.0, max(8.0, n / 25)), 9.0), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 1, height_ratios=(3, 2, 1))
    ax_map = fig.add_subplot(grid[0])
    ax = fig.add_subplot(grid[1], sharex=ax_map)
    ax_cross = fig.add_subplot(grid[2], sharex=ax_map)
    draw_map(ax_map, problem, plan)  # the offsets, as in every other --plot figure

    def stairs(values: np.ndarray) -> np.ndarray:
        return np.append(values, values[-1] if len(values) else 0)

    (line,) = ax.step(steps, stairs(no_spill), where="post", color="#999999", linewidth=1.0,
                      label="live bytes of the order, no spilling")  # fmt: skip
    line.set_gid(GID_NO_SPILL)
    (line,) = ax.step(steps, stairs(resident), where="post", color="#4C72B0", linewidth=1.2,
                      label="resident bytes of the plan")  # fmt: skip
    line.set_gid(GID_RESIDENT)
    ax.fill_between(steps, stairs(resident), step="post", alpha=0.25, color="#4C72B0")
    ax.axhline(problem.capacity_bytes, color="#C44E52", linestyle="--", linewidth=1.2,
               label=f"capacity {format_bytes(problem.capacity_bytes)}")  # fmt: skip
    for index, cut in enumerate(cuts):
        for axis in (ax_map, ax, ax_cross):
            marker = axis.axvline(cut, color="#DD8452", linewidth=1.0, alpha=0.9,
                                  label="cut" if index == 0 and axis is ax else None)  # fmt: skip
            marker.set_gid(GID_CUT)
    (line,) = ax_cross.step(steps, crossing, where="mid", color="#55A868", linewidth=1.0)
    line.set_gid(GID_CROSSING)
    ax_cross.set_ylabel("bytes crossing\nthe step boundary", fontsize=8)
    ax.set_ylabel("bytes")
    ax_cross.set_xlabel("step")
    top = max(int(no_spill.max()) if n else 0, problem.capacity_bytes, 1)
    ax.set_ylim(0, top * 1.08)
    bytes_axis(ax, top)
    bytes_axis(ax_cross, max(int(crossing.max()) if n else 0, 1), ticks=4)
    for axis in (ax_map, ax, ax_cross):
        axis.set_xlim(0, max(n, 1))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.suptitle(
        title
        or (
            f"{problem.graph.name}: {len(cuts) + 1} parts, {n} steps, scratchpad "
            f"{format_bytes(problem.capacity_bytes)}"
        ),
        fontsize=11,
    )
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


def plot_result(
    problem: Problem, result: SolveResult, path: str | os.PathLike[str] | None = None
) -> Figure:
    """The cuts figure for a result that records cuts, else the plan figure.

    Raises:
        ConfigError: ``result`` has no plan (nothing to draw), or ``problem`` is not one.
    """
    if not isinstance(result, SolveResult):
        raise ConfigError(f"plot_result: result must be a SolveResult, got {type(result).__name__}")
    require_plan(problem, result.plan, "plot_result")
    assert result.plan is not None
    cuts = cuts_of(result)
    if cuts is None:
        return plot_plan(problem, result.plan, path)
    return plot_cuts(problem, result.plan, cuts, path)
