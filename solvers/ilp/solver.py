"""The ``ilp`` solver: COSMA's joint order / replacement / allocation model, exactly.

Two objectives: ``traffic`` (non-compulsory bytes, COSMA's) and ``peak`` (the minimum
peak live bytes over orders with no spilling: COSMA's MPMF variant, which gives M_P).
Two modes: ``free`` (the order is a variable) and ``fixed`` (the order comes from the
``order`` option). Two backends: ``cpsat`` (OR-Tools CP-SAT, interval variables and
``NoOverlap2D``, the default) and ``milp`` (COSMA's time-indexed MILP with PuLP and
HiGHS or CBC, for fidelity and cross-checks).

Before the exact search, the solver builds incumbents (the ``greedy`` solver's plan when
that solver is installed, a no-spill first-fit plan of a low-peak order, and the always
valid "spill everything" plan); the best one that fits the model is the search's hint,
and the best one overall is what a timed-out solve returns. In ``free`` mode the
fixed-order model is first solved on the greedy and min-peak orders (short, single-worker
warm starts) so that the free search starts from a strong incumbent.

Statuses: OPTIMAL (proven, over all orders in ``free`` mode or for the order in ``fixed``
mode; the bound equals the value), TIMEOUT (the time ran out or a stop was requested:
the best plan and the proven bound, so the gap), FEASIBLE (a plan that is only optimal
within ``max_loads``, or the model found none and an incumbent is returned), and
INFEASIBLE below M_R. Results are reproducible for a given seed and worker count unless
the time runs out: CP-SAT's time limit is the budget's total (its search depends on the
value), warm starts run on one worker with a work limit, and a multi-worker optimum is
re-found on one worker (``polished``), since parallel CP-SAT returns whichever optimal
solution a thread found first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from memplan.analysis import (
    NAMED_ORDERS,
    min_peak_order,
    named_order,
    peak_live_bytes,
)
from memplan.budgets import PeakEstimate
from memplan.cost import evaluate
from memplan.errors import ConfigError, MemplanError
from memplan.ir import OpId
from memplan.options import check_choice, check_range, check_seed
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.registry import EXACT_MIN_PEAK
from memplan.solver import Budget, SolveResult, Status, infeasible_below_mr, make_result
from memplan.solvers.ilp.model import (
    Structure,
    build_structure,
    no_spill_plan,
    plan_slots,
    slots_to_plan,
    spill_everything_plan,
)
from memplan.validate import validate

OBJECTIVES = ("traffic", "peak")
MODES = ("free", "fixed")
ORDERS = ("greedy", *NAMED_ORDERS)
BACKENDS = ("cpsat", "milp")
MILP_ENGINES = ("highs", "cbc")

#: Share of the budget (at most GREEDY_MAX_S seconds) the greedy incumbent may take.
GREEDY_SHARE, GREEDY_MAX_S = 0.2, 10.0
#: Share of the budget (at most ALLOC_MAX_S s) for packing a no-spill incumbent.
ALLOC_SHARE, ALLOC_MAX_S = 0.05, 5.0
#: Share of the remaining budget (at most FIXED_MAX_S s) per fixed-order warm start.
FIXED_SHARE, FIXED_MAX_S = 0.15, 30.0
#: Work limit (deterministic seconds) of the single-worker polishing of an optimum.
POLISH_MAX_S = 5.0


@dataclass(frozen=True)
class Outcome:
    """A backend's answer in backend-neutral form."""

    status: str  # OPTIMAL, FEASIBLE, INFEASIBLE or UNKNOWN (nothing found in time)
    order: tuple[OpId, ...] | None  # schedule of the best solution
    plan: Plan | None  # the best solution as a plan (traffic objective)
    objective: int | None  # best objective value (bytes for traffic, units for peak)
    bound: int | None  # best proven bound on the objective
    stats: dict[str, Any] = field(default_factory=dict)  # backend counters


@dataclass(frozen=True)
class IlpSolver:
    """Exact joint planning (COSMA) with CP-SAT or a MILP solver."""

    name: ClassVar[str] = "ilp"
    capabilities: ClassVar[frozenset[str]] = frozenset({EXACT_MIN_PEAK})
    objective: str = field(
        default="traffic",
        metadata={"help": "traffic (non-compulsory bytes, COSMA) or peak (min peak, no spills)"},
    )
    mode: str = field(
        default="free",
        metadata={"help": "free (the order is a variable) or fixed (the order option fixes it)"},
    )
    order: str = field(
        default="greedy",
        metadata={
            "help": "fixed-mode order: greedy (the greedy solver's), min-peak, model, dfs, bfs"
        },
    )
    backend: str = field(
        default="cpsat", metadata={"help": "cpsat (OR-Tools CP-SAT) or milp (PuLP time-indexed)"}
    )
    milp_engine: str = field(
        default="highs", metadata={"help": "MILP engine for backend=milp: highs or cbc"}
    )
    max_loads: int = field(
        default=-1,
        metadata={
            "help": "loads per tensor beyond the compulsory one; -1 = one per read "
            "(complete: loses no plan); smaller is faster but only optimal within that limit"
        },
    )
    workers: int = field(default=2, metadata={"help": "CP-SAT worker threads (>= 1)"})
    hint: bool = field(
        default=True, metadata={"help": "seed the search with the greedy solver's plan"}
    )
    seed: int = field(default=0, metadata={"help": "random seed of the solver"})
    verbose: bool = field(default=False, metadata={"help": "print the backend's search log"})

    def __post_init__(self) -> None:
        check_choice(self.name, "objective", self.objective, OBJECTIVES)
        check_choice(self.name, "mode", self.mode, MODES)
        check_choice(self.name, "order", self.order, ORDERS)
        check_choice(self.name, "backend", self.backend, BACKENDS)
        check_choice(self.name, "milp_engine", self.milp_engine, MILP_ENGINES)
        check_range(self.name, "max_loads", self.max_loads, -1)
        check_range(self.name, "workers", self.workers, 1, 64)
        check_seed(self.name, self.seed)

    @classmethod
    def exact_min_peak(cls, problem: Problem, budget: Budget) -> PeakEstimate:
        """M_P of ``problem`` by the peak model (capability ``EXACT_MIN_PEAK``)."""
        return exact_min_peak(problem, budget.remaining_s())

    # ------------------------------------------------------------------ solve
    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` within ``budget`` (see the module docstring)."""
        infeasible = infeasible_below_mr(self, problem, budget)
        if infeasible is not None:
            return infeasible
        self._check_backend()
        greedy_plan = self._greedy_plan(problem, budget) if self.hint else None
        order = self._base_order(problem, greedy_plan)
        if self.objective == "peak":
            return self._solve_peak(problem, budget, order)
        fixed = order if self.mode == "fixed" else None
        struct = build_structure(problem, fixed, self.max_loads)
        alloc_s = min(ALLOC_MAX_S, ALLOC_SHARE * budget.remaining_s())
        incumbents = _incumbents(struct, problem, greedy_plan, order, alloc_s)
        if self.mode == "free" and incumbents[0][2] > 0:
            incumbents += self._fixed_order_incumbents(problem, budget, greedy_plan, order)
            incumbents.sort(key=lambda c: c[2])
        return self._solve_traffic(problem, budget, struct, incumbents, order)

    def _fixed_order_incumbents(
        self, problem: Problem, budget: Budget, greedy_plan: Plan | None, order: Sequence[int]
    ) -> list[tuple[Plan, str, int]]:
        """Optimal plans for a few good fixed orders: a strong early incumbent for the
        free-order search (the fixed-order model is far easier)."""
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        orders = [tuple(order), min_peak_order(problem.graph, sizes, scope)]
        if greedy_plan is not None:
            orders.insert(0, tuple(greedy_plan.order))
        found = []
        # The work limit depends on the budget's total, not on the clock: reproducible.
        total = (
            budget.time_limit_s if budget.time_limit_s is not None else FIXED_MAX_S / FIXED_SHARE
        )
        share = min(FIXED_SHARE * total, FIXED_MAX_S)
        for candidate in dict.fromkeys(orders):
            if budget.remaining_s() < 2 * share or share < 0.05:
                break
            # One worker and a work limit: the warm start is the same on every run.
            sub = Budget(
                time_limit_s=min(1.5 * share, budget.remaining_s()), stop_event=budget.stop_event
            )
            struct = build_structure(problem, candidate, self.max_loads)
            starts = _incumbents(struct, problem, greedy_plan, candidate, 0.0)
            fits = next((p for p, _, _ in starts if plan_slots(struct, p)), None)
            hint = (fits, plan_slots(struct, fits)) if fits is not None else None
            outcome = self._run_traffic_backend(struct, sub, hint, deterministic_s=share, workers=1)
            if outcome.plan is not None and not validate(problem, outcome.plan):
                value = evaluate(problem, outcome.plan).non_compulsory_bytes
                found.append((outcome.plan, f"{self.backend} on a fixed order", value))
        return found

    def _check_backend(self) -> None:
        module = "ortools" if self.backend == "cpsat" else "pulp"
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(
                f"solver 'ilp' backend {self.backend!r} needs the {module} package; "
                "install it with: pip install 'memplan[ilp]'"
            ) from None

    def _greedy_plan(self, problem: Problem, budget: Budget) -> Plan | None:
        """The greedy solver's plan as an incumbent, or None when it is not installed."""
        from memplan.solver import make_solver

        try:
            greedy = make_solver("greedy", {"seed": self.seed})
        except (ConfigError, TypeError):
            try:
                greedy = make_solver("greedy")
            except ConfigError:
                return None
        remaining = budget.remaining_s()
        limit = min(GREEDY_MAX_S, GREEDY_SHARE * remaining) if remaining != float("inf") else None
        sub = Budget(time_limit_s=limit, stop_event=budget.stop_event)
        try:
            result = greedy.solve(problem, sub)
        except MemplanError:
            return None
        return result.plan

    def _base_order(self, problem: Problem, greedy_plan: Plan | None) -> tuple[OpId, ...]:
        if self.order == "greedy" and greedy_plan is not None:
            return greedy_plan.order
        name = "min-peak" if self.order == "greedy" else self.order
        return named_order(problem.graph, name, problem.aligned_sizes_bytes, problem.in_scope)

    # ------------------------------------------------------------------ traffic
    def _solve_traffic(
        self,
        problem: Problem,
        budget: Budget,
        struct: Structure,
        incumbents: list[tuple[Plan, str, int]],
        order: Sequence[int],
    ) -> SolveResult:
        best_plan, best_source, best_value = incumbents[0]
        if best_value == 0:
            return make_result(
                self,
                problem,
                Status.OPTIMAL,
                best_plan,
                budget,
                lower_bound_bytes=0,
                stats={
                    "backend": self.backend,
                    "mode": self.mode,
                    "source": best_source,
                    "incumbent": best_source,
                    "incumbent_bytes": 0,
                    "objective_bytes": 0,
                },
                message=f"the {best_source} plan moves no non-compulsory bytes",
            )
        hint = next(
            ((p, plan_slots(struct, p)) for p, _, _ in incumbents if plan_slots(struct, p)),
            None,
        )
        outcome = self._run_traffic_backend(struct, budget, hint)
        complete = self.max_loads < 0
        stats: dict[str, Any] = {
            "backend": self.backend,
            "mode": self.mode,
            "incumbent": best_source,
            "incumbent_bytes": best_value,
            "hinted": hint is not None,
            "unit_bytes": struct.unit_bytes,
            **outcome.stats,
        }
        where = "for the fixed order" if self.mode == "fixed" else "over all orders"
        space = "" if complete else f" within max_loads={self.max_loads}"
        bound = outcome.bound if complete else None
        plan, value = best_plan, best_value
        if outcome.status == "OPTIMAL" and outcome.objective is not None:
            outcome = self._polish(struct, budget, hint, outcome)
            stats["polished"] = outcome.stats.get("polished", False)
        if outcome.plan is not None and outcome.objective is not None:
            # On a tie keep the incumbent: it does not depend on thread timing.
            if outcome.objective < best_value:
                plan, value = outcome.plan, outcome.objective
                stats["source"] = self.backend
            else:
                stats["source"] = best_source
        else:
            stats["source"] = best_source
        if outcome.status == "OPTIMAL":
            proven = outcome.objective is not None and outcome.objective <= value
            if proven and complete:
                status, message = Status.OPTIMAL, f"proven optimal {where}"
            else:
                status = Status.FEASIBLE
                message = f"optimal{space} {where}" if proven else f"model space{space} is worse"
        elif outcome.status == "FEASIBLE":
            status = Status.TIMEOUT
            stop = "interrupted" if budget.interrupted() else "time limit reached"
            message = f"{stop}; best bound {bound} B {where}"
        elif outcome.status == "INFEASIBLE":
            status = Status.FEASIBLE
            message = f"the model{space} has no plan; returning the {best_source} plan"
            bound = None
        else:
            status = Status.TIMEOUT
            message = f"no {self.backend} solution in time; returning the {best_source} plan"
        stats["objective_bytes"] = value
        return make_result(
            self,
            problem,
            status,
            plan,
            budget,
            lower_bound_bytes=bound,
            stats=stats,
            message=message,
        )

    def _polish(
        self, struct: Structure, budget: Budget, hint: tuple[Plan, Any] | None, outcome: Outcome
    ) -> Outcome:
        """Re-find an optimal solution with one worker and a work limit (reproducible).

        Parallel CP-SAT returns one of the optimal solutions depending on thread timing;
        a single-worker search with the objective pinned to the proven optimum returns
        the same one every time. Kept only when it finishes within its work limit.
        """
        if self.backend != "cpsat" or self.workers == 1 or outcome.objective is None:
            return outcome
        from memplan.solvers.ilp.cpsat import solve_traffic

        total = budget.time_limit_s if budget.time_limit_s is not None else POLISH_MAX_S / 0.1
        again = solve_traffic(
            struct,
            budget,
            hint_order=hint[0].order if hint else None,
            hint_slots=hint[1] if hint else None,
            upper_bound=outcome.objective,
            lower_bound=outcome.objective,
            workers=1,
            seed=self.seed,
            verbose=self.verbose,
            deterministic_s=min(POLISH_MAX_S, 0.1 * total),
        )
        if again.order is None or again.slots is None or again.objective != outcome.objective:
            return outcome
        plan = slots_to_plan(struct, again.order, again.slots)
        stats = {**outcome.stats, "polished": True}
        return dataclasses.replace(outcome, order=again.order, plan=plan, stats=stats)

    def _run_traffic_backend(
        self,
        struct: Structure,
        budget: Budget,
        hint: tuple[Plan, Any] | None,
        deterministic_s: float | None = None,
        workers: int | None = None,
    ) -> Outcome:
        if self.backend == "cpsat":
            from memplan.solvers.ilp.cpsat import solve_traffic

            cp = solve_traffic(
                struct,
                budget,
                hint_order=hint[0].order if hint else None,
                hint_slots=hint[1] if hint else None,
                upper_bound=None,
                workers=workers or self.workers,
                seed=self.seed,
                verbose=self.verbose,
                deterministic_s=deterministic_s,
            )
            plan = (
                slots_to_plan(struct, cp.order, cp.slots)
                if cp.order is not None and cp.slots is not None
                else None
            )
            status = cp.status if cp.status in ("OPTIMAL", "FEASIBLE", "INFEASIBLE") else "UNKNOWN"
            return Outcome(status, cp.order, plan, cp.objective, cp.bound, cp.stats)
        from memplan.solvers.ilp.milp import solve_traffic_milp

        return solve_traffic_milp(
            struct,
            budget,
            engine=self.milp_engine,
            hint_plan=hint[0] if hint else None,
            verbose=self.verbose,
            threads=self.workers,
            seed=self.seed,
        )

    # ------------------------------------------------------------------ peak
    def _solve_peak(self, problem: Problem, budget: Budget, order: Sequence[int]) -> SolveResult:
        fixed = order if self.mode == "fixed" else None
        struct = build_structure(problem, fixed, 0)
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        upper = peak_live_bytes(problem.graph, order, sizes, scope)
        outcome = self._run_peak_backend(struct, budget, order, upper)
        best_order = outcome.order if outcome.order is not None else tuple(order)
        peak = peak_live_bytes(problem.graph, best_order, sizes, scope)
        proven = outcome.status == "OPTIMAL"
        stats: dict[str, Any] = {
            "backend": self.backend,
            "mode": self.mode,
            "peak_bytes": peak,
            "peak_bound_bytes": (
                outcome.bound * struct.unit_bytes if outcome.bound is not None else None
            ),
            "peak_proven": proven,
            **outcome.stats,
        }
        plan = no_spill_plan(struct, best_order, min(ALLOC_MAX_S, budget.remaining_s()))
        if plan is not None:
            # Not proven means the peak search ran out of time (or was stopped).
            status = Status.OPTIMAL if proven else Status.TIMEOUT
            message = f"minimum peak {peak} B ({'proven' if proven else 'best found'}), no spills"
            return make_result(
                self,
                problem,
                status,
                plan,
                budget,
                lower_bound_bytes=0,
                stats=stats,
                message=message,
            )
        # The capacity cannot hold the min-peak schedule without spills (or first fit
        # fragments it): plan the traffic for that order instead.
        traffic = dataclasses.replace(self, objective="traffic", mode="fixed")
        struct_fixed = build_structure(problem, best_order, traffic.max_loads)
        incumbents = _incumbents(struct_fixed, problem, None, best_order, 0.0)
        result = traffic._solve_traffic(problem, budget, struct_fixed, incumbents, best_order)
        return dataclasses.replace(
            result,
            status=Status.FEASIBLE if result.status is Status.OPTIMAL else result.status,
            options={**result.options, "objective": "peak", "mode": self.mode},
            stats={**result.stats, **stats},
            message=f"minimum peak {peak} B does not fit the capacity without spills; "
            f"traffic planned for that order ({result.message})",
        )

    def _run_peak_backend(
        self, struct: Structure, budget: Budget, order: Sequence[int], upper_bytes: int
    ) -> Outcome:
        problem = struct.problem
        lower = problem.min_resident_bytes // struct.unit_bytes
        upper = upper_bytes // struct.unit_bytes
        if self.backend == "cpsat":
            from memplan.solvers.ilp.cpsat import solve_peak

            cp = solve_peak(
                struct,
                budget,
                hint_order=order,
                lower_bound_units=lower,
                upper_bound_units=upper,
                workers=self.workers,
                seed=self.seed,
                verbose=self.verbose,
            )
            status = cp.status if cp.status in ("OPTIMAL", "FEASIBLE", "INFEASIBLE") else "UNKNOWN"
            return Outcome(status, cp.order, None, cp.objective, cp.bound, cp.stats)
        from memplan.solvers.ilp.milp import solve_peak_milp

        return solve_peak_milp(
            struct,
            budget,
            engine=self.milp_engine,
            upper_units=upper,
            verbose=self.verbose,
            threads=self.workers,
            seed=self.seed,
        )


def _incumbents(
    struct: Structure,
    problem: Problem,
    greedy_plan: Plan | None,
    order: Sequence[int],
    alloc_s: float,
) -> list[tuple[Plan, str, int]]:
    """Valid plans to start from, best (fewest non-compulsory bytes) first."""
    candidates: list[tuple[Plan | None, str]] = []
    fixed = struct.fixed_order
    if greedy_plan is not None and (fixed is None or tuple(greedy_plan.order) == fixed):
        candidates.append((greedy_plan, "greedy"))
    orders = [tuple(order)]
    if fixed is None:
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        orders.append(min_peak_order(problem.graph, sizes, scope))
    for o in dict.fromkeys(orders):
        candidates.append((no_spill_plan(struct, o, alloc_s), "no-spill packing"))
    candidates.append((spill_everything_plan(struct, order), "spill everything"))
    result = []
    for plan, source in candidates:
        if plan is not None and not validate(problem, plan):
            result.append((plan, source, evaluate(problem, plan).non_compulsory_bytes))
    result.sort(key=lambda c: c[2])
    return result


def exact_min_peak(
    problem: Problem,
    time_limit_s: float,
    *,
    backend: str = "cpsat",
    workers: int = 2,
    seed: int = 0,
) -> PeakEstimate:
    """M_P: the minimum over orders of the peak live bytes with no spilling.

    Args:
        problem: the problem (its scope and alignment matter, not its capacity).
        time_limit_s: wall-clock limit of the search.
        backend: cpsat or milp.
        workers: CP-SAT threads.
        seed: random seed.

    Returns:
        The proven minimum, or (on timeout) the best value found, marked unproven.
    """
    from memplan.budgets import heuristic_min_peak

    heuristic = heuristic_min_peak(problem)
    if problem.graph.num_ops == 0:
        return PeakEstimate(0, True, "empty graph")
    big = problem.with_capacity(max(problem.capacity_bytes, heuristic.value_bytes))
    solver = IlpSolver(objective="peak", backend=backend, workers=workers, seed=seed, hint=False)
    struct = build_structure(big, None, 0)
    order = min_peak_order(big.graph, big.aligned_sizes_bytes, big.in_scope)
    outcome = solver._run_peak_backend(
        struct, Budget(time_limit_s=time_limit_s), order, heuristic.value_bytes
    )
    if outcome.objective is None:
        return PeakEstimate(heuristic.value_bytes, False, f"{heuristic.source} (ilp found nothing)")
    value = min(outcome.objective * struct.unit_bytes, heuristic.value_bytes)
    if outcome.status == "OPTIMAL":
        return PeakEstimate(value, True, f"ilp ({backend}) proven minimum")
    bound = (outcome.bound or 0) * struct.unit_bytes
    return PeakEstimate(
        value, False, f"ilp ({backend}) best found in {time_limit_s:g} s (lower bound {bound} B)"
    )
