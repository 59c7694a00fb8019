"""The whole-order search (dnc's phase 3, rl's ``searched`` order): move ops and chains
of ops, scored by Belady's traffic.

For a fixed order, the greedy stack's replacement (Belady, :mod:`.replacement`) is
hard to beat: on nasnet_a_large at MH a whole-graph spill model solved exactly (HiGHS,
fixed order, no placement) moves exactly the bytes Belady moves. What is left to win is
in the order itself, and windows of a few dozen ops (the ILP's reach) only see local
reorderings. This search sees the whole order:

- **score**: the non-compulsory bytes of Belady's replacement for the order at the
  capacity (:func:`belady_traffic`, the replacement pass of :func:`simulate` in a
  numba-compilable kernel, about 0.1 ms for 1,000 ops compiled); placement is left to
  the greedy stack afterwards, which packs the plan of the best order found;
- **moves**: a run of a *chain* (ops linked one to one: a branch of a NAS cell, a
  conv-bn-relu) taken out and put back, contiguous, anywhere between its first op's
  last predecessor and its last op's first successor, so every move keeps the order
  topological. A single op is a run of length one. A share of the moves
  (:data:`DEPENDENCY_MOVES`) instead takes an op a random distance earlier with the
  ancestors that stand between, or later with the descendants: work that forks and
  joins moves as one block (10 s searches from greedy's order, Belady bytes without ->
  with them: pnasnet5_cifar MR 7.27 -> 6.29 MB, randwire_ws_regular MH 21.2 -> 17.8 MB,
  amoebanet_a_mobile MR 6.84 -> 6.26 MB, darts_v2_cifar MH 2.88 -> 2.65 MB);
- **focus**: most moves start near a step that stores or reloads in the current order;
- **acceptance**: a move that does not raise the score is kept (plateaus are wide:
  most moves change nothing, so sideways moves are what lets the search drift).

It is anytime (the best order so far is kept; the budget is looked at between moves)
and reproducible: the moves come from ``random.Random(seed)``, so the same seed and the
same number of moves give the same order (``max_moves`` bounds the search instead of
the clock).

Measured in dnc (``memplan bench``, 30 s per cell, 2 cores; packed plans, greedy's best
order -> dnc): darts_v2_cifar MH 4.06 MB -> 2.65 MB, pnasnet5_cifar MH 8.45 MB -> 3.54 MB,
randwire_ws_regular MR 115.5 MB -> 74.9 MB, nasnet_a_large MH 38.5 MB -> 32.5 MB.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from memplan.problem import Problem
from memplan.solvers.jit import RECHECK_S, inline_kernel, kernel
from memplan.solvers.replacement import scoped_touched

#: Ops up to which the kernel runs as plain Python: loading the compiled kernel takes
#: about 0.25 s, a Python move about 0.06 ms at 30 ops but 0.3 ms at 100 ops (the search
#: tries up to STALL_MOVES_PER_OP moves per op).
PYTHON_OPS_LIMIT = 40

#: Moves between two looks at the clock.
MOVES_PER_CHECK = 32

#: Share of the moves that start near a step that moves bytes (within FOCUS_STEPS steps
#: of it): on a large graph the traffic sits in a few places (nasnet_a_large at MH: the
#: stem), and uniform moves would mostly change nothing.
FOCUS, FOCUS_STEPS = 0.8, 24

#: Orders kept on a search's trail at most (every other one is dropped when it is full).
TRAIL_LENGTH = 64

#: Share of the moves that move an op with its ancestors (earlier) or descendants (later)
#: instead of a piece of a chain.
DEPENDENCY_MOVES = 0.3

#: Moves in a row that find no other legal place before the search gives up.
IDLE_TRIES = 2_000

#: Moves per op without a better score before the search counts as converged (so that
#: without a clock it still ends, at the same order for the same seed).
STALL_MOVES_PER_OP = 100

#: Share of its moves within which a search past ``should_stop`` must have lowered its
#: best score to go on (up to ``must_stop``): on graphs of 1,000+ ops the search is
#: nowhere near converged when its round's time is up (randwire_ws_large, act, M_R,
#: from greedy's order: 418 MB after 1.5 s, 380 MB after 5 s, 349 MB after 15 s), and
#: cutting it for a fresh start throws that away; a search that stalled stops as before.
IMPROVING_SHARE = 0.5


class Arrays(NamedTuple):
    """What the kernel needs of a problem, as flat arrays (CSR lists per op / tensor)."""

    touched_start: np.ndarray  # per op + 1: start of its in-scope tensors in touched
    touched: np.ndarray  # in-scope inputs and outputs of each op
    consumers_start: np.ndarray  # per tensor + 1: start of its consumers in consumers
    consumers: np.ndarray  # ops that read each in-scope tensor
    aligned_bytes: np.ndarray  # per tensor: aligned size (room on chip)
    size_bytes: np.ndarray  # per tensor: size (traffic)
    produced: np.ndarray  # per tensor: an op writes it (an activation; else DRAM holds it)
    is_output: np.ndarray  # per tensor: a graph output (its one store is compulsory)


@inline_kernel
def _leave(
    x: int, resident: np.ndarray, slot: np.ndarray, on_chip: np.ndarray, open_count: int
) -> int:
    """Take ``x`` off the chip: out of the unordered ``resident`` list (its last entry
    fills the hole). Returns the new count of open tensors."""
    last = resident[open_count - 1]
    resident[slot[x]] = last
    slot[last] = slot[x]
    on_chip[x] = False
    return open_count - 1


@kernel
def belady_traffic(order: np.ndarray, capacity: int, a: Arrays, moving: np.ndarray) -> int:
    """Non-compulsory bytes of Belady's replacement for ``order`` (see the module doc).

    The rule is :func:`memplan.solvers.replacement.run_belady` without addresses: before
    each step, while the live aligned bytes plus the missing ones exceed ``capacity``,
    evict the bystander whose next use is furthest (ties: the larger, then the lower
    id); an evicted
    activation is stored once, a tensor back on chip after an eviction is a reload.
    ``moving[step]`` is set to 1 at the steps that store or reload (0 elsewhere). Returns
    -1 when an op's own tensors do not fit (``capacity`` below M_R).
    """
    n = order.shape[0]
    moving[:] = 0
    num_tensors = a.produced.shape[0]
    step_of = np.empty(n, np.int64)
    for i in range(n):
        step_of[order[i]] = i
    use_step = np.empty(a.consumers.shape[0], np.int64)  # per tensor: sorted read steps
    for x in range(num_tensors):
        lo, hi = a.consumers_start[x], a.consumers_start[x + 1]
        for k in range(lo, hi):
            use_step[k] = step_of[a.consumers[k]]
        for k in range(lo + 1, hi):  # sorted in place: np.sort's copies took half the time
            value = use_step[k]
            j = k - 1
            while j >= lo and use_step[j] > value:
                use_step[j + 1] = use_step[j]
                j -= 1
            use_step[j + 1] = value
    next_use = a.consumers_start[:-1].copy()  # per tensor: index of its next read
    on_chip = np.zeros(num_tensors, np.bool_)
    been_on_chip = np.zeros(num_tensors, np.bool_)
    in_dram = np.zeros(num_tensors, np.bool_)
    busy_step = np.full(num_tensors, -1, np.int64)  # the step that needs it on chip
    resident = np.empty(num_tensors, np.int64)  # the open tensors, unordered
    slot = np.empty(num_tensors, np.int64)  # its index in resident
    open_count = 0
    live = 0
    moved = 0
    for step in range(n):
        op = order[step]
        need = 0
        for k in range(a.touched_start[op], a.touched_start[op + 1]):
            x = a.touched[k]
            busy_step[x] = step
            if not on_chip[x]:
                need += a.aligned_bytes[x]
        while live + need > capacity:
            victim, victim_use, victim_size = -1, -1, -1
            for r in range(open_count):
                x = resident[r]
                if busy_step[x] == step:
                    continue
                use = n + 1
                if next_use[x] < a.consumers_start[x + 1]:
                    use = use_step[next_use[x]]
                size = a.aligned_bytes[x]
                if (
                    use > victim_use
                    or (use == victim_use and size > victim_size)
                    or (use == victim_use and size == victim_size and x < victim)
                ):  # the furthest next use; ties: the larger, then the lower id
                    victim, victim_use, victim_size = x, use, size
            if victim < 0:
                return -1
            if a.produced[victim] and not in_dram[victim]:
                if not a.is_output[victim]:  # an output's one store is compulsory
                    moved += a.size_bytes[victim]  # a spill store
                    moving[step] = 1
                in_dram[victim] = True
            open_count = _leave(victim, resident, slot, on_chip, open_count)
            live -= a.aligned_bytes[victim]
        for k in range(a.touched_start[op], a.touched_start[op + 1]):
            x = a.touched[k]
            if not on_chip[x]:
                if been_on_chip[x]:
                    moved += a.size_bytes[x]  # a reload
                    moving[step] = 1
                been_on_chip[x] = True
                on_chip[x] = True
                resident[open_count] = x
                slot[x] = open_count
                open_count += 1
                live += a.aligned_bytes[x]
        for k in range(a.touched_start[op], a.touched_start[op + 1]):
            x = a.touched[k]
            end = a.consumers_start[x + 1]
            while next_use[x] < end and use_step[next_use[x]] <= step:
                next_use[x] += 1
            if next_use[x] >= end and on_chip[x]:  # its last use: it leaves the chip
                open_count = _leave(x, resident, slot, on_chip, open_count)
                live -= a.aligned_bytes[x]
    return moved


@kernel
def hoisted_window(
    order: np.ndarray,
    step_of: np.ndarray,
    links_start: np.ndarray,
    links: np.ndarray,
    op: int,
    low: int,
    high: int,
    earlier: bool,
) -> np.ndarray:
    """``order[low : high + 1]`` with ``op`` and its ``links`` (CSR: predecessors when
    ``earlier``, else successors) found transitively within those steps moved to its
    front (``earlier``) or back, each side in its order (see :func:`_dependency_move`);
    an empty array when that changes nothing."""
    width = high - low + 1
    inside = np.zeros(width, np.bool_)
    inside[step_of[op] - low] = True
    stack = np.empty(width, np.int64)  # each op of the block is pushed once
    stack[0] = op
    top = 1
    while top > 0:
        top -= 1
        x = stack[top]
        for k in range(links_start[x], links_start[x + 1]):
            other = links[k]
            s = step_of[other]
            if low <= s <= high and not inside[s - low]:
                inside[s - low] = True
                stack[top] = other
                top += 1
    moved = np.empty(width, np.int64)
    j = 0
    for want in (earlier, not earlier):  # the block first when earlier, else last
        for i in range(width):
            if inside[i] == want:
                moved[j] = order[low + i]
                j += 1
    for i in range(width):
        if moved[i] != order[low + i]:
            return moved
    return np.empty(0, np.int64)


def csr(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``lists`` as (start per entry + 1, concatenated values) int64 arrays."""
    start = np.zeros(len(lists) + 1, np.int64)
    start[1:] = np.cumsum([len(values) for values in lists])
    return start, np.array([v for values in lists for v in values], np.int64)


def problem_arrays(problem: Problem) -> Arrays:
    """The kernel's view of ``problem``."""
    graph, scope = problem.graph, problem.in_scope
    touched = scoped_touched(problem)
    touched_start = np.zeros(graph.num_ops + 1, np.int64)
    touched_start[1:] = np.cumsum([len(t) for t in touched])
    consumers = [graph.consumers[x] if scope[x] else () for x in range(graph.num_tensors)]
    consumers_start = np.zeros(graph.num_tensors + 1, np.int64)
    consumers_start[1:] = np.cumsum([len(c) for c in consumers])
    return Arrays(
        touched_start,
        np.array([x for t in touched for x in t], np.int64),
        consumers_start,
        np.array([o for c in consumers for o in c], np.int64),
        np.array(problem.aligned_sizes_bytes, np.int64),
        np.array([t.size_bytes for t in graph.tensors], np.int64),
        np.array([p is not None for p in graph.producer], np.bool_),
        np.array([t.is_output for t in graph.tensors], np.bool_),
    )


def chains(
    graph_preds: Sequence[Sequence[int]], graph_succs: Sequence[Sequence[int]]
) -> list[list[int]]:
    """Maximal runs of ops linked one to one (``a``'s only successor is ``b`` and ``b``'s
    only predecessor is ``a``), every op in exactly one (most in a run of one)."""
    n = len(graph_preds)
    following = [-1] * n
    has_previous = [False] * n
    for op in range(n):
        if len(graph_succs[op]) == 1:
            succ = graph_succs[op][0]
            if len(graph_preds[succ]) == 1:
                following[op] = succ
                has_previous[succ] = True
    runs = []
    for op in range(n):
        if not has_previous[op]:
            run = [op]
            while following[run[-1]] != -1:
                run.append(following[run[-1]])
            runs.append(run)
    return runs


def op_neighbours(problem: Problem) -> tuple[list[list[int]], list[list[int]]]:
    """Per op, its distinct predecessor and successor ops (any tensor, in scope or not)."""
    graph = problem.graph
    preds: list[list[int]] = []
    succs: list[set[int]] = [set() for _ in graph.ops]
    for op in graph.ops:
        mine = sorted({int(p) for t in op.inputs if (p := graph.producer[t]) is not None})
        preds.append(mine)
        for pred in mine:
            succs[pred].add(op.id)
    return preds, [sorted(s) for s in succs]


@dataclass(frozen=True)
class Reordered:
    """The result of one order search."""

    order: tuple[int, ...]  # the best order found (topological)
    start_bytes: int  # Belady's non-compulsory bytes for the start order
    best_bytes: int  # ... for the best order (<= start_bytes)
    moves: int  # moves tried
    improvements: int  # moves that lowered the best score
    #: Orders the best score passed through, from the start to the best (scores falling;
    #: thinned to at most TRAIL_LENGTH): when the best order's plan does not pack, an
    #: earlier one may (the search does not see placement).
    trail: tuple[tuple[int, tuple[int, ...]], ...] = ()


def _score_kernel(num_ops: int, compiled: bool | None = None) -> Callable[..., Any]:
    """:func:`belady_traffic`, compiled (numba) by default above :data:`PYTHON_OPS_LIMIT`
    ops once it is ready (:meth:`memplan.solvers.jit.Kernel.fast`), else the Python
    version."""
    if compiled is None:  # compiled when it is ready (a fresh install compiles aside)
        return belady_traffic.fast() if num_ops > PYTHON_OPS_LIMIT else belady_traffic.python()
    return belady_traffic.entry() if compiled else belady_traffic.python()


def _compiled_ready() -> bool:
    """Whether the search's compiled kernels need no compiling now (in numba's cache)."""
    return belady_traffic.ready() and hoisted_window.ready()


def _hoist_kernel(num_ops: int, compiled: bool | None = None) -> Callable[..., Any]:
    """:func:`hoisted_window`, compiled or not as :func:`_score_kernel` chooses."""
    if compiled is None:
        return hoisted_window.fast() if num_ops > PYTHON_OPS_LIMIT else hoisted_window.python()
    return hoisted_window.entry() if compiled else hoisted_window.python()


def belady_score(problem: Problem, order: Sequence[int]) -> int:
    """Belady's non-compulsory bytes for ``order``: the score :func:`search_order`
    lowers."""
    n = problem.graph.num_ops
    score = _score_kernel(n)
    moving = np.zeros(n, np.int64)
    return int(
        score(np.array(order, np.int64), problem.capacity_bytes, problem_arrays(problem), moving)
    )


def search_order(
    problem: Problem,
    start: Sequence[int],
    *,
    seed: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
    must_stop: Callable[[], bool] | None = None,
    max_moves: int = 0,
    compiled: bool | None = None,
) -> Reordered:
    """Improve ``start`` by chain moves scored with :func:`belady_traffic`.

    Args:
        problem: the problem (capacity, sizes, scope).
        start: a topological order of all ops.
        seed: the moves' random seed.
        should_stop: looked at every :data:`MOVES_PER_CHECK` moves.
        must_stop: when given, ``should_stop`` ends the search only once it stalls (no
            better score within the latest :data:`IMPROVING_SHARE` of its moves), and
            this ends it in any case (looked at as often).
        max_moves: stop after this many moves tried (0: no limit). The search also ends
            after :data:`STALL_MOVES_PER_OP` moves per op without a better score.
        compiled: run the numba kernel (default: on graphs above :data:`PYTHON_OPS_LIMIT`
            ops).

    Returns:
        The best order and its score; the start's when nothing beats it.
    """
    arrays = problem_arrays(problem)
    n = problem.graph.num_ops
    score = _score_kernel(n, compiled)
    capacity = problem.capacity_bytes
    order = np.array(start, np.int64)
    moving, trial = np.zeros(n, np.int64), np.zeros(n, np.int64)
    current = start_bytes = int(score(order, capacity, arrays, moving))
    hot = np.flatnonzero(moving)
    best, best_order = current, order
    trail: list[tuple[int, np.ndarray]] = [(current, order)]  # arrays are never changed
    preds, succs = op_neighbours(problem)
    links = (csr(preds), csr(succs))
    hoist = _hoist_kernel(n, compiled)
    # On a fresh installation the Python kernels run while a background process compiles;
    # the search looks for the compiled ones every RECHECK_S s (the same scores, faster).
    waiting = compiled is None and n > PYTHON_OPS_LIMIT and not _compiled_ready()
    next_look_s = time.monotonic() + RECHECK_S
    runs = chains(preds, succs)
    run_of = [0] * n
    index_in_run = [0] * n
    for r, run in enumerate(runs):
        for i, op in enumerate(run):
            run_of[op], index_in_run[op] = r, i
    rng = random.Random(seed)
    step_of = np.empty(n, np.int64)
    step_of[order] = np.arange(n)
    moves = improvements = idle = since_best = 0
    stall = STALL_MOVES_PER_OP * n
    while (
        current > 0
        and (max_moves == 0 or moves < max_moves)
        and idle <= IDLE_TRIES
        and since_best < stall
    ):
        if moves % MOVES_PER_CHECK == 0:
            if _time_is_up(should_stop, must_stop, improving=since_best <= IMPROVING_SHARE * moves):
                break
            if waiting and time.monotonic() >= next_look_s:
                next_look_s = time.monotonic() + RECHECK_S
                if _compiled_ready():
                    score, hoist, waiting = belady_traffic.entry(), hoisted_window.entry(), False
        moves += 1
        since_best += 1
        if len(hot) and rng.random() < FOCUS:  # near a step that moves bytes
            near = int(hot[rng.randrange(len(hot))]) + rng.randint(-FOCUS_STEPS, FOCUS_STEPS)
            op = int(order[min(max(near, 0), n - 1)])
        else:
            op = int(order[rng.randrange(n)])
        if rng.random() < DEPENDENCY_MOVES:
            candidate = _dependency_move(order, step_of, op, links, hoist, rng)
        else:
            candidate = _random_move(
                order, step_of, op, runs, run_of, index_in_run, preds, succs, rng
            )
        if candidate is None:
            idle += 1  # a graph with no freedom (a chain) ends the search
            continue
        idle = 0
        value = int(score(candidate, capacity, arrays, trial))
        if 0 <= value <= current:
            current, order = value, candidate
            step_of[order] = np.arange(n)
            moving, trial = trial, moving
            hot = np.flatnonzero(moving)
            if value < best:
                best, best_order = value, order
                improvements += 1
                since_best = 0
                trail.append((value, order))
                if len(trail) > TRAIL_LENGTH:  # thin it, keeping the start and the best
                    trail = [*trail[:-1:2], trail[-1]]
    return Reordered(
        tuple(int(o) for o in best_order),
        start_bytes,
        best,
        moves,
        improvements,
        tuple((value, tuple(int(o) for o in kept)) for value, kept in trail),
    )


def _time_is_up(
    should_stop: Callable[[], bool], must_stop: Callable[[], bool] | None, *, improving: bool
) -> bool:
    """Whether the search ends now: ``should_stop`` says so and it is not ``improving``
    (or there is no ``must_stop``), or ``must_stop`` says so."""
    if must_stop is None:
        return should_stop()
    return must_stop() or (not improving and should_stop())


def _dependency_move(
    order: np.ndarray,
    step_of: np.ndarray,
    op: int,
    links: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    hoist: Callable[..., Any],
    rng: random.Random,
) -> np.ndarray | None:
    """``order`` with ``op`` moved a random (log-uniform) distance earlier together with
    its ancestors that stand between, or later with its descendants that do (None when
    it cannot move); ``links`` are the predecessors' and successors' CSR arrays.

    Hoisting op ``o`` from step ``p`` to step ``q``: the block is ``o`` and every ancestor
    of ``o`` at a step in ``[q, p)``, kept in their order and put at ``q``; the other ops
    of ``[q, p)`` follow them in theirs. An op left behind has no successor in the block
    (it would be an ancestor of ``o`` in ``[q, p)``, hence in the block), and the block's
    other predecessors stand before ``q``: the order stays topological. Pushing later is
    the mirror image with descendants. Chain moves cannot do this when the work to bring
    forward forks and joins (NASNet's factorized reduction reads the stem's 10 MB output
    at step 1 and again about 100 steps later).
    """
    n = len(order)
    here = int(step_of[op])
    earlier = rng.random() < 0.5
    room = here if earlier else n - 1 - here
    if room <= 0:
        return None
    distance = max(1, min(room, int(math.exp(rng.uniform(0.0, math.log(room + 1))))))
    low, high = (here - distance, here) if earlier else (here, here + distance)
    # The block and the rearrangement in a kernel (``hoist``: :func:`hoisted_window`):
    # in Python they took 0.47 ms a move on randwire_ws_large, more than the score.
    links_start, linked = links[0] if earlier else links[1]
    moved = hoist(order, step_of, links_start, linked, op, low, high, earlier)
    if len(moved) == 0:
        return None
    return np.concatenate((order[:low], moved, order[high + 1 :]))


def _random_move(
    order: np.ndarray,
    step_of: np.ndarray,
    op: int,
    runs: list[list[int]],
    run_of: list[int],
    index_in_run: list[int],
    preds: list[list[int]],
    succs: list[list[int]],
    rng: random.Random,
) -> np.ndarray | None:
    """``order`` with a random piece of ``op``'s chain (holding ``op``) moved to a random
    legal place (or None when the piece has nowhere else to go)."""
    n = len(order)
    run = runs[run_of[op]]
    k = index_in_run[op]
    piece = run[rng.randint(0, k) : rng.randint(k, len(run) - 1) + 1]
    piece_steps = sorted(int(step_of[o]) for o in piece)
    # In the order without the piece, it must go after its first op's predecessors and
    # before its last op's successors.
    after = max((int(step_of[p]) for p in preds[piece[0]]), default=-1)
    before = min((int(step_of[s]) for s in succs[piece[-1]]), default=n)
    lowest = after + 1 - sum(1 for s in piece_steps if s < after)
    highest = before - sum(1 for s in piece_steps if s < before)
    insert_at = rng.randint(lowest, highest)
    rest = np.delete(order, piece_steps)
    moved = np.concatenate((rest[:insert_at], np.array(piece, np.int64), rest[insert_at:]))
    if np.array_equal(moved, order):
        return None
    return moved


def warm_up() -> None:
    """Compile the kernels once (for :mod:`memplan.solvers.warmup`) on a three-op chain."""
    arrays = Arrays(
        np.array([0, 1, 3, 4], np.int64),
        np.array([0, 0, 1, 1], np.int64),
        np.array([0, 1, 2, 2], np.int64),
        np.array([1, 2], np.int64),
        np.array([64, 64, 64], np.int64),
        np.array([60, 60, 60], np.int64),
        np.array([False, True, True]),
        np.array([False, False, True]),
    )
    belady_traffic.entry()(np.array([0, 1, 2], np.int64), 128, arrays, np.zeros(3, np.int64))
    chain = np.array([0, 1, 2], np.int64)
    starts, linked = np.array([0, 0, 1, 2], np.int64), np.array([0, 1], np.int64)
    hoisted_window.entry()(chain, chain, starts, linked, 2, 0, 2, True)
