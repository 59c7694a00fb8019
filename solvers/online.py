"""Replacement and allocation in one pass: every arriving tensor gets its offset at once.

The two-phase greedy (:mod:`memplan.solvers.replacement`, then an allocator) keeps the
live bytes within the capacity but can still fail to pack. This pass cannot fail at a
capacity >= M_R. Before step ``t`` runs, each missing tensor of ``order[t]`` (largest
first) takes the lowest aligned gap that fits::

    offset ^
     C     |      free         <- a 3 KiB output needs a 3 KiB gap: none, so evict
           |  [ u (next use 9) ]   (Belady order) until a gap opens
           |      free
           |  [ v (next use 5) ]
     0     +---------------------> step t

When no gap opens, resident tensors the op does not touch are evicted in the policy's
order (Belady or size-aware). If even the op's own resident inputs block it, they are
evicted too and loaded again for step ``t`` at new offsets (stored first when they have
no DRAM copy): the op's working set then stacks from offset 0, which fits since it is at
most M_R.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence

from memplan.ir import TensorId, TensorKind
from memplan.plan import Arrive, Leave, Residency
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.replacement import Replacement, Stay, Stopped, scoped_touched, use_steps

_BUDGET_EVERY = 128


def _lowest_gap(occupied: list[tuple[int, int, int]], size: int, capacity: int, align: int) -> int:
    """Lowest aligned offset where ``size`` bytes fit between the occupied blocks, or -1."""
    offset = 0
    for low, high, _ in occupied:
        if offset + size <= low:
            return offset
        offset = max(offset, -(-high // align) * align)
    return offset if offset + size <= capacity else -1


def simulate_online(
    problem: Problem,
    order: Sequence[int],
    policy: str = "belady",
    budget: Budget | None = None,
) -> tuple[list[Residency], Replacement, int]:
    """Place every stay as it starts.

    Returns:
        The residencies, the counters, and how many steps had to reload the op's own
        inputs to make room (flushes).

    Args:
        problem: the problem (capacity >= M_R).
        order: a topological order of all ops.
        policy: ``belady`` or ``belady-size`` (see :mod:`memplan.solvers.replacement`).
        budget: looked at every few steps; :class:`Stopped` is raised when it runs out.
    """
    capacity, align = problem.capacity_bytes, problem.alignment_bytes
    assert capacity >= problem.min_resident_bytes, "capacity below M_R"
    graph = problem.graph
    sizes = problem.aligned_sizes_bytes
    kinds = [t.kind for t in graph.tensors]
    is_output = [t.is_output for t in graph.tensors]
    touched = scoped_touched(problem)
    uses = use_steps(problem, order)
    never = len(order)
    size_aware = policy == "belady-size"

    has_copy = [k is not TensorKind.ACTIVATION for k in kinds]
    was_on_chip = [False] * len(sizes)
    arrived: dict[int, tuple[int, Arrive, int]] = {}  # tensor -> (start, arrive, offset)
    occupied: list[tuple[int, int, int]] = []  # (offset, offset + size, tensor), sorted
    next_use: dict[int, int] = {}
    heap: list[tuple[int, int, int]] = []  # (-next use, -size, tensor); lazy deletion
    residencies: list[Residency] = []
    stays: list[Stay] = []
    evictions = spill_stores = reloads = live = max_live = flushes = 0

    def close(tensor: int, end: int, last_use: bool) -> None:
        nonlocal live, spill_stores
        start, arrive, offset = arrived.pop(tensor)
        next_use.pop(tensor, None)
        del occupied[bisect.bisect_left(occupied, (offset, offset + sizes[tensor], tensor))]
        live -= sizes[tensor]
        store = kinds[tensor] is TensorKind.ACTIVATION and not has_copy[tensor]
        if last_use:
            store = store and is_output[tensor]
        elif store and not is_output[tensor]:
            spill_stores += 1
        if store:
            has_copy[tensor] = True
        leave = Leave.STORE if store else Leave.DROP
        residencies.append(Residency(TensorId(tensor), start, end, offset, arrive, leave))
        stays.append(Stay(tensor, start, end, arrive, leave))

    def victim(step: int, protected: frozenset[int]) -> int | None:
        candidates = [t for t in next_use if t not in protected]
        if not candidates:
            return None
        if size_aware:
            return max(candidates, key=lambda t: (sizes[t] * (next_use[t] - step), next_use[t], -t))
        while True:
            neg_use, _, tensor = heapq.heappop(heap)
            if next_use.get(tensor) == -neg_use and tensor not in protected:
                return tensor

    def try_place(missing: list[int]) -> list[int] | None:
        trial = list(occupied)
        offsets = []
        for t in missing:
            offset = _lowest_gap(trial, sizes[t], capacity, align)
            if offset < 0:
                return None
            bisect.insort(trial, (offset, offset + sizes[t], t))
            offsets.append(offset)
        return offsets

    for step, op in enumerate(order):
        if budget is not None and step % _BUDGET_EVERY == 0 and budget.should_stop():
            raise Stopped
        here = touched[op]
        protected = frozenset(here)
        missing = sorted((t for t in here if t not in arrived), key=lambda t: (-sizes[t], t))
        offsets = try_place(missing)
        while offsets is None:
            evicted = victim(step, protected)
            if evicted is None:
                # Only the op's own inputs are left and they block: reload them too.
                flushes += 1
                for t in [t for t in here if t in arrived]:
                    close(t, step, last_use=False)
                    evictions += 1
                missing = sorted(here, key=lambda t: (-sizes[t], t))
                offsets = try_place(missing)
                assert offsets is not None, "an op's working set always fits at >= M_R"
                break
            close(evicted, step, last_use=False)
            evictions += 1
            offsets = try_place(missing)
        for t, offset in zip(missing, offsets, strict=True):
            if graph.producer[t] == op:
                arrive = Arrive.PRODUCE
            else:
                arrive = Arrive.LOAD
                reloads += was_on_chip[t]
            was_on_chip[t] = True
            arrived[t] = (step, arrive, offset)
            bisect.insort(occupied, (offset, offset + sizes[t], t))
            live += sizes[t]
        max_live = max(max_live, live)
        for t in here:
            k = bisect.bisect_right(uses[t], step)
            nxt = uses[t][k] if k < len(uses[t]) else never
            if nxt == never:
                close(t, step + 1, last_use=True)
            else:
                next_use[t] = nxt
                if not size_aware:
                    heapq.heappush(heap, (-nxt, -sizes[t], t))
    assert not arrived
    counters = Replacement(tuple(stays), evictions, spill_stores, reloads, max_live)
    return residencies, counters, flushes
