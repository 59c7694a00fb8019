"""The peak objective (COSMA's MPMF): the lowest no-spill peak over orders, and M_P.

The peak model is exact over all topological orders in ``free`` mode: op windows hold
for every order, each tensor is live from its producer (or first reader) to its last
reader exactly as :func:`memplan.analysis.peak_live_bytes` counts, and the peak is
bounded below by M_R (valid: M_P >= M_R). Its proven optimum is M_P
(:meth:`IlpSolver.exact_min_peak`).

A plan for the peak objective is a no-spill packing of the best order found. It moves no
non-compulsory bytes, so its traffic bound is 0; its status is OPTIMAL only when the peak
is proven over all orders. When no packing of that order fits the capacity, the traffic
of that one order is planned instead, which is a restriction: FEASIBLE (or TIMEOUT) with
``optimal_for_order``, no bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from memplan.analysis import peak_live_bytes
from memplan.problem import Problem
from memplan.solver import Budget, SolveResult, Status, make_result
from memplan.solvers.ilp.model import Structure, build_structure, no_spill_plan
from memplan.solvers.ilp.outcome import BackendStatus, Outcome
from memplan.solvers.ilp.phases import ALLOC_MAX_S, finish_reserve_s, skip_reason, sub_budget
from memplan.solvers.ilp.traffic import Coverage, incumbents, plan_traffic

if TYPE_CHECKING:
    from memplan.solvers.ilp.solver import IlpSolver


def run_peak_backend(
    struct: Structure,
    budget: Budget,
    hint_order: Sequence[int],
    upper_bytes: int,
    *,
    backend: str,
    milp_engine: str = "highs",
    workers: int = 2,
    seed: int = 0,
    verbose: bool = False,
) -> Outcome:
    """One peak search; objective and bound in address units."""
    skipped = skip_reason(backend, struct, budget, "peak")
    if skipped is not None:
        return skipped
    lower = struct.problem.min_resident_bytes // struct.unit_bytes
    upper = upper_bytes // struct.unit_bytes
    if backend == "cpsat":
        from memplan.solvers.ilp.cpsat import solve_peak

        return solve_peak(
            struct,
            budget,
            hint_order=hint_order,
            lower_bound_units=lower,
            upper_bound_units=upper,
            workers=workers,
            seed=seed,
            verbose=verbose,
        )
    from memplan.solvers.ilp.milp import solve_peak_milp

    return solve_peak_milp(
        struct,
        budget,
        engine=milp_engine,
        upper_units=upper,
        verbose=verbose,
        threads=workers,
        seed=seed,
    )


def plan_peak(
    solver: IlpSolver, problem: Problem, budget: Budget, order: Sequence[int]
) -> SolveResult:
    """The ``peak`` objective: the lowest-peak order found, packed without spills."""
    fixed = order if solver.mode == "fixed" else None
    struct = build_structure(problem, fixed, 0)
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    upper = peak_live_bytes(problem.graph, order, sizes, scope)
    search = sub_budget(budget, budget.remaining_s() - 2 * finish_reserve_s(struct))
    outcome = run_peak_backend(
        struct,
        search,
        order,
        upper,
        backend=solver.backend,
        milp_engine=solver.milp_engine,
        workers=solver.workers,
        seed=solver.seed,
        verbose=solver.verbose,
    )
    best_order = outcome.order if outcome.order is not None else tuple(order)
    peak = peak_live_bytes(problem.graph, best_order, sizes, scope)
    proven = outcome.status is BackendStatus.OPTIMAL and fixed is None
    stats: dict[str, Any] = {
        "backend": solver.backend,
        "mode": solver.mode,
        "peak_bytes": peak,
        "peak_bound_bytes": (
            outcome.bound * struct.unit_bytes
            if outcome.bound is not None and fixed is None
            else None
        ),
        "peak_proven": proven,
        **outcome.stats,
    }
    packing_s = min(ALLOC_MAX_S, max(0.0, budget.remaining_s() - finish_reserve_s(struct)))
    plan = no_spill_plan(struct, best_order, packing_s)
    if plan is not None:
        if proven:
            status, how = Status.OPTIMAL, "proven over all orders"
        elif fixed is not None:
            status, how = Status.FEASIBLE, f"of the {solver.order} order"
            stats["optimal_for_order"] = True
        else:
            status, how = Status.TIMEOUT, "best found, not proven"
        return make_result(
            solver, problem, status, plan, budget, lower_bound_bytes=0, stats=stats,
            message=f"minimum peak {peak} B ({how}), no spills",
        )  # fmt: skip
    return _traffic_for_order(solver, problem, budget, best_order, peak, proven, stats)


def _traffic_for_order(
    solver: IlpSolver,
    problem: Problem,
    budget: Budget,
    order: Sequence[int],
    peak: int,
    proven: bool,
    stats: dict[str, Any],
) -> SolveResult:
    """The capacity cannot hold the best order's tensors without spills (or packing them
    failed): plan the traffic of that order, a restriction of the problem."""
    traffic = dataclasses.replace(solver, objective="traffic", mode="fixed")
    struct = build_structure(problem, order, traffic.max_loads)
    starts = incumbents(struct, problem, None, order, 0.0)
    name = solver.order if solver.mode == "fixed" else "lowest-peak"
    coverage = Coverage(name, None if struct.complete else traffic.max_loads)
    result = plan_traffic(traffic, problem, budget, struct, starts, coverage)
    status = result.status
    if status is Status.OPTIMAL and not proven:
        # 0 bytes moved, but the peak itself is not proven minimal.
        status = Status.FEASIBLE if solver.mode == "fixed" else Status.TIMEOUT
    return dataclasses.replace(
        result,
        status=status,
        options={**result.options, "objective": "peak", "mode": solver.mode},
        stats={**result.stats, **stats},
        message=f"peak {peak} B of the {name} order does not fit the capacity without spills; "
        f"traffic planned for that order ({result.message})",
    )
