"""Packing plans that only choose stays: offsets valid, traffic unchanged, trail fallback,
stays repaired where they overflow."""

from __future__ import annotations

import random

import pytest
from helpers import random_graph, spill_case

from memplan.accelerator import Accelerator
from memplan.analysis import named_order
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.problem import Problem, Scope
from memplan.solver import Budget
from memplan.solvers.order_search import search_order
from memplan.solvers.packing import pack_repaired, pack_stays, pack_trail
from memplan.solvers.replacement import scoped_touched, simulate
from memplan.validate import validate


@pytest.mark.parametrize("seed", range(40))
def test_packed_stays_are_valid_and_move_what_belady_moves(seed: int) -> None:
    problem, order = spill_case(seed)
    stays = simulate(problem, order, problem.capacity_bytes)
    belady = evaluate(problem, stays.plan(order)).non_compulsory_bytes
    packed = pack_stays(problem, order, problem.capacity_bytes, 2.0, seed)
    if packed is None:
        return  # the stays need more than the capacity once offsets are fixed
    assert validate(problem, packed) == []
    assert packed.order == order
    assert evaluate(problem, packed).non_compulsory_bytes == belady


@pytest.mark.parametrize("seed", range(40))
def test_a_trail_plan_comes_from_an_order_before_the_best_and_is_valid(seed: int) -> None:
    problem, order = spill_case(seed)
    found = search_order(problem, order, seed=seed, max_moves=400)
    packed = pack_trail(problem, found, problem.capacity_bytes, lambda: False, seed)
    earlier = [trail_order for _, trail_order in found.trail[:-1]]
    if packed is None:  # every probe failed, the last one at the start order
        start_packs = earlier and pack_stays(problem, earlier[0], problem.capacity_bytes, 0.3, seed)
        assert not start_packs
        return
    assert packed.order in earlier
    assert validate(problem, packed) == []
    score = dict((o, s) for s, o in found.trail)
    assert evaluate(problem, packed).non_compulsory_bytes == score[packed.order]


def test_pack_trail_stops_when_told() -> None:
    problem, order = spill_case(5)
    found = search_order(problem, order, seed=5, max_moves=400)
    assert pack_trail(problem, found, problem.capacity_bytes, lambda: True, 5) is None


def _unpacked_stays_case(seed: int, spec: str) -> tuple[Problem, tuple[int, ...]]:
    """A 60-op random graph whose model order's Belady stays do not pack at ``spec``
    (seeds found by search: the allocator's portfolio and exact search both fail)."""
    scope = (Scope.ACTIVATIONS, Scope.ALL)[seed % 2]
    base = Problem(random_graph(seed, 60), Accelerator("t", 0, 64), scope)
    problem = base.with_capacity(resolve_budget(spec, base).capacity_bytes)
    order = named_order(problem.graph, "model", problem.aligned_sizes_bytes, problem.in_scope)
    return problem, order


UNPACKED = [(3, "MR"), (4, "MR"), (10, "MH"), (11, "MH"), (16, "MR"), (17, "MH")]


@pytest.mark.parametrize(("seed", "spec"), UNPACKED)
def test_stays_repaired_where_they_overflow_pack_and_are_valid(seed: int, spec: str) -> None:
    problem, order = _unpacked_stays_case(seed, spec)
    repaired = pack_repaired(problem, order, problem.capacity_bytes, Budget(time_limit_s=30), 0)
    assert repaired is not None and repaired.order == order
    assert validate(problem, repaired) == []
    # Belady under lower bounds at some steps: never fewer bytes than at the capacity.
    belady = evaluate(problem, simulate(problem, order, problem.capacity_bytes).plan(order))
    assert evaluate(problem, repaired).non_compulsory_bytes >= belady.non_compulsory_bytes


def test_the_repair_packs_stays_the_allocator_cannot():
    """On most of these cases the stays at the capacity do not pack within 1 s (all of
    them did not, where the seeds were found); the repair packs every one."""
    unpacked = 0
    for seed, spec in UNPACKED:
        problem, order = _unpacked_stays_case(seed, spec)
        unpacked += pack_stays(problem, order, problem.capacity_bytes, 1.0, 0) is None
        limit = Budget(time_limit_s=30)
        assert pack_repaired(problem, order, problem.capacity_bytes, limit, 0) is not None
    assert unpacked >= len(UNPACKED) // 2


def test_a_repair_with_no_time_left_returns_nothing() -> None:
    problem, order = _unpacked_stays_case(3, "MR")
    stopped = Budget(time_limit_s=30)
    stopped.stop_event.set()
    assert pack_repaired(problem, order, problem.capacity_bytes, stopped, 0) is None


@pytest.mark.parametrize("seed", range(30))
def test_belady_keeps_the_live_bytes_within_each_steps_bound(seed: int) -> None:
    """Bounds per step (between the step's working set and the capacity) are respected;
    bounds all at the capacity are the plain simulation."""
    problem, order = spill_case(seed)
    capacity, sizes = problem.capacity_bytes, problem.aligned_sizes_bytes
    touched = scoped_touched(problem)
    floor = [sum(sizes[t] for t in touched[op]) for op in order]
    plain = simulate(problem, order, capacity)
    assert simulate(problem, order, capacity, capacity_by_step=[capacity] * len(order)) == plain
    rng = random.Random(seed)
    bounds = [rng.randint(low, capacity) for low in floor]
    stays = simulate(problem, order, capacity, capacity_by_step=bounds).stays
    for step, bound in enumerate(bounds):
        live = sum(sizes[s.tensor] for s in stays if s.start <= step < s.end)
        assert live <= bound
