"""Replacement and allocation in one pass: every arriving tensor gets its offset at once.

The two-phase greedy (:mod:`memplan.solvers.replacement`, then an allocator) keeps the
live bytes within the capacity but can still fail to pack. An online pass cannot fail
at a capacity >= M_R. There are two, and :func:`best_online` plays each and keeps the
plan that moves the fewest bytes.

**Lowest gap** (:func:`simulate_online`). Before step ``t`` runs, each missing tensor
of ``order[t]`` (largest first) takes the lowest aligned gap that fits::

    offset ^
     C     |      free         <- a 3 KiB output needs a 3 KiB gap: none, so evict
           |  [ u (next use 9) ]   (Belady order) until a gap opens
           |      free
           |  [ v (next use 5) ]
     0     +---------------------> step t

When no gap opens, resident tensors the op does not touch are evicted in the policy's
order (Belady or size-aware). If even the op's own resident inputs block it, the step
is compacted: they are evicted too and loaded again for step ``t`` at new offsets
(stored first when they have no DRAM copy), the op's working set stacked from offset 0,
which fits since it is at most M_R. It is :func:`memplan.solvers.replacement.run_belady`
on a :class:`memplan.placement.PlacementState` that tracks addresses.

**Windows** (:func:`simulate_windows`). Evicting in Belady's order until a gap opens
throws out tensors far from where the gap opens: on a searched order of
randwire_ws_large (all, M_R) lowest gap moves 512 MB where Belady's bytes alone would
move 426 MB. Here Belady's victims leave only until the live bytes fit the capacity
(what the two-phase greedy would evict too); a tensor that then finds no gap evicts
just the bystanders under the cheapest window of its size, a bystander costing the
bytes its eviction moves (a reload, and a store without a DRAM copy) over the steps
until its next use. Placement keeps gaps whole: a tensor whose last use is within
``short_steps`` steps takes the highest gap that fits, others the lowest, so short
lives pile up at the top and leave the chip together. On that order: 461 to 477 MB,
depending on ``short_steps``, which is why :func:`best_online` tries several.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from memplan.placement import PlacementState
from memplan.plan import Plan, Residency
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.replacement import BeladyVictims, Replacement, Stopped, run_belady

#: The ``short_steps`` of the window passes :func:`best_online` plays (0: every tensor
#: takes the lowest gap).
SHORT_STEPS = (0, 16, 128)

#: How many steps run between two looks at the budget.
_BUDGET_EVERY = 128


@dataclass(frozen=True)
class OnlinePlan:
    """What an online pass chose for one order."""

    residencies: tuple[Residency, ...]
    replacement: Replacement  # the counters (stays without offsets)
    compactions: int  # steps that had to reload the op's own inputs to make room
    non_compulsory_bytes: int  # traffic no plan has to move (PROBLEM.md section 5)
    variant: str  # which pass: "lowest gap" or "windows (short N steps)"

    @staticmethod
    def of(state: PlacementState, variant: str) -> OnlinePlan:
        """The plan and counters of a finished pass."""
        return OnlinePlan(
            tuple(state.closed),
            Replacement.of(state),
            state.compactions,
            state.non_compulsory_bytes,
            variant,
        )


def simulate_online(
    problem: Problem,
    order: Sequence[int],
    policy: str = "belady",
    budget: Budget | None = None,
) -> tuple[list[Residency], Replacement, int]:
    """Place every stay as it starts, in the lowest gap (see the module docstring).

    Returns:
        The residencies, the counters, and how many steps had to reload the op's own
        inputs to make room (flushes).

    Args:
        problem: the problem (capacity >= M_R).
        order: a topological order of all ops.
        policy: a rule of :data:`memplan.solvers.replacement.POLICIES` (``belady-fit``
            evicts as ``belady`` here: the room is a gap, not a byte count).
        budget: looked at every few steps; :class:`Stopped` is raised when it runs out.
    """
    found = _lowest_gap(problem, order, policy, budget)
    return list(found.residencies), found.replacement, found.compactions


def _lowest_gap(
    problem: Problem, order: Sequence[int], policy: str, budget: Budget | None
) -> OnlinePlan:
    assert problem.capacity_bytes >= problem.min_resident_bytes, "capacity below M_R"
    state = PlacementState(problem, order, undo=False)
    run_belady(state, policy, budget)
    return OnlinePlan.of(state, "lowest gap")


def simulate_windows(
    problem: Problem,
    order: Sequence[int],
    short_steps: int,
    budget: Budget | None = None,
) -> OnlinePlan:
    """Place every stay as it starts, evicting by windows (see the module docstring).

    Args:
        problem: the problem (capacity >= M_R).
        order: a topological order of all ops.
        short_steps: a tensor whose last use is fewer steps ahead takes the highest gap.
        budget: looked at every few steps; :class:`Stopped` is raised when it runs out.
    """
    assert problem.capacity_bytes >= problem.min_resident_bytes, "capacity below M_R"
    state = PlacementState(problem, order, undo=False)
    victims = BeladyVictims(state, "belady")
    sizes, capacity = state.sizes, state.capacity_bytes
    while not state.done:
        step = state.step
        if budget is not None and step % _BUDGET_EVERY == 0 and budget.should_stop():
            raise Stopped
        protected = frozenset(state.working_set())
        need = sum(sizes[t] for t in state.pending)
        while state.live_bytes + need > capacity:
            victim = victims.victim(protected)
            assert victim is not None, "an op's working set always fits at >= M_R"
            state.evict(victim)
        while state.step == step:
            tensor = state.next_tensor
            assert tensor is not None
            offset = _free_offset(state, tensor, short_steps)
            if offset is None:
                window = _cheapest_window(state, tensor, protected)
                if window is None:
                    state.compact()  # the op's own inputs block every window
                    break
                offset, blockers = window
                for blocker in blockers:
                    state.evict(blocker)
            state.place(offset)
        victims.steps_ran(step, state.step)
    return OnlinePlan.of(state, f"windows (short {short_steps} steps)")


def best_online(
    problem: Problem,
    order: Sequence[int],
    policy: str = "belady",
    budget: Budget | None = None,
    short_steps: Sequence[int] = SHORT_STEPS,
) -> OnlinePlan:
    """The lowest-gap pass (``policy``) and a window pass per ``short_steps``; the one
    that moves the fewest bytes (ties: the earlier).

    Raises:
        Stopped: the budget ran out before the lowest-gap pass finished (a window pass
            cut short is skipped).
    """
    best = _lowest_gap(problem, order, policy, budget)
    for steps in short_steps:
        try:
            found = simulate_windows(problem, order, steps, budget)
        except Stopped:
            break
        if found.non_compulsory_bytes < best.non_compulsory_bytes:
            best = found
    return best


def online_plan(
    problem: Problem, order: Sequence[int], budget: Budget | None = None
) -> Plan | None:
    """The plan of :func:`best_online` for ``order``, or None when ``budget`` ran out
    first (for solvers whose own stays of an order do not pack)."""
    try:
        found = best_online(problem, order, budget=budget)
    except Stopped:
        return None
    return Plan.make(order, found.residencies)


def _free_offset(state: PlacementState, tensor: int, short_steps: int) -> int | None:
    """The lowest aligned free offset for ``tensor`` (the highest when its last use is
    within ``short_steps`` steps), or None when no gap holds it."""
    size, align = state.sizes[tensor], state.alignment_bytes
    high = state.last_use(tensor) - state.step < short_steps
    found = None
    for low_bytes, high_bytes in state.free_gaps():
        low_offset = -(-low_bytes // align) * align
        if low_offset + size > high_bytes:
            continue
        if not high:
            return low_offset
        found = (high_bytes - size) // align * align
    return found


def _cheapest_window(
    state: PlacementState, tensor: int, protected: frozenset[int]
) -> tuple[int, list[int]] | None:
    """The offset for ``tensor`` whose bystanders cost least to evict, and them; None
    when every window holds a tensor of ``protected``.

    A bystander ``u`` costs ``moved(u) / (next use of u - step)``: the bytes evicting
    it moves (its reload, plus its store when DRAM has no copy), spread over the steps
    it would sit idle. Candidates: 0, flush under the capacity, and flush above or
    below each resident block (some optimal window starts at one of them).
    """
    size, align, capacity = state.sizes[tensor], state.alignment_bytes, state.capacity_bytes
    blocks = state.open_blocks()
    starts = [low for low, _, _ in blocks]
    candidates = {0, (capacity - size) // align * align}
    for low, high, _ in blocks:
        candidates.add(-(-high // align) * align)
        candidates.add((low - size) // align * align)
    step, sizes = state.step, state.sizes
    best: tuple[tuple[float, int], int, list[int]] | None = None
    for offset in sorted(candidates):
        if offset < 0 or offset + size > capacity:
            continue
        cost, blockers, blocked = 0.0, [], False
        # Blocks are sorted by their low offset and do not overlap, so the ones under
        # [offset, offset + size) are a run ending before the first low >= offset + size.
        k = max(bisect.bisect_right(starts, offset) - 1, 0)
        for low, high, other in blocks[k:]:
            if low >= offset + size:
                break
            if high <= offset:
                continue
            if other in protected:
                blocked = True
                break
            moved = sizes[other] * (1 if state.has_dram_copy(other) else 2)
            cost += moved / max(state.next_use(other) - step, 1)
            blockers.append(other)
        if blocked:
            continue
        key = (cost, offset)
        if best is None or key < best[0]:
            best = (key, offset, blockers)
    return None if best is None else (best[1], best[2])


__all__ = [
    "SHORT_STEPS",
    "OnlinePlan",
    "best_online",
    "online_plan",
    "simulate_online",
    "simulate_windows",
]
