"""Packing plans that only choose stays: offsets valid, traffic unchanged, trail fallback."""

from __future__ import annotations

import pytest
from helpers import spill_case

from memplan.cost import evaluate
from memplan.solvers.order_search import search_order
from memplan.solvers.packing import pack_stays, pack_trail
from memplan.solvers.replacement import simulate
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
