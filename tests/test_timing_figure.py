"""The timeline figure: a bar per step and per transfer, stalls where steps wait."""

from __future__ import annotations

import pytest
from timing_examples import hand_rates_accelerator, section7_plan, section7_problem

from memplan.errors import ConfigError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.timing import TransferKind, simulate
from memplan.validate import validate
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


def test_resident_table_lists_what_is_on_chip_at_the_step(monkeypatch) -> None:
    from memplan.viz.explore import resident_table, residents_at, step_view

    problem = section7_problem()
    plan = section7_plan(problem, x_start=3)
    # At step 4: a3 (read), a4 (written), x (prefetched, idle until step 5).
    names = [problem.graph.tensors[r.tensor].name for r in residents_at(plan, 4)]
    assert names == ["a3", "a4", "x"]  # by offset: 4096, 5120, 8192
    html = resident_table(problem, plan, 4)
    assert "step 4: op4 (Conv), 3 tensors on chip" in html
    assert html.count("<tr>") == 3 and "idle" in html and "written" in html
    monkeypatch.setenv("MEMPLAN_STATIC_VIEWS", "1")
    view = step_view(problem, plan, step=4)
    assert "step 4: op4" in view._repr_html_() and "data:image/png;base64," in view
    with pytest.raises(ConfigError, match=r"step 6 is not a step of the plan; use 0 \.\. 5"):
        step_view(problem, plan, step=6)


def test_step_slider_where_ipywidgets_is_installed(monkeypatch) -> None:
    ipywidgets = pytest.importorskip("ipywidgets")
    from memplan.viz.explore import step_view

    monkeypatch.delenv("MEMPLAN_STATIC_VIEWS", raising=False)
    problem = section7_problem()
    widget = step_view(problem, section7_plan(problem, 3), step=2)
    assert isinstance(widget, ipywidgets.interactive)
    [slider] = [c for c in widget.children if isinstance(c, ipywidgets.IntSlider)]
    assert (slider.min, slider.max, slider.value) == (0, 5, 2)


def test_a_graph_without_ops_draws_empty_labelled_lanes() -> None:
    # plot_timeline and plot_schedule raised "zip() argument 2 is shorter than
    # argument 1" on a graph with no ops; solving, plot_plan and simulate handle it.
    g = GraphBuilder("noops")
    g.tensor("x", 64, TensorKind.INPUT)
    problem = Problem(g.build(), hand_rates_accelerator())
    plan = Plan.make([], [])
    assert validate(problem, plan) == []
    fig = plot_timeline(problem, plan)
    assert _spans(_bars(fig, GID_COMPUTE)) == [] and _spans(_bars(fig, GID_STALLS)) == []
    [ax] = fig.axes
    assert ax.get_title("left").startswith("overlap model, latency 0 ns")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["DMA", "compute"]
    assert "compute (0 steps)" in [t.get_text() for t in ax.get_legend().get_texts()]
    fig = plot_schedule(problem, plan)
    assert len(fig.axes) == 3  # memory map, live bytes, the (empty) timeline
    assert fig.axes[2].get_title("left").startswith("overlap model, latency 0 ns")
    assert "data:image/png;base64," in simulate(problem, plan)._repr_html_()


@pytest.mark.parametrize("step", [6, 99, -1, True, 2.0, "2"])
@pytest.mark.parametrize("where", ["resident_table", "plot_step", "step_view"])
def test_every_step_view_refuses_a_step_outside_the_plan(where, step, monkeypatch) -> None:
    # resident_table(problem, plan, 99) was an IndexError, plot_step(..., 99) and
    # plot_step(..., -1) drew a figure marking no step of the plan; step_view refused.
    from memplan.viz import explore

    monkeypatch.setenv("MEMPLAN_STATIC_VIEWS", "1")
    problem = section7_problem()
    plan = section7_plan(problem, x_start=3)
    view = getattr(explore, where)
    with pytest.raises(
        ConfigError, match=rf"^{where}: step {step!r} is not a step of the plan; use 0 \.\. 5$"
    ):
        view(problem, plan, step)
    view(problem, plan, 5)  # the last step is one


def test_a_plan_without_steps_has_no_step_to_view() -> None:
    from memplan.viz.explore import step_view

    g = GraphBuilder("noops")
    g.tensor("x", 64, TensorKind.INPUT)
    problem = Problem(g.build(), hand_rates_accelerator())
    with pytest.raises(ConfigError, match=r"step 0 is not a step of the plan; the plan has no"):
        step_view(problem, Plan.make([], []))
