"""The step-by-step placement state: invariants over random move sequences, undo, plans."""

from __future__ import annotations

import itertools
import random

import pytest

from memplan.accelerator import Accelerator
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.ir import GraphBuilder, TensorKind
from memplan.placement import Move, MoveKind, PlacementState
from memplan.plan import Arrive, Leave
from memplan.problem import Problem, Scope
from memplan.testing.graphs import random_dag
from memplan.validate import validate

KIB = 1024


def _problems(seeds: range) -> list[Problem]:
    """Random graphs in both scopes at M_R and a little above (tight memories)."""
    problems = []
    for seed in seeds:
        graph = random_dag(seed, 12 + seed % 25)
        for scope in Scope:
            base = Problem(graph, Accelerator("t", 1 << 30, alignment_bytes=64), scope)
            for extra in (0, 1280, 6400):
                problems.append(base.with_capacity(base.min_resident_bytes + extra))
    return problems


def _check_memory(state: PlacementState) -> None:
    """Open residencies are aligned, inside the capacity and pairwise disjoint."""
    blocks = sorted((r.offset, r.offset + state.sizes[r.tensor]) for r in state.open_residencies())
    for low, high in blocks:
        assert low % state.alignment_bytes == 0 and low >= 0 and high <= state.capacity_bytes
    for (_, high), (low, _) in itertools.pairwise(blocks):
        assert high <= low, blocks
    assert state.live_bytes == sum(high - low for low, high in blocks)


def _play_random(state: PlacementState, rng: random.Random, check_undo: bool) -> int:
    """Play random legal moves to the end, checking invariants; returns the move count."""
    moves = 0
    while not state.done:
        legal = state.legal_moves()
        assert legal[-1].kind is MoveKind.COMPACT  # always available: no dead end
        # Mostly placements, so games end in a sensible number of moves.
        places = [m for m in legal if m.kind is MoveKind.PLACE]
        move = rng.choice(places) if places and rng.random() < 0.75 else rng.choice(legal)
        if check_undo:
            before = state.signature()
            state.apply(move)
            state.undo()
            assert state.signature() == before, move
        state.apply(move)
        _check_memory(state)
        moves += 1
    return moves


def test_random_games_end_in_valid_plans_scored_like_the_cost_model() -> None:
    rng = random.Random(7)
    for problem in _problems(range(20)):
        state = PlacementState(problem, range(problem.graph.num_ops))
        _play_random(state, rng, check_undo=True)
        plan = state.plan()
        assert validate(problem, plan) == [], problem.graph.name
        assert state.non_compulsory_bytes == evaluate(problem, plan).non_compulsory_bytes


def test_undo_all_the_way_back_restores_the_start() -> None:
    rng = random.Random(3)
    for problem in _problems(range(6)):
        state = PlacementState(problem, range(problem.graph.num_ops))
        start = state.signature()
        moves = _play_random(state, rng, check_undo=False)
        assert state.moves_played == moves
        while state.moves_played:
            state.undo()
        assert state.signature() == start


def test_offset_candidates_are_the_canonical_legal_ones() -> None:
    rng = random.Random(11)
    for problem in _problems(range(8)):
        state = PlacementState(problem, range(problem.graph.num_ops))
        while not state.done:
            tensor = state.next_tensor
            assert tensor is not None
            size, align = state.sizes[tensor], state.alignment_bytes
            offered = state.offset_candidates()
            # Every offered offset is legal, and in every free gap where the tensor fits,
            # both ends (the lowest and the highest legal offset) are offered.
            everything = [o for o in range(0, state.capacity_bytes, align) if state.fits(o, size)]
            assert set(offered) <= set(everything)
            for low, high in state.free_gaps():
                inside = [o for o in everything if low <= o and o + size <= high]
                if inside:
                    assert inside[0] in offered and inside[-1] in offered, (low, high)
            # The lowest legal offset is always among them (what the online pass uses).
            if everything:
                assert offered[0] == everything[0]
                assert state.lowest_offsets([tensor]) == [everything[0]]
            state.apply(rng.choice(state.legal_moves()))


def _chain() -> Problem:
    """x -> a -> b -> c, with a read again at the end: ``d = f(a, c)`` (graph output)."""
    g = GraphBuilder("chain")
    x = g.tensor("x", KIB, TensorKind.INPUT)
    a, b, c = g.tensor("a", KIB), g.tensor("b", KIB), g.tensor("c", KIB)
    d = g.tensor("d", KIB, is_output=True)
    g.op("pa", "Conv", [x], [a])
    g.op("pb", "Relu", [a], [b])
    g.op("pc", "Relu", [b], [c])
    g.op("pd", "Add", [a, c], [d])
    return Problem(g.build(), Accelerator("t", 3 * KIB, alignment_bytes=64))


def test_evict_stores_once_and_reload_costs_traffic() -> None:
    problem = _chain()
    state = PlacementState(problem, range(4))
    a = problem.graph.tensor_by_name("a").id
    state.place(0)  # x
    state.place(KIB)  # a
    assert state.step == 1 and not state.is_open(0)  # x closed after its last use
    with pytest.raises(ValueError, match="not an eviction candidate"):
        state.evict(a)  # step 1 reads a
    state.place(0)  # b
    assert state.step == 2 and state.eviction_candidates() == [a]
    state.evict(a)  # a is read again at step 3: stored
    assert state.non_compulsory_bytes == KIB and state.has_dram_copy(a)
    while not state.done:
        state.place(state.offset_candidates()[0])
    plan = state.plan()
    assert validate(problem, plan) == []
    first, second = plan.residencies_of(a)
    assert (first.leave, second.arrive, second.leave) == (Leave.STORE, Arrive.LOAD, Leave.DROP)
    assert state.non_compulsory_bytes == 2 * KIB  # the spill store and the reload
    assert state.non_compulsory_bytes == evaluate(problem, plan).non_compulsory_bytes


def test_compact_reloads_the_working_set_from_offset_zero() -> None:
    problem = _chain()
    state = PlacementState(problem, range(4))
    state.place(2 * KIB)  # x at the top
    state.place(KIB)  # a in the middle
    state.place(0)  # b: step 1 done
    state.compact()  # step 2 (b -> c): b stored, then b and c stacked from 0
    b = problem.graph.tensor_by_name("b").id
    assert state.step == 3 and state.compactions == 1
    stays = [r for r in state.closed if r.tensor == b]
    assert stays[0].leave is Leave.STORE and stays[1].arrive is Arrive.LOAD
    assert {r.offset for r in state.open_residencies()} <= {0, KIB}


def test_illegal_moves_are_refused_without_changing_the_state() -> None:
    problem = _chain()
    state = PlacementState(problem, range(4))
    before = state.signature()
    with pytest.raises(ValueError, match="does not fit"):
        state.place(3 * KIB)  # past the capacity
    with pytest.raises(ValueError, match="does not fit"):
        state.place(32)  # unaligned
    assert state.signature() == before
    state.place(0)
    with pytest.raises(ValueError, match="does not fit"):
        state.place(0)  # on top of x
    assert Move(MoveKind.PLACE, 64) in state.legal_moves() or state.fits(KIB, KIB)


def test_capacity_below_mr_is_a_config_error() -> None:
    problem = _chain()
    with pytest.raises(ConfigError, match="below M_R"):
        PlacementState(problem.with_capacity(KIB), range(4))


def test_without_addresses_only_live_bytes_count() -> None:
    problem = _chain()
    state = PlacementState(problem, range(4), addresses=False, undo=False)
    assert state.offset_candidates() == [0]
    state.place(0)
    state.place(0)  # no overlap check: offsets are not tracked
    assert state.live_bytes == KIB and state.step == 1  # x closed after step 0
