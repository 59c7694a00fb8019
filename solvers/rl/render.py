"""Pictures of a mallocGame under way: the memory map so far, as text or RGB pixels.

Closed residencies are drawn as they are; open ones up to the current step. Text uses
:func:`memplan.plan.memory_map`; the picture (matplotlib, Agg) shows offsets over
steps, loads in orange, produced tensors in blue, stores with a red edge, and the
current step as a dashed line.
"""

from __future__ import annotations

import io

import numpy as np

from memplan.ir import TensorId
from memplan.placement import PlacementState
from memplan.plan import Plan, Residency, memory_map


def _so_far(state: PlacementState) -> Plan:
    """The residencies so far (open ones cut at the current step) as a plan-shaped map."""
    now = min(state.step + 1, state.num_steps)
    residencies = list(state.closed)
    for r in state.open_residencies():
        end = max(now, r.start + 1)
        residencies.append(Residency(TensorId(r.tensor), r.start, end, r.offset, r.arrive))
    return Plan.make(state.timeline.order, residencies)


def render_text(state: PlacementState) -> str:
    """ASCII memory map of the game so far, with the step and the traffic."""
    plan = _so_far(state)
    head = (
        f"step {state.step}/{state.num_steps}  live {state.live_bytes} B of "
        f"{state.capacity_bytes} B  non-compulsory {state.non_compulsory_bytes} B"
    )
    return head + "\n" + memory_map(plan, state.problem.graph, state.capacity_bytes)


def render_rgb(state: PlacementState, width_px: int = 640, height_px: int = 360) -> np.ndarray:
    """An RGB picture (H x W x 3, uint8) of the memory map so far: offsets over steps."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    plan = _so_far(state)
    sizes = state.problem.aligned_sizes_bytes
    figure = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    axes = figure.add_subplot()
    for r in plan.residencies:
        colour = "tab:orange" if r.arrive.value == "load" else "tab:blue"
        edge = "tab:red" if r.leave.value == "store" else "black"
        axes.add_patch(
            Rectangle(
                (r.start, r.offset),
                r.end - r.start,
                sizes[r.tensor],
                facecolor=colour,
                edgecolor=edge,
                linewidth=0.4,
                alpha=0.8,
            )
        )
    axes.axvline(state.step, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlim(0, max(state.num_steps, 1))
    axes.set_ylim(0, state.capacity_bytes)
    axes.set_xlabel("step")
    axes.set_ylabel("offset (bytes)")
    axes.set_title(f"step {state.step}/{state.num_steps}, {state.non_compulsory_bytes} B moved")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="raw", dpi=100)
    rgba = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
    height = round(figure.get_figheight() * 100)
    width = round(figure.get_figwidth() * 100)
    return rgba.reshape(height, width, 4)[:, :, :3].copy()
