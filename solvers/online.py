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
order (Belady or size-aware). If even the op's own resident inputs block it, the step
is compacted: they are evicted too and loaded again for step ``t`` at new offsets
(stored first when they have no DRAM copy), the op's working set stacked from offset 0,
which fits since it is at most M_R. It is :func:`memplan.solvers.replacement.run_belady`
on a :class:`memplan.placement.PlacementState` that tracks addresses.
"""

from __future__ import annotations

from collections.abc import Sequence

from memplan.placement import PlacementState
from memplan.plan import Residency
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.replacement import Replacement, run_belady


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
    assert problem.capacity_bytes >= problem.min_resident_bytes, "capacity below M_R"
    state = PlacementState(problem, order, undo=False)
    run_belady(state, policy, budget)
    return list(state.closed), Replacement.of(state), state.compactions
