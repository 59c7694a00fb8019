"""Tests of dnc's order search: the kernel's score, the moves, the search's guarantees."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import spill_case

from memplan.accelerator import Accelerator
from memplan.analysis import check_order
from memplan.cost import evaluate
from memplan.ir import GraphBuilder, TensorKind
from memplan.problem import Problem, Scope
from memplan.solver import Budget
from memplan.solvers import order_search
from memplan.solvers.order_search import (
    belady_traffic,
    chains,
    hoisted_window,
    op_neighbours,
    problem_arrays,
    search_order,
)
from memplan.solvers.replacement import simulate
from memplan.testing import tiny_spill_graph


@pytest.mark.parametrize("seed", range(120))
def test_the_kernel_scores_what_the_replacement_pass_moves(seed: int) -> None:
    """Python and compiled kernels give the cost model's non-compulsory bytes of the
    replacement pass's stays (the same Belady rule, ties included)."""
    problem, order = spill_case(seed)
    stays = simulate(problem, order, problem.capacity_bytes)
    want = evaluate(problem, stays.plan(order)).non_compulsory_bytes
    arrays = problem_arrays(problem)
    as_array = np.array(order, np.int64)
    moving = np.zeros(len(order), np.int64)
    assert belady_traffic.python()(as_array, problem.capacity_bytes, arrays, moving) == want
    assert (moving.sum() > 0) == (want > 0)  # the steps that move bytes are marked
    again = np.zeros(len(order), np.int64)
    assert belady_traffic.compiled()(as_array, problem.capacity_bytes, arrays, again) == want
    assert np.array_equal(moving, again)


def test_the_kernel_refuses_a_capacity_below_an_ops_working_set() -> None:
    problem, order = spill_case(3)
    arrays = problem_arrays(problem)
    low = problem.min_resident_bytes - 1
    moving = np.zeros(len(order), np.int64)
    assert belady_traffic.python()(np.array(order, np.int64), low, arrays, moving) == -1


@pytest.mark.parametrize("seed", range(20))
def test_chains_cover_every_op_once_and_link_one_to_one(seed: int) -> None:
    problem, _ = spill_case(seed)
    preds, succs = op_neighbours(problem)
    runs = chains(preds, succs)
    assert sorted(op for run in runs for op in run) == list(range(problem.graph.num_ops))
    for run in runs:
        for a, b in itertools.pairwise(run):
            assert succs[a] == [b] and preds[b] == [a]


@pytest.mark.parametrize("seed", range(30))
def test_search_keeps_orders_topological_never_worse_and_reproducible(seed: int) -> None:
    problem, order = spill_case(seed)
    found = search_order(problem, order, seed=seed, max_moves=400)
    check_order(problem.graph, found.order)
    score = belady_traffic.python()(
        np.array(found.order, np.int64),
        problem.capacity_bytes,
        problem_arrays(problem),
        np.zeros(len(order), np.int64),
    )
    assert found.best_bytes == score <= found.start_bytes
    assert found.improvements <= found.moves <= 400
    again = search_order(problem, order, seed=seed, max_moves=400)
    assert again == found


@pytest.mark.parametrize("seed", [0, 37, 48, 69, 140, 181])  # searches that improve 2-4 times
@pytest.mark.parametrize("length", [2, order_search.TRAIL_LENGTH])
def test_the_trail_runs_from_the_start_to_the_best_order_with_falling_scores(
    seed: int, length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every order on the trail is topological and scored right; it starts at the start
    order and ends at the best one, each score below the one before, thinned to at most
    its length."""
    monkeypatch.setattr(order_search, "TRAIL_LENGTH", length)
    problem, order = spill_case(seed)
    found = search_order(problem, order, seed=seed, max_moves=400)
    arrays, scratch = problem_arrays(problem), np.zeros(len(order), np.int64)
    assert found.trail[0] == (found.start_bytes, tuple(order))
    assert found.trail[-1] == (found.best_bytes, found.order)
    assert len(found.trail) <= min(found.improvements + 1, length)
    scores = [value for value, _ in found.trail]
    assert all(a > b for a, b in itertools.pairwise(scores))
    for value, kept in found.trail:
        check_order(problem.graph, kept)
        assert (
            belady_traffic.python()(
                np.array(kept, np.int64), problem.capacity_bytes, arrays, scratch
            )
            == value
        )


def test_search_improves_a_bad_order_of_independent_branches() -> None:
    """Two branches run interleaved keep both alive; the search learns to finish one
    branch before starting the other, and moves fewer bytes (here: none)."""
    b = GraphBuilder("two-branches")
    x = b.tensor("x", 1024, TensorKind.INPUT)
    ends = []
    for branch in "ab":
        prev = x
        for i, size in enumerate((4096, 4096, 1024)):
            out = b.tensor(f"{branch}{i}", size)
            b.op(f"op_{branch}{i}", "Conv", [prev], [out])
            prev = out
        ends.append(prev)
    y = b.tensor("y", 1024, is_output=True)
    b.op("join", "Add", ends, [y])
    graph = b.build()
    # One branch at a time needs 9,216 B at most; interleaved, 12,288 B.
    problem = Problem(graph, Accelerator("t", 1 << 30, 1), Scope.ACTIVATIONS)
    problem = problem.with_capacity(10_240)
    ops = {op.name: op.id for op in graph.ops}
    interleaved = [ops[n] for n in ("op_a0", "op_b0", "op_a1", "op_b1", "op_a2", "op_b2", "join")]
    found = search_order(problem, interleaved, seed=1, max_moves=2_000)
    assert found.start_bytes > 0
    assert found.best_bytes == 0


def test_search_stops_when_asked_and_on_a_chain() -> None:
    problem, order = spill_case(5)
    stopped = search_order(problem, order, should_stop=lambda: True)
    assert stopped.moves == 0 and stopped.order == order
    chain = Problem(tiny_spill_graph(0, 1), Accelerator("t", 1 << 30, 1))
    chain = chain.with_capacity(chain.min_resident_bytes)
    budget = Budget(time_limit_s=30)
    alone = search_order(chain, tuple(range(chain.graph.num_ops)), should_stop=budget.should_stop)
    assert not budget.should_stop()  # it ended by itself
    check_order(chain.graph, alone.order)


@pytest.mark.parametrize("seed", range(12))
def test_a_search_past_its_time_goes_on_while_it_improves(seed: int) -> None:
    """With ``must_stop``, ``should_stop`` ends the search only once its best score has
    not fallen within the latest IMPROVING_SHARE of its moves: the search takes the same
    path as without a clock, and stops at the first check where it has stalled."""
    problem, order = spill_case(seed)
    found = search_order(
        problem, order, seed=seed, should_stop=lambda: True, must_stop=lambda: False
    )
    same = search_order(problem, order, seed=seed, max_moves=found.moves)
    assert same == found  # the same moves: only when it ends changes
    check_order(problem.graph, found.order)
    assert found.best_bytes <= found.start_bytes
    plain = search_order(problem, order, seed=seed)  # no clock: it ends by itself
    assert found.moves <= plain.moves
    if found.moves < plain.moves:  # time was up, and it had stalled: its best came early
        assert found.moves % order_search.MOVES_PER_CHECK == 0
        early = search_order(problem, order, seed=seed, max_moves=(found.moves + 1) // 2)
        assert early.best_bytes == found.best_bytes
    # must_stop ends it at once whatever it finds.
    halted = search_order(
        problem, order, seed=seed, should_stop=lambda: False, must_stop=lambda: True
    )
    assert halted.moves == 0 and halted.order == order


def test_a_search_that_improves_outlasts_its_time_only_up_to_must_stop() -> None:
    """A search improving a bad order goes on past ``should_stop`` and ends when
    ``must_stop`` says so (looked at every MOVES_PER_CHECK moves)."""
    problem, order = spill_case(5)
    budget = {"checks": 0}

    def must_stop() -> bool:
        budget["checks"] += 1
        return budget["checks"] > 2  # two checks pass, the third ends it

    found = search_order(problem, order, seed=0, should_stop=lambda: True, must_stop=must_stop)
    assert found.moves <= 2 * order_search.MOVES_PER_CHECK


def _hoisted_reference(order, step_of, links, op, low, high, earlier):
    """The block by its definition: ``op`` and the ops linked to it transitively at
    steps ``low`` .. ``high``, moved to the window's front (earlier) or back."""
    block, frontier = {op}, [op]
    while frontier:
        for other in links[frontier.pop()]:
            if other not in block and low <= step_of[other] <= high:
                block.add(other)
                frontier.append(other)
    window = [int(o) for o in order[low : high + 1]]
    ins, outs = [o for o in window if o in block], [o for o in window if o not in block]
    return ins + outs if earlier else outs + ins


@pytest.mark.parametrize("seed", range(30))
def test_the_hoisting_kernel_moves_the_linked_block_and_keeps_the_order_legal(seed: int) -> None:
    """Python and compiled :func:`hoisted_window` move exactly the ops linked to ``op``
    within the window to its front (or back), and the order stays topological."""
    problem, order = spill_case(seed)
    rng = np.random.default_rng(seed)
    preds, succs = op_neighbours(problem)
    as_array = np.array(order, np.int64)
    step_of = np.empty(len(order), np.int64)
    step_of[as_array] = np.arange(len(order))
    for _ in range(20):
        earlier = bool(rng.integers(2))
        here = int(rng.integers(len(order)))
        low, high = (
            (int(rng.integers(0, here + 1)), here)
            if earlier
            else (here, int(rng.integers(here, len(order))))
        )
        op = int(as_array[here])
        links = preds if earlier else succs
        starts, linked = order_search.csr(links)
        want = _hoisted_reference(as_array, step_of, links, op, low, high, earlier)
        for version in (hoisted_window.python(), hoisted_window.compiled()):
            moved = version(as_array, step_of, starts, linked, op, low, high, earlier)
            if want == [int(o) for o in as_array[low : high + 1]]:
                assert len(moved) == 0  # nothing changes: no move
                continue
            assert [int(o) for o in moved] == want
            check_order(
                problem.graph,
                tuple(
                    int(o) for o in np.concatenate((as_array[:low], moved, as_array[high + 1 :]))
                ),
            )


def test_a_search_on_the_python_kernels_switches_to_the_compiled_ones_when_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a fresh installation the search starts on the Python kernels (the compiled ones
    are being compiled aside) and takes the compiled ones as soon as they are in the
    cache: before, a 30-s dnc solve stayed on the Python ones to its end. The scores are
    the same either way, so the search takes the same path."""
    from memplan.testing import random_dag

    problem = Problem(random_dag(7, 120), Accelerator("t", 1, alignment_bytes=64))
    problem = problem.with_capacity(problem.min_resident_bytes)
    start = list(range(problem.graph.num_ops))
    python_only = search_order(problem, start, seed=3, max_moves=400, compiled=False)

    looks: list[bool] = []

    def ready() -> bool:
        looks.append(len(looks) >= 2)  # not at the start, nor at the first look
        return looks[-1]

    compiled_calls = [0]
    real_entry = order_search.belady_traffic.entry

    def counting_entry():
        kernel = real_entry()

        def call(*args):
            compiled_calls[0] += 1
            return kernel(*args)

        return call

    monkeypatch.setattr(order_search, "_compiled_ready", ready)
    monkeypatch.setattr(order_search, "RECHECK_S", 0.0)
    monkeypatch.setattr(order_search.belady_traffic, "fast", order_search.belady_traffic.python)
    monkeypatch.setattr(order_search.hoisted_window, "fast", order_search.hoisted_window.python)
    monkeypatch.setattr(order_search.belady_traffic, "entry", counting_entry)
    switched = search_order(problem, start, seed=3, max_moves=400)
    assert looks[:3] == [False, False, True] and compiled_calls[0] > 0
    assert switched == python_only
