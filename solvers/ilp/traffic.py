"""The traffic objective: incumbents, warm starts, the exact search, and honest statuses.

What a result may claim (contract 1 of the helper brief; audited in the module docstring
of :mod:`memplan.solvers.ilp.model`):

- ``free`` mode with complete slots (``max_loads=-1`` or no tensor read more often than
  ``max_loads``): the model's space holds an optimal plan of the problem, so its proven
  optimum is OPTIMAL and its bound (also at a time limit) is a bound over all plans;
- ``fixed`` mode, or ``max_loads`` below some tensor's reads: the model is a restriction.
  Its optimum is FEASIBLE (TIMEOUT when time ran out), with ``stats["optimal_for_order"]``
  or ``stats["optimal_for_max_loads"]`` and a message saying relative to what; no bound;
- a plan moving 0 non-compulsory bytes is OPTIMAL with bound 0 in every mode (no plan
  moves fewer);
- in every mode, the crowded-region bound of :mod:`memplan.traffic_bound` (computed
  before the search, :func:`traffic_floor`) is a bound over all plans: it is reported
  when it is larger than the search's (or the search gives none), and a plan that meets
  it is OPTIMAL. When the best incumbent meets it, no search runs. The CP-SAT search is
  told the floor (its objective is at least the floor), so it stops as soon as it
  reaches it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memplan.analysis import min_peak_order
from memplan.cost import evaluate
from memplan.fallback import is_spill_everything, spill_everything_plan
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget, SolveResult, Status, make_result
from memplan.solvers.ilp.model import (
    Hint,
    Structure,
    build_structure,
    first_hint,
    no_spill_plan,
    slots_to_plan,
)
from memplan.solvers.ilp.outcome import BackendStatus, Outcome
from memplan.solvers.ilp.phases import (
    BUILD_SHARE,
    FIXED_MAX_S,
    FIXED_SHARE,
    FLOOR_MAX_S,
    FLOOR_SHARE,
    NO_SPILL_PORTFOLIO_S,
    POLISH_MAX_S,
    WARM_TOTAL_SHARE,
    build_estimate_s,
    finish_reserve_s,
    skip_reason,
    sub_budget,
)
from memplan.traffic_bound import TrafficBound, traffic_lower_bound
from memplan.validate import validate

if TYPE_CHECKING:
    from memplan.solvers.ilp.cpsat import SearchProgress
    from memplan.solvers.ilp.solver import IlpSolver


@dataclass(frozen=True, slots=True)
class Incumbent:
    """A valid plan to start from or fall back on."""

    plan: Plan  # the plan (validated)
    source: str  # where it came from, e.g. "greedy" or "no-spill packing"
    value_bytes: int  # its non-compulsory bytes


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the traffic model covers, for statuses and messages."""

    order_name: str | None  # the fixed order's name, None in free mode
    max_loads: int | None  # the max_loads restriction that bites, None when complete

    @property
    def is_global(self) -> bool:
        """Whether the model holds an optimal plan of the problem (optimum/bound global)."""
        return self.order_name is None and self.max_loads is None

    def describe(self) -> str:
        """E.g. "over all orders" or "for the min-peak order within max_loads=1"."""
        where = "over all orders" if self.order_name is None else f"for the {self.order_name} order"
        return where if self.max_loads is None else f"{where} within max_loads={self.max_loads}"

    def optimal_for(self) -> dict[str, Any]:
        """The ``optimal_for_*`` stats of a proven model optimum."""
        stats: dict[str, Any] = {}
        if self.order_name is not None:
            stats["optimal_for_order"] = True
        if self.max_loads is not None:
            stats["optimal_for_max_loads"] = True
        return stats


def incumbents(
    struct: Structure,
    problem: Problem,
    greedy_plan: Plan | None,
    order: Sequence[int],
    alloc_s: float,
) -> list[Incumbent]:
    """Valid plans to start from, best (fewest non-compulsory bytes) first.

    The greedy plan (when its order fits the model), a no-spill packing of ``order`` and
    (free mode) of the min-peak order, and spilling everything (always valid at M_R).
    """
    candidates: list[tuple[Plan | None, str]] = []
    fixed = struct.fixed_order
    if greedy_plan is not None and (fixed is None or tuple(greedy_plan.order) == fixed):
        # Greedy out of time returns the spill-everything plan: named so, not "greedy".
        spilled = is_spill_everything(problem, greedy_plan)
        candidates.append((greedy_plan, "spill everything" if spilled else "greedy"))
    orders = [tuple(order)]
    if fixed is None:
        orders.append(min_peak_order(problem.graph, problem.aligned_sizes_bytes, problem.in_scope))
    for o in dict.fromkeys(orders):
        # An optional start: with no time left, its portfolio still gets a little.
        plan = no_spill_plan(struct, o, alloc_s, portfolio_limit_s=NO_SPILL_PORTFOLIO_S)
        candidates.append((plan, "no-spill packing"))
    candidates.append((spill_everything_plan(problem, order), "spill everything"))
    found = [
        Incumbent(plan, source, evaluate(problem, plan).non_compulsory_bytes)
        for plan, source in candidates
        if plan is not None and not validate(problem, plan)
    ]
    found.sort(key=lambda c: c.value_bytes)
    return found


def run_backend(
    solver: IlpSolver,
    struct: Structure,
    budget: Budget,
    hint: Hint | None,
    *,
    deterministic_s: float | None = None,
    workers: int | None = None,
    pin_objective: int | None = None,
    objective_floor: int = 0,
    progress: SearchProgress | None = None,
) -> Outcome:
    """One traffic search with the solver's backend (skipped when it cannot fit in time).

    ``progress`` receives (objective, bound) in bytes while a CP-SAT search runs;
    ``objective_floor`` is a bound over all plans that CP-SAT may assume (0: none).
    """
    skipped = skip_reason(solver.backend, struct, budget)
    if skipped is not None:
        return skipped
    if solver.backend == "cpsat":
        from memplan.solvers.ilp.cpsat import solve_traffic

        return solve_traffic(
            struct,
            budget,
            hint=hint,
            workers=workers or solver.workers,
            seed=solver.seed,
            verbose=solver.verbose,
            deterministic_s=deterministic_s,
            pin_objective=pin_objective,
            objective_floor=objective_floor,
            progress=progress,
        )
    from memplan.solvers.ilp.milp import solve_traffic_milp

    return solve_traffic_milp(
        struct,
        budget,
        engine=solver.milp_engine,
        verbose=solver.verbose,
        threads=workers or solver.workers,
        seed=solver.seed,
    )


def warm_starts(
    solver: IlpSolver,
    problem: Problem,
    budget: Budget,
    orders: Sequence[Sequence[int]],
    known: Sequence[Incumbent],
    free_struct: Structure,
    free_search: bool,
) -> list[Incumbent]:
    """Optimal plans for a few good fixed orders: strong incumbents for the free search
    (the fixed-order model is far easier), or the best there is when the free search
    cannot run (``free_search`` False). Each run is hinted with the best ``known`` plan
    of its order.

    Each run has a work limit derived from the time limit (not the clock: reproducible)
    and a wall limit. With a free search to follow, they take at most WARM_TOTAL_SHARE of
    the time left and leave the free model the time its build needs; without one, they
    share all of it.
    """
    orders = list(dict.fromkeys(tuple(o) for o in orders))
    total = budget.time_limit_s if budget.time_limit_s is not None else FIXED_MAX_S / FIXED_SHARE
    remaining = budget.remaining_s() - finish_reserve_s(free_struct)
    if free_search:
        share = min(FIXED_SHARE * total, FIXED_MAX_S)
        keep_s = build_estimate_s(solver.backend, free_struct) / BUILD_SHARE
        window = sub_budget(budget, min(WARM_TOTAL_SHARE * remaining, remaining - keep_s))
    else:
        share = 0.8 * total / len(orders) / 1.5
        window = sub_budget(budget, remaining)
    found = []
    for order in orders:
        if window.remaining_s() < share or share < 0.05:
            break
        struct = build_structure(problem, order, solver.max_loads)
        # The best known plan of this order (e.g. the greedy plan for the greedy order).
        fits = [c.plan for c in known] + [spill_everything_plan(problem, order)]
        hint = first_hint(struct, fits)
        outcome = run_backend(
            solver,
            struct,
            sub_budget(window, 1.5 * share),
            hint,
            deterministic_s=share,
            workers=1,
        )
        if outcome.order is not None and outcome.slots is not None:
            plan = slots_to_plan(struct, outcome.order, outcome.slots)
            if not validate(problem, plan):
                value = evaluate(problem, plan).non_compulsory_bytes
                found.append(Incumbent(plan, f"{solver.backend} on a fixed order", value))
    return found


def polish(solver: IlpSolver, struct: Structure, budget: Budget, outcome: Outcome) -> Outcome:
    """Re-find a proven optimum with one worker and a work limit (reproducible).

    Parallel CP-SAT returns one of the optimal solutions depending on thread timing; a
    single-worker search with the objective pinned to the proven optimum returns the same
    one every time. Kept only when it finishes within its limits.
    """
    if solver.backend != "cpsat" or solver.workers == 1 or outcome.objective is None:
        return outcome
    if outcome.order is None or outcome.slots is None:
        return outcome
    total = budget.time_limit_s if budget.time_limit_s is not None else POLISH_MAX_S / 0.1
    hint = Hint(slots_to_plan(struct, outcome.order, outcome.slots), outcome.slots)
    again = run_backend(
        solver,
        struct,
        budget,
        hint,
        deterministic_s=min(POLISH_MAX_S, 0.1 * total),
        workers=1,
        pin_objective=outcome.objective,
    )
    if again.slots is None or again.objective != outcome.objective:
        return outcome
    stats = {**outcome.stats, "polished": True}
    return dataclasses.replace(outcome, order=again.order, slots=again.slots, stats=stats)


def traffic_floor(problem: Problem, budget: Budget) -> TrafficBound:
    """The crowded-region lower bound over all plans (:mod:`memplan.traffic_bound`),
    within FLOOR_SHARE of the time left (at most FLOOR_MAX_S s). Cut short, each region
    falls back to its largest working set: weaker, still a bound."""
    limit = sub_budget(budget, min(FLOOR_MAX_S, FLOOR_SHARE * budget.remaining_s()))
    order = min_peak_order(problem.graph, problem.aligned_sizes_bytes, problem.in_scope)
    return traffic_lower_bound(problem, order, should_stop=limit.should_stop)


def plan_traffic(
    solver: IlpSolver,
    problem: Problem,
    budget: Budget,
    struct: Structure,
    starts: list[Incumbent],
    coverage: Coverage,
    skipped: Outcome | None = None,
    floor: TrafficBound | None = None,
) -> SolveResult:
    """Search the traffic model from the incumbents ``starts`` (best first); the result.

    ``skipped`` is the SKIPPED outcome when the search was ruled out beforehand;
    ``floor`` the crowded-region bound over all plans (:func:`traffic_floor`), or None.
    """
    best = starts[0]
    floor_bytes = floor.bound_bytes if floor is not None else 0
    hint = first_hint(struct, [c.plan for c in starts])
    if best.value_bytes == 0:
        outcome = Outcome.skipped("an incumbent moves no non-compulsory bytes", out_of_time=False)
    elif best.value_bytes <= floor_bytes:
        outcome = Outcome.skipped("an incumbent meets the lower bound", out_of_time=False)
    else:
        search = sub_budget(budget, budget.remaining_s() - finish_reserve_s(struct))
        budget.report_progress(
            best.value_bytes, floor_bytes or None, f"exact search from the {best.source} plan"
        )

        def report(objective: int, bound: int | None) -> None:
            # Only a model of every plan gives a bound over every plan (see Coverage).
            incumbent = min(objective, best.value_bytes)
            model_bound = bound if coverage.is_global and bound is not None else 0
            shown = min(max(model_bound, floor_bytes), incumbent)
            budget.report_progress(incumbent, shown or None, "exact search")

        outcome = skipped or run_backend(
            solver, struct, search, hint, objective_floor=floor_bytes, progress=report
        )
        if outcome.status is BackendStatus.OPTIMAL:
            outcome = polish(solver, struct, search, outcome)
    plan, value, source = _adopt(struct, outcome, best, solver.backend)
    status, bound, message = _verdict(outcome, coverage, best.source, budget, floor_bytes)
    zero = value == 0 and status is not Status.OPTIMAL
    if zero:
        status, bound = Status.OPTIMAL, 0
        message = f"the {source} plan moves no non-compulsory bytes: no plan does better"
    elif floor is not None and floor_bytes > (bound or 0):
        bound = floor_bytes
        if value <= floor_bytes:
            status = Status.OPTIMAL
            message = f"the {source} plan meets the lower bound over all plans ({floor.method})"
        else:
            message = f"{message}; lower bound over all plans {floor_bytes} B ({floor.method})"
    elif bound is not None and bound == value and status is not Status.OPTIMAL:
        # A global bound equal to the plan's value proves it, whatever the engine's
        # status (HiGHS can stop at its limit with the gap already closed).
        status = Status.OPTIMAL
        message = f"proven optimal {coverage.describe()} (the bound reached the plan's value)"
    stats = {
        "backend": solver.backend,
        "mode": solver.mode,
        "incumbent": best.source,
        "incumbent_bytes": best.value_bytes,
        "unit_bytes": struct.unit_bytes,
        "hinted": hint is not None,
        **outcome.stats,
        "source": source,
        "objective_bytes": value,
    }
    if floor is not None:
        stats.update(floor_bytes=floor_bytes, floor_method=floor.method)
    if outcome.status is BackendStatus.OPTIMAL and outcome.objective is not None and not zero:
        if outcome.objective <= value:
            stats.update(coverage.optimal_for())
        elif status is not Status.OPTIMAL:  # a restricted model (max_loads) that the
            message = (  # incumbent beats
                f"the model {coverage.describe()} is worse ({outcome.objective} B); "
                f"returning the {source} plan"
            )
    return make_result(
        solver, problem, status, plan, budget, lower_bound_bytes=bound, stats=stats,
        message=message,
    )  # fmt: skip


def _adopt(
    struct: Structure, outcome: Outcome, best: Incumbent, backend: str
) -> tuple[Plan, int, str]:
    """The plan to return, its value and source: the search's when strictly better than
    the best incumbent (on a tie the incumbent, which does not depend on thread timing)."""
    if outcome.order is None or outcome.slots is None or outcome.objective is None:
        return best.plan, best.value_bytes, best.source
    if outcome.objective >= best.value_bytes:
        return best.plan, best.value_bytes, best.source
    return slots_to_plan(struct, outcome.order, outcome.slots), outcome.objective, backend


def _verdict(
    outcome: Outcome, coverage: Coverage, fallback: str, budget: Budget, floor_bytes: int = 0
) -> tuple[Status, int | None, str]:
    """Status, global bound (or None) and message for a search's outcome; the message
    leaves out a search bound that the crowded-region floor ``floor_bytes`` beats (the
    caller reports the floor)."""
    where = coverage.describe()
    bound = outcome.bound if coverage.is_global else None
    shown_bound = bound if bound is not None and bound >= floor_bytes else None
    stop = "interrupted" if budget.interrupted() else "time limit reached"
    status = outcome.status
    if status is BackendStatus.OPTIMAL:
        if coverage.is_global:
            return Status.OPTIMAL, outcome.objective, f"proven optimal {where}"
        return Status.FEASIBLE, None, f"optimal {where} (not a bound over all plans)"
    if status is BackendStatus.FEASIBLE:
        shown = f"best bound {bound} B {where}" if shown_bound is not None else f"searched {where}"
        return Status.TIMEOUT, bound, f"{stop}; {shown}"
    if status is BackendStatus.INFEASIBLE:
        return (
            Status.FEASIBLE,
            None,
            f"the model {where} has no plan; returning the {fallback} plan",
        )
    if status is BackendStatus.SKIPPED:
        timed = outcome.stats["skipped_out_of_time"]
        why = "interrupted" if budget.interrupted() else outcome.stats["skipped"]
        message = f"{why}: no exact search; returning the {fallback} plan"
        return Status.TIMEOUT if timed or budget.interrupted() else Status.FEASIBLE, None, message
    # UNKNOWN: no solution of the model and no proof, in the time there was.
    shown = f"; best bound {bound} B {where}" if shown_bound is not None else ""
    return (
        Status.TIMEOUT,
        bound,
        f"{stop} before a model solution; returning the {fallback} plan{shown}",
    )
