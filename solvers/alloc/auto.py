"""``auto``: the greedy portfolio first, the exact search only where it falls short.

With a capacity, the portfolio stops at its first packing that fits; when none fits
(and the capacity is not evidently too small), the exact search gets the rest of the
budget. With ``minimize`` (or no capacity), the exact allocator's minimiser does both
steps itself: it starts from the portfolio's packing and searches lower heights until
proven or out of time. When the exact search cannot run (over the memory limit, or
its set-up would outlast the time left), the portfolio's packing is kept and the
message says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from memplan.dsa import AllocationResult, Buffer
from memplan.solver import Budget, Status
from memplan.solvers.alloc.common import AllocatorOptions
from memplan.solvers.alloc.greedy import Portfolio


@dataclass(frozen=True, slots=True)
class AutoAllocator(AllocatorOptions):
    """The portfolio, then the exact search when no greedy packing fits."""

    name: ClassVar[str] = "auto"

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """See the module docstring."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.minimize or capacity_bytes is None:
            return _renamed(_exact(shared).allocate(buffers, capacity_bytes, budget), budget)
        greedy = Portfolio(**shared).allocate(buffers, capacity_bytes, budget)
        if greedy.status is not Status.TIMEOUT or greedy.offsets_bytes is None:
            return _renamed(greedy, budget)  # it fits, is infeasible, or could not run
        if budget.should_stop():
            return _renamed(greedy, budget)
        result = _exact(shared).allocate(buffers, capacity_bytes, budget)
        if result.fits or result.status is Status.INFEASIBLE:
            return _renamed(result, budget)
        # The exact search ran out of time or memory: keep the portfolio's packing.
        return _renamed(
            dataclasses.replace(greedy, stats={**greedy.stats, **result.stats}),
            budget,
            f"no packing within {capacity_bytes} B found; exact search: {result.message}; "
            "kept the portfolio's packing",
        )


def _exact(options: dict[str, object]) -> AllocatorOptions:
    """The exact allocator with ``options`` (imported only when it runs)."""
    from memplan.solvers.alloc.exact import ExactAllocator

    return ExactAllocator(**options)


def _renamed(result: AllocationResult, budget: Budget, note: str = "") -> AllocationResult:
    """``result`` named ``auto:<its algorithm>``, timed to now, ``note`` as its message."""
    return dataclasses.replace(
        result,
        algorithm=f"auto:{result.algorithm}",
        wall_s=budget.elapsed_s(),
        message=note or result.message,
    )
