"""What a backend run answers, in backend-neutral form.

A backend (CP-SAT or a MILP engine) solves one model: the full traffic model, a
fixed-order one, or the peak model. Its :class:`Outcome` says what it knows *about that
model*; whether that is an optimum over all plans of the problem is for the solver to
decide (a fixed order or ``max_loads`` restricts the model).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from memplan.ir import OpId
from memplan.solvers.ilp.model import SlotValue


class BackendStatus(enum.Enum):
    """How one backend run on one model ended."""

    OPTIMAL = "optimal"  # the model's optimum, proven (objective == bound)
    FEASIBLE = "feasible"  # a solution of the model, not proven optimal (time ran out)
    INFEASIBLE = "infeasible"  # proven: the model has no solution
    UNKNOWN = "unknown"  # no solution and no proof (time ran out, or stopped)
    SKIPPED = "skipped"  # not run: the model could not be built and solved in time

    @property
    def has_solution(self) -> bool:
        """Whether the run found a solution of the model."""
        return self in (BackendStatus.OPTIMAL, BackendStatus.FEASIBLE)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A backend's answer for one model."""

    status: BackendStatus  # how the run ended
    order: tuple[OpId, ...] | None = None  # schedule of the best solution
    slots: dict[int, list[SlotValue]] | None = None  # traffic models: slots per tensor
    objective: int | None = None  # best objective (bytes for traffic, units for peak)
    bound: int | None = None  # proven lower bound on the model's objective, or None
    stats: dict[str, Any] = field(default_factory=dict)  # model size, engine counters

    @staticmethod
    def skipped(reason: str, *, out_of_time: bool) -> Outcome:
        """The outcome of a model that was not run (or not finished building).

        Args:
            reason: why, for the message, e.g. "the milp model has over 2,000,000 rows".
            out_of_time: whether the time left was the reason (rather than the size).
        """
        return Outcome(
            BackendStatus.SKIPPED, stats={"skipped": reason, "skipped_out_of_time": out_of_time}
        )
