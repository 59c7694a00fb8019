"""The traffic lower bound: never above the optimum over all plans (brute force)."""

from __future__ import annotations

import functools
import random

import networkx as nx
import pytest
from helpers import random_graph

from memplan.accelerator import Accelerator
from memplan.analysis import live_bytes_per_step, min_peak_order, steps_of
from memplan.problem import Problem, Scope
from memplan.schedule import min_peak_schedule, region_min_peak
from memplan.testing import min_traffic, tiny_spill_graph
from memplan.traffic_bound import traffic_lower_bound

KIB = 1024


def tiny_problem(seed: int, scope: Scope, extra_kib: int) -> Problem:
    problem = Problem(tiny_spill_graph(seed, 5), Accelerator("tiny", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes + extra_kib * KIB)


def bound_of(problem: Problem, region_ops=(2, 4, 8)) -> int:
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    order = min_peak_order(problem.graph, sizes, scope)
    schedule = min_peak_schedule(problem.graph, sizes, scope, order)
    return traffic_lower_bound(
        problem, order, min_peak_bound_bytes=schedule.lower_bound_bytes, region_ops=region_ops
    ).bound_bytes


CASES = [(s, scope, e) for s in (0, 1, 3, 4, 7) for scope in Scope for e in (0, 1)]


@functools.cache
def optimum_of(seed: int, scope: Scope, extra_kib: int) -> float:
    return min_traffic(tiny_problem(seed, scope, extra_kib))


@pytest.mark.parametrize(("seed", "scope", "extra_kib"), CASES)
def test_bound_never_exceeds_the_optimum_over_all_plans(seed, scope, extra_kib):
    problem = tiny_problem(seed, scope, extra_kib)
    assert 0 <= bound_of(problem) <= optimum_of(seed, scope, extra_kib)


def test_bound_proves_a_spill_is_needed():
    """Some tiny case where every plan spills: the bound is positive (and still valid)."""
    positive = [c for c in CASES if bound_of(tiny_problem(*c)) > 0]
    assert positive
    assert all(bound_of(tiny_problem(*c)) <= optimum_of(*c) for c in positive)


@pytest.mark.parametrize("seed", range(8))
def test_no_bound_when_the_min_peak_order_fits(seed):
    base = Problem(random_graph(seed, 30), Accelerator("t", 1 << 30, 64))
    sizes, scope = base.aligned_sizes_bytes, base.in_scope
    order = min_peak_order(base.graph, sizes, scope)
    peak = int(live_bytes_per_step(base.graph, order, sizes, scope).max())
    problem = base.with_capacity(peak)
    assert traffic_lower_bound(problem, order).bound_bytes == 0


@pytest.mark.parametrize("seed", range(10))
def test_a_region_bound_holds_for_every_order(seed):
    """The relaxation's bound B: every order has a step of the region with >= B live."""
    graph = random_graph(seed, 8)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = [True] * graph.num_tensors
    rng = random.Random(seed)
    region = sorted(rng.sample(range(graph.num_ops), 4))
    bound, _ = region_min_peak(graph, sizes, scope, region)
    assert bound is not None
    for order in nx.all_topological_sorts(graph.to_networkx()):
        live = live_bytes_per_step(graph, order, sizes, scope)
        step = steps_of(order)
        assert max(live[step[o]] for o in region) >= bound


@pytest.mark.parametrize("seed", range(10))
def test_no_order_has_more_live_bytes_at_an_op_than_can_be_live_there(seed):
    """U(o) (the tensors that can be live at o's step) bounds every order's live bytes."""
    from memplan.schedule import op_closures
    from memplan.traffic_bound import _live_masks, _possible_live_bytes

    problem = Problem(random_graph(seed, 8), Accelerator("t", 1 << 30, 64), Scope.ALL)
    graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
    possible = _possible_live_bytes(problem, _live_masks(problem, op_closures(graph)), sizes)
    for order in nx.all_topological_sorts(graph.to_networkx()):
        live = live_bytes_per_step(graph, order, sizes, scope)
        for step, op in enumerate(order):
            assert live[step] <= possible[op]


#: Seeds 9 and 12 are left out: their brute force takes minutes.
@pytest.mark.parametrize("seed", [s for s in range(8, 20) if s not in (9, 12)])
def test_bound_never_exceeds_the_optimum_on_more_graphs(seed):
    for scope in Scope:
        problem = tiny_problem(seed, scope, 0)
        assert 0 <= bound_of(problem) <= min_traffic(problem)


@pytest.mark.parametrize("seed", [0, 2, 3, 6])
def test_a_stop_ends_the_regions_and_keeps_a_valid_bound(seed, monkeypatch):
    """Stopped, it went on through every crowded stretch, each region scanning every
    tensor: dnc ran 45 s past Ctrl-C on a 30,000-op transformer with 1,000 stretches.
    Regions examined after a stop (bounded by their largest working set) now stop at
    FALLBACK_SCANS tensor visits, with the bound of those already examined."""
    import memplan.traffic_bound as tb

    base = Problem(random_graph(seed, 60), Accelerator("t", 1 << 30, 64))
    problem = base.with_capacity(base.min_resident_bytes)
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    order = min_peak_order(problem.graph, sizes, scope)
    full = traffic_lower_bound(problem, order)
    assert len(full.regions) > 2  # several crowded stretches, and the whole graph
    # A small graph still gets every region's working-set bound after a stop.
    stopped = traffic_lower_bound(problem, order, should_stop=lambda: True)
    assert len(stopped.regions) == len(full.regions)
    assert 0 <= stopped.bound_bytes <= full.bound_bytes
    monkeypatch.setattr(tb, "FALLBACK_SCANS", 0)
    cut = traffic_lower_bound(problem, order, should_stop=lambda: True)
    assert len(cut.regions) == 1  # the whole graph only (the M_P region)
    assert 0 <= cut.bound_bytes <= stopped.bound_bytes
    monkeypatch.setattr(tb, "FALLBACK_SCANS", problem.graph.num_tensors)
    one = traffic_lower_bound(problem, order, should_stop=lambda: True)
    assert len(one.regions) == 2 and one.bound_bytes <= stopped.bound_bytes
