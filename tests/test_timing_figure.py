"""The timeline figure: a bar per step and per transfer, stalls where steps wait."""

from __future__ import annotations

import pytest
from timing_examples import section7_plan, section7_problem

from memplan.timing import TransferKind, simulate
from memplan.viz.timeline import (
    GID_COMPUTE,
    GID_DMA,
    GID_STALLS,
    plot_schedule,
    plot_timeline,
    time_unit,
)


def _bars(fig, gid):
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def _spans(collections) -> list[tuple[float, float]]:
    """(start, width) of every bar of some broken_barh collections, sorted."""
    spans = []
    for collection in collections:
        for path in collection.get_paths():
            x0, _, width, _ = path.get_extents().bounds
            spans.append((round(x0, 6), round(width, 6)))
    return sorted(spans)


def test_lanes_show_every_step_transfer_and_stall() -> None:
    problem = section7_problem()
    plan = section7_plan(problem, x_start=4)
    timeline = simulate(problem, plan)
    fig = plot_timeline(problem, plan, timeline)
    assert time_unit(timeline.latency_s) == ("s", 1.0)
    steps = _spans(_bars(fig, GID_COMPUTE))
    assert steps == sorted(
        (round(s, 6), round(e - s, 6))
        for s, e in zip(timeline.step_start_s, timeline.step_end_s, strict=True)
    )
    # Stalls: 0.5 s before step 0 (in0), 0.5 s before step 5 (x), 0.2 s tail (out).
    assert _spans(_bars(fig, GID_STALLS)) == [(0.0, 0.5), (5.5, 0.5), (6.5, 0.2)]
    loads = _spans(_bars(fig, f"{GID_DMA}-{TransferKind.LOAD.value}"))
    assert loads == [(0.0, 0.5), (4.5, 1.5)]
    assert _spans(_bars(fig, f"{GID_DMA}-{TransferKind.STORE.value}")) == [(6.5, 0.2)]
    assert "latency 6.7 s" in fig.axes[0].get_title("left")


def test_schedule_puts_timelines_on_one_time_scale_under_the_map(tmp_path) -> None:
    problem = section7_problem()
    before, after = section7_plan(problem, 5), section7_plan(problem, 3)
    lanes = [("before", simulate(problem, before)), ("after", simulate(problem, after))]
    path = tmp_path / "schedule.svg"
    fig = plot_schedule(problem, after, lanes, path)
    assert path.read_text().lstrip().startswith("<?xml")
    assert len(fig.axes) == 4  # memory map, live bytes, two timelines
    ax_before, ax_after = fig.axes[2], fig.axes[3]
    assert ax_before.get_xlim() == ax_after.get_xlim() == pytest.approx((0, 7.7))
    assert ax_before.get_title("left").startswith("before: overlap model, latency 7.7 s")


def test_timeline_shows_itself_in_jupyter() -> None:
    problem = section7_problem()
    html = simulate(problem, section7_plan(problem, 4))._repr_html_()
    assert "DMA hidden behind compute" in html and "data:image/png;base64," in html
