"""The plan figure: one rectangle per residency, the capacity line, a saved image."""

from __future__ import annotations

import numpy as np
import pytest
from plan_fixtures import diamond_problem, naive_plan, spill_plan

from memplan.viz.plots import GID_CAPACITY, GID_LIVE, GID_RESIDENCIES, live_bytes_of_plan, plot_plan


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
