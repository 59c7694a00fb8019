"""``auto``: the greedy portfolio first, the exact search only where it falls short.

With a capacity, the portfolio stops at its first packing that fits; when none fits
(and the capacity is not evidently too small), the exact search gets the rest of the
budget. With ``minimize`` (or no capacity), the exact allocator's minimiser does both
steps itself: it starts from the portfolio's packing and searches lower heights until
proven or out of time. When the exact search cannot run (over the memory limit, or
its set-up would outlast the time left), the portfolio's packing is kept and the
message says so.

With ``cpsat_share`` above 0 and OR-Tools installed (the ``ilp`` extra), a call with a
capacity gives the exact search only ``1 - cpsat_share`` of the time the portfolio
leaves, and :mod:`.cpsat` the rest when the exact search has not packed: some held-out
perfect packings kept the exact search busy for the whole limit while CP-SAT packs them
in under a second. ``memplan allocate`` turns it on (0.5); the solvers' own packings
keep the default 0, so their time shares and plans do not change. It runs only when
at least :data:`CPSAT_MIN_S` is left for it (a short try only builds the model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from memplan.dsa import AllocationResult, Buffer
from memplan.options import check_range
from memplan.solver import Budget, Status
from memplan.solvers.alloc.common import AllocatorOptions, reserved
from memplan.solvers.alloc.greedy import Portfolio

#: ``cpsat_share`` that ``memplan allocate`` gives ``auto`` unless told otherwise (its
#: ``AUTO_CPSAT_SHARE``; a solver cannot import the CLI, a test checks that they agree).
CLI_CPSAT_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class AutoAllocator(AllocatorOptions):
    """The portfolio, then the exact search when no greedy packing fits (then CP-SAT,
    with ``cpsat_share``)."""

    name: ClassVar[str] = "auto"

    cpsat_share: float = field(
        default=0.0,
        metadata={
            "help": "share of the time left after the greedy portfolio that CP-SAT gets when "
            "the exact search has not packed (needs the ilp extra; with a capacity, not "
            "--minimize); 0 = never, 0 to 1. The default 0 is what memplan.dsa.allocate "
            f"and the solvers' packings run; memplan allocate runs {CLI_CPSAT_SHARE} unless "
            "this option is given"
        },
    )

    def __post_init__(self) -> None:
        AllocatorOptions.__post_init__(self)
        check_range(self.name, "cpsat_share", self.cpsat_share, 0.0, 1.0)

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """See the module docstring."""
        shared = self.common_options()
        if self.minimize or capacity_bytes is None:
            return _renamed(_exact(shared).allocate(buffers, capacity_bytes, budget), budget)
        greedy = Portfolio(**shared).allocate(buffers, capacity_bytes, budget)
        if greedy.status is not Status.TIMEOUT or greedy.offsets_bytes is None:
            return _renamed(greedy, budget)  # it fits, is infeasible, or could not run
        if budget.should_stop():
            return _renamed(greedy, budget)
        cpsat = self._cpsat_seconds(buffers, budget)
        exact_budget = budget if cpsat == 0 else reserved(budget, cpsat)
        result = _exact(shared).allocate(buffers, capacity_bytes, exact_budget)
        if result.fits or result.status is Status.INFEASIBLE:
            return _renamed(result, budget)
        if cpsat > 0 and not budget.should_stop():
            from memplan.solvers.alloc.cpsat import CpSatAllocator

            by_cpsat = CpSatAllocator(**shared).allocate(buffers, capacity_bytes, budget)
            if by_cpsat.fits or by_cpsat.status is Status.INFEASIBLE:
                note = f"exact search: {result.message}; then {by_cpsat.message}"
                return _renamed(by_cpsat, budget, note)
            result = dataclasses.replace(result, message=f"{result.message}; {by_cpsat.message}")
        # The exact search ran out of time or memory: keep the portfolio's packing.
        return _renamed(
            dataclasses.replace(greedy, stats={**greedy.stats, **result.stats}),
            budget,
            f"no packing within {capacity_bytes} B found; exact search: {result.message}; "
            "kept the portfolio's packing",
        )

    def _cpsat_seconds(self, buffers: Sequence[Buffer], budget: Budget) -> float:
        """Seconds kept back for CP-SAT after the exact search (0: no CP-SAT stage)."""
        if self.cpsat_share == 0 or budget.time_limit_s is None:
            return 0.0
        from memplan.solvers.alloc.cpsat import MAX_BUFFERS, ortools_installed

        seconds = self.cpsat_share * budget.remaining_s()
        if seconds < CPSAT_MIN_S or len(buffers) > MAX_BUFFERS or not ortools_installed():
            return 0.0
        return seconds


#: Seconds CP-SAT needs at least to be worth a try after the exact search.
CPSAT_MIN_S = 1.0


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
