"""Replacement for a fixed order: which tensors stay on chip, which spill and reload.

The greedy baseline decides residencies step by step (COSMA's "Belady" baseline) on
the step-by-step state of :mod:`memplan.placement`. Before step ``t`` runs, every
in-scope input of ``order[t]`` must be on chip and its outputs need room. When they do
not fit, resident tensors that ``order[t]`` does not touch are evicted:

- ``belady``: the one whose next use is furthest away (Belady's MIN rule; ties: the
  larger tensor, then the lower id);
- ``belady-size``: the one with the largest ``size x distance to its next use`` (ties:
  the further next use, then the lower id);
- ``belady-fit``: the cheapest tensor that alone frees enough bytes (size, twice for
  an activation without a DRAM copy, which must be stored; ties: the further next use,
  then the lower id), else Belady's. Belady may evict a large tensor where a smaller
  one would do: unet (weights in scope, M_H) moves 4.2 MB with it against 33.6 MB, and
  nasnet_a_mobile 1.1 MB against 3.2 MB; on other graphs it moves more (bert_base,
  activations, M_R: 44.0 MB against 9.4 MB), so greedy's default (``auto``) simulates
  both and keeps the one that moves fewer bytes.
  With addresses (the online passes) the room is a gap, not a byte count, so it
  evicts as Belady does.

An evicted activation without a valid DRAM copy is stored (once: a later eviction of
an unchanged copy is a plain drop); weights and graph inputs are dropped, DRAM holds
them. A tensor leaves the chip after its last use; graph outputs are stored then::

    step:            0     1     2     3     4     5
    t3 (activation)  [produce ───)store     [load ─)drop      spilled at 2, reloaded at 4
    t5 (output)                  [produce ──────────)store    stored at its last use

:func:`run_belady` is the one replacement loop. It serves two callers: :func:`simulate`
(room = live aligned bytes within a capacity; an allocator packs the stays afterwards)
and :func:`memplan.solvers.online.simulate_online` (room = a lowest gap for every
missing tensor; when even evicting every bystander opens none, the step is compacted).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from memplan.ir import TensorId
from memplan.placement import PlacementState, Timeline, scoped_touched, use_steps
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem
from memplan.solver import Budget

__all__ = [
    "POLICIES",
    "Replacement",
    "Stay",
    "Stopped",
    "run_belady",
    "scoped_touched",
    "simulate",
    "use_steps",
]

#: Replacement policies :func:`simulate` accepts.
POLICIES = ("belady", "belady-size", "belady-fit")

#: How many steps run between two looks at the budget.
_BUDGET_EVERY = 128


class Stopped(Exception):
    """Raised inside the simulation when the budget runs out (caught by the solver)."""


@dataclass(frozen=True, slots=True)
class Stay:
    """One residency without an offset yet: steps ``[start, end)``."""

    tensor: int  # tensor id
    start: int  # first step on chip
    end: int  # first step off chip (exclusive)
    arrive: Arrive  # produced at `start`, or loaded before it
    leave: Leave  # dropped, or stored to DRAM after `end - 1`


@dataclass(frozen=True, slots=True)
class Replacement:
    """The stays chosen for one order and capacity, with counters."""

    stays: tuple[Stay, ...]  # every residency, in order of decision
    evictions: int  # tensors evicted before their last use
    spill_stores: int  # stores of activations that are not graph outputs (pure spills)
    reloads: int  # loads of a tensor that was on chip before (activations and others)
    max_live_bytes: int  # highest sum of aligned sizes on chip at one step

    def plan(self, order: Sequence[int], offsets: Sequence[int] | None = None) -> Plan:
        """The plan of these stays for ``order``, at ``offsets`` (one per stay; None:
        every offset 0, an interval plan for a packing pass to place)."""
        at = offsets if offsets is not None else [0] * len(self.stays)
        residencies = [
            Residency(TensorId(s.tensor), s.start, s.end, offset, s.arrive, s.leave)
            for s, offset in zip(self.stays, at, strict=True)
        ]
        return Plan.make(order, residencies)

    @staticmethod
    def of(state: PlacementState) -> Replacement:
        """The stays and counters of a finished state."""
        stays = tuple(Stay(r.tensor, r.start, r.end, r.arrive, r.leave) for r in state.closed)
        return Replacement(
            stays, state.evictions, state.spill_stores, state.reloads, state.max_live_bytes
        )


class BeladyVictims:
    """Who to evict next: Belady's furthest next use, ``size x distance``, or the
    cheapest tensor that frees the bytes missing (``belady-fit``).

    Belady keeps a heap of ``(-next use, -size, tensor)`` with lazy deletion: an entry
    is stale once its tensor left the chip or got a new next use. The size-aware rule
    scans the open tensors (few).
    """

    def __init__(self, state: PlacementState, policy: str) -> None:
        assert policy in POLICIES, policy
        self._state = state
        self._size_aware = policy == "belady-size"
        self._fit = policy == "belady-fit"
        self._heap: list[tuple[int, int, int]] = []
        if not self._size_aware:  # a game already under way: its open tensors are candidates
            sizes = state.sizes
            for r in state.open_residencies():
                heapq.heappush(self._heap, (-state.next_use(r.tensor), -sizes[r.tensor], r.tensor))

    def steps_ran(self, first: int, last: int) -> None:
        """Record the next uses of the tensors that steps ``[first, last)`` touched."""
        if self._size_aware:
            return
        state, sizes = self._state, self._state.sizes
        for step in range(first, last):
            for t in state.timeline.working_set(step):
                if state.is_open(t):
                    heapq.heappush(self._heap, (-state.next_use(t), -sizes[t], t))

    def victim(self, protected: frozenset[int], deficit: int | None = None) -> int | None:
        """The open tensor outside ``protected`` to evict, or None when there is none.

        ``deficit`` is the number of bytes still missing (None: unknown, as when the
        room must be a gap); only ``belady-fit`` uses it.
        """
        state = self._state
        if self._fit and deficit is not None:
            sizes = state.sizes
            candidates = state.eviction_candidates()
            enough = [t for t in candidates if t not in protected and sizes[t] >= deficit]
            if enough:
                return min(
                    enough,
                    key=lambda t: (
                        sizes[t] * (1 if state.has_dram_copy(t) else 2),
                        -state.next_use(t),
                        t,
                    ),
                )
        if self._size_aware:
            step, sizes = state.step, state.sizes
            candidates = [t for t in state.eviction_candidates() if t not in protected]
            if not candidates:
                return None
            return max(
                candidates,
                key=lambda t: (sizes[t] * (state.next_use(t) - step), state.next_use(t), -t),
            )
        while self._heap:
            neg_use, _, tensor = heapq.heappop(self._heap)
            fresh = state.is_open(tensor) and state.next_use(tensor) == -neg_use
            if fresh and tensor not in protected:
                return tensor
        return None


def run_belady(state: PlacementState, policy: str = "belady", budget: Budget | None = None) -> None:
    """Play the game to its end with Belady evictions; the one replacement loop.

    The state may be a game under way (tree search finishes games with it).

    With addresses, every missing tensor takes the lowest aligned gap (largest first);
    while they do not all fit, the victim is evicted; when no bystander is left, the
    step is compacted. Without addresses, victims are evicted until the live bytes
    plus the missing bytes fit the capacity.

    Raises:
        Stopped: the budget ran out (looked at every few steps).
    """
    victims = BeladyVictims(state, policy)
    sizes = state.sizes
    while not state.done:
        step = state.step
        if budget is not None and step % _BUDGET_EVERY == 0 and budget.should_stop():
            raise Stopped
        protected = frozenset(state.working_set())
        pending = state.pending
        if state.addresses:
            offsets = state.lowest_offsets(pending)
            while offsets is None:
                evicted = victims.victim(protected)
                if evicted is None:
                    state.compact()  # only the op's own inputs are left and they block
                    break
                state.evict(evicted)
                offsets = state.lowest_offsets(pending)
            else:
                for offset in offsets:
                    state.place(offset)
        else:
            need = sum(sizes[t] for t in pending)
            while state.live_bytes + need > state.capacity_bytes:
                evicted = victims.victim(protected, state.live_bytes + need - state.capacity_bytes)
                assert evicted is not None, "an op's working set always fits at >= M_R"
                state.evict(evicted)
            for _ in pending:
                state.place(0)
        victims.steps_ran(step, state.step)


def simulate(
    problem: Problem,
    order: Sequence[int],
    capacity_bytes: int,
    policy: str = "belady",
    budget: Budget | None = None,
    *,
    touched: Sequence[tuple[int, ...]] | None = None,
    uses: Sequence[Sequence[int]] | None = None,
) -> Replacement:
    """Choose the stays of every in-scope tensor for ``order`` within ``capacity_bytes``.

    Args:
        problem: the problem (its aligned sizes are used).
        order: a topological order of all ops.
        capacity_bytes: bound on the sum of aligned sizes on chip; at least M_R.
        policy: ``belady`` or ``belady-size`` (see the module docstring).
        budget: looked at every few steps; :class:`Stopped` is raised when it runs out.
        touched: :func:`scoped_touched` of ``problem``, if already computed.
        uses: :func:`use_steps` of ``problem`` and ``order``, if already computed.

    Returns:
        The stays and counters.
    """
    assert capacity_bytes >= problem.min_resident_bytes, "capacity below M_R"
    timeline = Timeline.of(problem, order, touched=touched, uses=uses)
    state = PlacementState(
        problem, timeline=timeline, capacity_bytes=capacity_bytes, addresses=False, undo=False
    )
    run_belady(state, policy, budget)
    return Replacement.of(state)
