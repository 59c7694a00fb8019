"""``objective=latency`` for any solver: plan for traffic, then run the prefetch pass.

A solver whose own search knows nothing of time (``ilp``, ``dnc``, ``rl``) plans for
non-compulsory traffic in all but :data:`PREFETCH_SHARE` of its time, and the prefetch
pass (:mod:`memplan.solvers.prefetch`) moves load starts earlier in the rest. The pass
keeps every residency's arrival and departure, so the traffic, the traffic bound and
whether that traffic is proven optimal all stand; the latency is never proven optimal,
so an OPTIMAL traffic plan comes back FEASIBLE (with its bound and a message saying the
traffic is optimal), as ``greedy``'s own latency objective does. A pass the time limit
or Ctrl-C cuts short returns its best plan so far, TIMEOUT.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any

from memplan.problem import Problem
from memplan.solver import Budget, SolveResult, Status, make_result
from memplan.solvers.prefetch import prefetch

#: Share of the time limit kept for the prefetch pass (milliseconds to about a second
#: on the workloads; greedy, which plans in milliseconds, gives it all the time left).
PREFETCH_SHARE = 0.1


def objective_field() -> Any:
    """The ``objective`` option of a solver that plans for latency through
    :func:`solve_for_latency` (choices: :data:`memplan.timing.OBJECTIVES`)."""
    return field(
        default="traffic",
        metadata={
            "help": "traffic (default) | latency: plan for traffic in "
            f"{100 * (1 - PREFETCH_SHARE):g} % of the time, then start loads earlier where "
            "the scratchpad has room (the prefetch pass; same traffic, lower overlap latency)"
        },
    )


def solve_for_latency(solver: Any, problem: Problem, budget: Budget) -> SolveResult:
    """Solve with ``solver``'s options but ``objective="traffic"`` in all but
    PREFETCH_SHARE of ``budget``, then prefetch its plan (module docstring)."""
    traffic_solver = dataclasses.replace(solver, objective="traffic")
    remaining = budget.remaining_s()
    limit = None if budget.time_limit_s is None else (1 - PREFETCH_SHARE) * remaining
    inner = Budget(time_limit_s=limit, stop_event=budget.stop_event, on_progress=budget.on_progress)
    result = traffic_solver.solve(problem, inner)
    if result.plan is None:  # infeasible, or out of time before any plan
        return make_result(
            solver,
            problem,
            result.status,
            None,
            budget,
            lower_bound_bytes=result.lower_bound_bytes,
            stats=result.stats,
            message=result.message,
        )
    done = prefetch(problem, result.plan, budget, seed=getattr(solver, "seed", 0))
    status, message = result.status, result.message
    if status is Status.OPTIMAL:
        status = Status.FEASIBLE
        message = f"non-compulsory traffic proven optimal ({message}); latency not proven"
    message = f"{message}; prefetch: {done.candidate}" if message else f"prefetch: {done.candidate}"
    if done.timed_out:
        stop = "interrupted" if budget.interrupted() else "the time ran out"
        status, message = Status.TIMEOUT, f"{message} ({stop} in the prefetch pass)"
    return make_result(
        solver,
        problem,
        status,
        done.plan,
        budget,
        lower_bound_bytes=result.lower_bound_bytes,
        stats={**result.stats, **done.to_stats()},
        message=message,
    )
