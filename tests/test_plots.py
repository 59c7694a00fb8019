"""The plan figure: one rectangle per residency, the capacity line, a saved image."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from plan_fixtures import diamond_problem, naive_plan, spill_plan

from memplan.accelerator import Accelerator
from memplan.errors import ConfigError, InvalidPlanError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Plan, Residency, memory_map
from memplan.problem import Problem
from memplan.viz.plots import (
    GID_CAPACITY,
    GID_LIVE,
    GID_RESIDENCIES,
    draw_map,
    draw_plan,
    live_bytes_of_plan,
    plot_plan,
)


def _by_gid(fig, gid):
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


@pytest.mark.parametrize("spill", [False, True])
def test_one_rectangle_per_residency_and_capacity_lines(spill):
    problem = diamond_problem()
    plan = spill_plan(problem) if spill else naive_plan(problem)
    fig = plot_plan(problem, plan)
    [collection] = _by_gid(fig, GID_RESIDENCIES)
    paths = collection.get_paths()
    assert len(paths) == len(plan.residencies)
    # Each rectangle spans the residency's steps and bytes.
    sizes = {r: problem.graph.tensors[r.tensor].size_bytes for r in plan.residencies}
    boxes = sorted(
        (tuple(np.round(p.get_extents().bounds).astype(int)) for p in paths),
    )
    expected = sorted((r.start, r.offset, r.end - r.start, sizes[r]) for r in plan.residencies)
    assert boxes == expected
    capacity_lines = _by_gid(fig, GID_CAPACITY)
    assert len(capacity_lines) == 2  # memory map and live-bytes panel
    for line in capacity_lines:
        assert list(line.get_ydata()) == [problem.capacity_bytes] * 2


def test_live_curve_is_the_sum_of_resident_sizes():
    problem = diamond_problem()
    plan = spill_plan(problem)
    live = live_bytes_of_plan(problem, plan)
    sizes = [t.size_bytes for t in problem.graph.tensors]
    for step in range(len(plan.order)):
        assert live[step] == sum(sizes[r.tensor] for r in plan.residencies if r.covers(step))
    fig = plot_plan(problem, plan)
    [curve] = _by_gid(fig, GID_LIVE)
    assert list(curve.get_ydata()[:-1]) == list(live)


def test_load_and_store_marks_are_counted_in_the_legend():
    problem = diamond_problem()
    plan = spill_plan(problem)
    fig = plot_plan(problem, plan)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    loads = sum(r.arrive.value == "load" for r in plan.residencies)
    stores = sum(r.leave.value == "store" for r in plan.residencies)
    assert f"loaded from DRAM ({loads})" in labels
    assert f"stored to DRAM ({stores})" in labels


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_saved_image_exists(tmp_path, suffix):
    problem = diamond_problem()
    path = tmp_path / f"plan.{suffix}"
    plot_plan(problem, naive_plan(problem), path)
    data = path.read_bytes()
    assert len(data) > 1000
    if suffix == "png":
        assert data.startswith(b"\x89PNG")
    else:
        assert b"<svg" in data[:2000]


def _two_op_problem() -> Problem:
    """x -> a -> y -> b -> z: 2 ops, 3 tensors (the outside tester's graph)."""
    g = GraphBuilder("g")
    x = g.tensor("x", 100, TensorKind.INPUT)
    y = g.tensor("y", 100)
    z = g.tensor("z", 100, is_output=True)
    g.op("a", "A", [x], [y])
    g.op("b", "B", [y], [z])
    return Problem(g.build(), Accelerator("t", 1024, alignment_bytes=64))


def _axes_call(draw: Callable[..., Any]) -> Callable[[Problem, Plan], Any]:
    """``draw`` (draw_map or draw_plan) into fresh axes, as figures of other modules do."""

    def call(problem: Problem, plan: Plan) -> Any:
        from matplotlib.figure import Figure

        fig = Figure()
        axes = [fig.add_subplot(2, 1, 1), fig.add_subplot(2, 1, 2)]
        return draw(*axes[: 1 if draw is draw_map else 2], problem, plan)

    return call


def _entry_points() -> list[tuple[str, Callable[[Problem, Plan], Any]]]:
    """Every public viz function taking a problem and a plan, called the plain way."""
    from memplan.viz.cuts import plot_cuts
    from memplan.viz.display import PlanView, show_plan
    from memplan.viz.explore import plot_step, resident_table, step_view
    from memplan.viz.timeline import plot_schedule, plot_timeline

    return [
        ("plot_plan", plot_plan),
        ("live_bytes_of_plan", live_bytes_of_plan),
        ("draw_map", _axes_call(draw_map)),
        ("draw_plan", _axes_call(draw_plan)),
        ("plot_timeline", plot_timeline),
        ("plot_schedule", plot_schedule),
        ("plot_cuts", lambda problem, plan: plot_cuts(problem, plan, [])),
        ("resident_table", lambda problem, plan: resident_table(problem, plan, 0)),
        ("plot_step", lambda problem, plan: plot_step(problem, plan, 0)),
        ("step_view", step_view),
        ("PlanView", PlanView),
        ("PlanView", show_plan),
        ("memory_map", lambda problem, plan: memory_map(plan, problem.graph, 1024)),
    ]


@pytest.mark.parametrize(
    "where, draw", [pytest.param(w, d, id=f"{w}-{i}") for i, (w, d) in enumerate(_entry_points())]
)
def test_a_plan_of_another_problem_is_refused_in_one_line(where, draw, monkeypatch):
    # A plan of another graph indexed the graph's tensors past the end: a raw
    # "IndexError: tuple index out of range" (or a silent picture), where evaluate and
    # simulate already said "not a permutation ... another problem?".
    monkeypatch.setenv("MEMPLAN_STATIC_VIEWS", "1")
    problem = _two_op_problem()
    other = naive_plan(diamond_problem())  # 6 ops, 9 tensors
    with pytest.raises(
        InvalidPlanError,
        match=rf"^{where}: the plan's order is not a permutation of the 2 ops of graph 'g' "
        r"\(was the plan made for another problem\?",
    ):
        draw(problem, other)
    # The tester's hand-built plan: a permutation, but a residency of tensor 7 over [0, 5).
    broken = Plan.make([1, 0], [Residency(7, 0, 5, -64)])  # type: ignore[arg-type]
    with pytest.raises(
        InvalidPlanError,
        match=rf"^{where}: residency #0 \(tensor 7, steps \[0, 5\)\) does not fit graph 'g' "
        r"\(3 tensors, 2 steps\)",
    ):
        draw(problem, broken)
    with pytest.raises(InvalidPlanError, match=rf"^{where}: order\[0\] is 'a'"):
        draw(problem, Plan(("a", "b"), ()))  # type: ignore[arg-type]


def test_a_plan_that_fits_is_still_drawn_by_every_entry_point(monkeypatch):
    monkeypatch.setenv("MEMPLAN_STATIC_VIEWS", "1")
    problem = _two_op_problem()
    plan = naive_plan(problem)
    for _, draw in _entry_points():
        draw(problem, plan)


@pytest.mark.parametrize("width", [0, -3, 2.5, "72", True])
def test_memory_map_refuses_a_width_below_one_column(width):
    # width=0 was a ZeroDivisionError; a negative one drew an empty map.
    problem = diamond_problem()
    with pytest.raises(ConfigError, match=rf"^memory_map: width is {width!r}; give a whole"):
        memory_map(naive_plan(problem), problem.graph, problem.capacity_bytes, width=width)


def test_memory_map_of_one_column_still_draws():
    problem = diamond_problem()
    plan = naive_plan(problem)
    text = memory_map(plan, problem.graph, problem.capacity_bytes, width=1)
    rows = text.splitlines()[1:]
    assert len(rows) == len(plan.residencies)
    assert all(row.endswith("|") and row[-3] == "|" for row in rows)  # one column each
