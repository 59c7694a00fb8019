"""The ``dnc`` solver: divide and conquer for graphs the whole ILP cannot solve.

COSMA's answer to large NAS graphs is a divide-and-conquer heuristic whose partition rule
is not public; this one works in phases, anytime (the best valid plan is kept and
returned when the time runs out or on Ctrl-C)::

    1. start      a no-spill plan of the min-peak order when its peak fits and the
                  allocator's portfolio packs it, before anything else (then the traffic
                  is 0: done); else greedy plans (its default, then rpo and dfs orders)
                  and that no-spill plan packed by the exact search
    2. bound      a lower bound from crowded regions (memplan.traffic_bound), on
                  graphs over 128 ops the ilp's bound on the busiest part of the start
                  plan solved on its own, which holds for the whole graph (.bound), and
                  the cut-cover bound, each tensor charged once over all crowded ops
                  (.cover)
    3. reorder    the order search (:mod:`memplan.solvers.order_search`: chains of ops
                  moved anywhere legal, scored by Belady's traffic), its best order
                  packed (else the latest packable one it passed), and planned by greedy
    4. intervals  windows re-solved without offsets (only the bytes per step bounded),
                  the whole plan packed once at the end; on a small graph the first
                  window is the whole graph, whose optimum is a bound over all plans
                  (then this phase runs before the order search)
    5. cut        the best plan's order at narrow places (few live bytes crossing)
    6. parts      the ilp on each part that moves bytes, its boundaries fixed by the
                  best plan; stitched and validated after every improvement
    7. windows    large-neighbourhood search: windows around the steps that still
                  move bytes, re-solved with the rest fixed, until no window helps;
                  then, with the time left, the whole graph from the best plan (CP-SAT
                  may prove it optimal: on 400-op transformers it does in seconds)
    8. reorder    when the windows improve nothing within ``stall_share`` of the time
                  left, the order search again from the best plan's order, then the
                  windows again (where they stopped, if it found nothing): on graphs of
                  thousands of ops its moves pay where the windows' do not
    9. bound      in time kept back from phases 3 to 8 (on graphs the interval phase
                  does not take whole), the ilp's bounds on runs of the start plan's
                  order, then of the best plan's, that own disjoint tensors, added
                  (.bound, Lemma 2); runs of about window_ops steps, then of three
                  times that, cut at narrow places; with weights in scope, their
                  relaxation with weights streamed first (Lemma 3)

It stops as soon as the plan meets the best bound (then it is proven optimal).
Every part and window is solved under the boundary contract of PROBLEM.md section 8
(:mod:`memplan.cut`); joined plans pass the validator as one plan, and the cost is the
cost model's. The order inside a part is free (``inner=ilp``) or kept
(``inner=ilp-fixed``: replacement and placement only, faster).

Reproducibility: every CP-SAT call has a deterministic work limit and one worker by
default, so the same seed gives the same plan unless the wall-clock limit cuts a phase
short (``max_moves`` and ``max_windows`` bound the searches instead of the clock).

Layout: this module holds the options, the order of the phases (:meth:`DncSolver.solve`)
and the result's status; the phases are mixins of :class:`DncSolver` in
:mod:`.starts` (1), :mod:`.lower_bounds` (2, 9) and :mod:`.phases` (3, 4, 7, 8), the
searches they run in :mod:`.search`, :mod:`.cuts`, :mod:`.bound` and :mod:`.cover`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from memplan.analysis import min_peak_order, named_order
from memplan.budgets import PeakEstimate
from memplan.cut import crossing_bytes
from memplan.fallback import plan_source
from memplan.options import check_choice, check_range, check_seed, seed_field, type_options
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.registry import EXACT_MIN_PEAK
from memplan.schedule import min_peak_schedule
from memplan.solver import (
    Budget,
    SolveResult,
    Status,
    infeasible_below_mr,
    make_result,
    stops_on_ctrl_c,
)
from memplan.solvers.dnc.cuts import choose_cuts
from memplan.solvers.dnc.lower_bounds import (
    ADDITIVE_MAX_SHARE,
    ADDITIVE_MIN_S,
    ADDITIVE_SHARE,
    LowerBounds,
)
from memplan.solvers.dnc.phases import SearchPhases
from memplan.solvers.dnc.search import (
    RunSettings,
    SearchStats,
    WindowProgress,
    constant_bytes,
    part_solver_class,
    require_part_solver,
    solve_parts,
    time_share,
    traffic_bytes,
)
from memplan.solvers.dnc.starts import NO_SPILL_SOURCE, StartingPlans
from memplan.solvers.latency import objective_field, solve_for_latency
from memplan.timing import OBJECTIVE_LATENCY, OBJECTIVES

INNER = ("ilp", "ilp-fixed")
#: Most CP-SAT threads per part: OR-Tools 9.15 dies of a segmentation fault with 20 or
#: more workers under the deterministic time limits dnc's parts and windows use
#: (measured on a 220-op transformer; 19 ran), and a 2-core machine gains nothing there.
MAX_WORKERS = 16
#: Seconds dnc needs after greedy's default to do anything (import OR-Tools, the min-peak
#: search, a first window): with less left, greedy's plan is returned at once rather than
#: late (nasnet_a_cifar at a 1-s limit ended at 1.6 s).
MIN_WORK_S = 0.5
#: Seconds (at most this share of the limit) the phases stop before the time limit, for
#: validating and scoring the plan (about 30 ms on 4,500 residencies) and the step under
#: way when time ran out: a 30 s limit ended at up to 30.07 s without it.
FINISH_S, FINISH_SHARE = 0.15, 0.01
#: The interval phase's largest window, in ``window_ops`` (twice the option, grown 4x):
#: graphs up to this many times ``window_ops`` ops are solved whole there.
INTERVAL_WHOLE_WINDOWS = 8
#: Named orders the order search also starts from (after the best plan's and the
#: min-peak order; each distinct one once).
REORDER_STARTS = ("model", "rpo", "dfs")


@dataclass(frozen=True)
class DncSolver(StartingPlans, LowerBounds, SearchPhases):
    """Divide and conquer: CP-SAT on parts cut at narrow places, then windows (LNS)."""

    name: ClassVar[str] = "dnc"
    capabilities: ClassVar[frozenset[str]] = frozenset({EXACT_MIN_PEAK, OBJECTIVE_LATENCY})

    part_ops: int = field(
        default=24,
        metadata={"help": "ops per part between cuts (parts are 0.5x-1.5x it); 2 .. 10000"},
    )
    window_ops: int = field(
        default=16,
        metadata={
            "help": "ops per window of the improvement search (grows to 4x when stuck); 2 .. 10000"
        },
    )
    reorder_share: float = field(
        default=0.6,
        metadata={
            "help": "share of the time (after the start and the bound) for the order "
            "search: chains of ops moved, scored by Belady's traffic (0 skips it); 0 .. 1"
        },
    )
    max_moves: int = field(
        default=0,
        metadata={"help": "order-search moves to try at most (0 = until its share is spent); >= 0"},
    )
    interval_share: float = field(
        default=0.3,
        metadata={
            "help": "share of the time for windows without placement, packed at the end "
            "(0 skips them); 0 .. 1"
        },
    )
    parts_share: float = field(
        default=0.5,
        metadata={
            "help": "share of the time the parts may take (0 skips them), then windows; 0 .. 1"
        },
    )
    inner: str = field(
        default="ilp",
        metadata={
            "help": "how the ilp solves a part: ilp (order, spills and offsets jointly) or "
            "ilp-fixed (the part's order kept: spills and offsets only)"
        },
    )
    window_time_s: float = field(
        default=1.0,
        metadata={"help": "CP-SAT work per window or part, in deterministic seconds (>= 0.001)"},
    )
    max_windows: int = field(
        default=0,
        metadata={"help": "windows to try at most (0 = until converged or out of time); >= 0"},
    )
    stall_share: float = field(
        default=0.5,
        metadata={
            "help": "share of the time left after which windows that improved nothing "
            "give the rest to the order search, then resume (1 = never); 0 .. 1"
        },
    )
    workers: int = field(
        default=1, metadata={"help": f"CP-SAT threads per part (1 .. {MAX_WORKERS})"}
    )
    seed: int = seed_field("random seed (order of windows, CP-SAT); same seed, same plan")
    objective: str = objective_field()

    def __post_init__(self) -> None:
        type_options(self)
        check_choice(self.name, "objective", self.objective, OBJECTIVES)
        check_range(self.name, "part_ops", self.part_ops, 2, 10_000)
        check_range(self.name, "window_ops", self.window_ops, 2, 10_000)
        check_range(self.name, "reorder_share", self.reorder_share, 0.0, 1.0)
        check_range(self.name, "max_moves", self.max_moves, 0)
        check_range(self.name, "parts_share", self.parts_share, 0.0, 1.0)
        check_range(self.name, "interval_share", self.interval_share, 0.0, 1.0)
        check_range(self.name, "stall_share", self.stall_share, 0.0, 1.0)
        check_choice(self.name, "inner", self.inner, INNER)
        check_range(self.name, "window_time_s", self.window_time_s, 1e-3)
        check_range(self.name, "max_windows", self.max_windows, 0)
        check_range(self.name, "workers", self.workers, 1, MAX_WORKERS)
        check_seed(self.name, self.seed)

    @classmethod
    def exact_min_peak(cls, problem: Problem, budget: Budget) -> PeakEstimate:
        """M_P by the branch and bound of :mod:`memplan.schedule`, within ``budget``."""
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        schedule = min_peak_schedule(
            problem.graph,
            sizes,
            scope,
            min_peak_order(problem.graph, sizes, scope),
            node_limit=10**9,
            should_stop=budget.should_stop,
        )
        if schedule.proven:
            return PeakEstimate(schedule.peak_bytes, True, "dnc min-peak search (proven)")
        return PeakEstimate(
            schedule.peak_bytes,
            False,
            f"dnc min-peak search, stopped (lower bound {schedule.lower_bound_bytes} B)",
        )

    # ------------------------------------------------------------------ solve
    @stops_on_ctrl_c
    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` within ``budget`` (see the module docstring)."""
        if self.objective == "latency":
            return solve_for_latency(self, problem, budget)
        refused = infeasible_below_mr(self, problem, budget)
        if refused is not None:
            return refused
        stats: dict[str, Any] = {"inner": self.inner}
        early = self._early_no_spill(problem, budget)
        if early is not None:
            # No plan moves fewer bytes, and greedy's default need not run first: its
            # model order's packing retries can take the whole limit at M_P (rw800, M_P,
            # 3 to 5 s: the portfolio packs this plan in 0.25 s, greedy spilled 363 KB).
            require_part_solver()  # a missing extra is the same error as on any graph
            stats["start"] = stats["source"] = NO_SPILL_SOURCE
            return self._result(problem, budget, early, stats, SearchStats(), 0)
        # Greedy's default first, with the whole budget as greedy alone has it: dnc is
        # never worse than greedy at the same time limit, short limits included (at 0.2 s
        # importing OR-Tools and the min-peak search before it left greedy no time: spill
        # everything, 43x greedy's traffic).
        first = self._greedy_default(problem, budget)
        if first is not None and traffic_bytes(problem, first) == constant_bytes(problem):
            # No plan moves fewer bytes: done, without importing OR-Tools (0.6 s) and the
            # min-peak search (light_inception_v1, activations, M_R: 0.79 s -> 0.13 s).
            require_part_solver()  # a missing extra is the same error as on any graph
            stats["start"] = stats["source"] = plan_source(problem, first, "greedy", "auto")
            return self._result(problem, budget, first, stats, SearchStats(), 0)
        budget = finishing_early(budget)
        if first is not None and budget.remaining_s() < MIN_WORK_S:
            return self._greedy_only(problem, budget, first, stats)
        part_solver_class()  # before dnc's own work: a missing extra is one clear error
        if first is not None and budget.remaining_s() < MIN_WORK_S:
            return self._greedy_only(problem, budget, first, stats)  # the import took it
        constant = constant_bytes(problem)
        bound: int | None = None

        def report(moved: int, message: str) -> None:
            budget.report_progress(
                incumbent_bytes=moved - constant, bound_bytes=bound, message=message
            )

        schedule = self._schedule(problem, budget, stats)
        best, source = self._start(problem, budget, stats, schedule, first)
        start_plan = best
        best_bytes = traffic_bytes(problem, best)
        stats["start"] = source
        stats["start_bytes"] = best_bytes - constant
        report(best_bytes, f"start: {source}")
        search = SearchStats()
        settings = RunSettings(
            part_solver=part_solver_class(),
            fixed_order=self.inner == "ilp-fixed",
            work_s=self.window_time_s,
            workers=self.workers,
            seed=self.seed,
        )
        # On a graph the interval phase takes whole (its largest window), that exact run
        # comes first: the order search took the time it needed (darts_v2_cifar_small,
        # all, MR: 393,216 B against the 262,144 B optimum it finds when it runs first).
        whole_first = problem.graph.num_ops <= INTERVAL_WHOLE_WINDOWS * self.window_ops
        if best_bytes > constant and not budget.should_stop():
            bound = self._bound(problem, budget, schedule, stats)
            report(best_bytes, "lower bound")
            if not whole_first and best_bytes - constant > (bound or 0):
                bound = self._part_bound(problem, budget, best, settings, bound, stats)
                report(best_bytes, "lower bound of a part")
            if best_bytes - constant > (bound or 0) and not budget.should_stop():
                bound = self._cover_bound(problem, budget, bound, stats)
                report(best_bytes, "lower bound: cut cover")
        # The parts added (the strongest bound on large graphs, and the slowest) run last,
        # in time kept back from the search.
        whole_budget = budget
        add_parts = not whole_first and best_bytes - constant > (bound or 0)
        if add_parts and budget.time_limit_s is not None:
            left_s = budget.remaining_s()
            reserve_s = min(
                max(ADDITIVE_SHARE * left_s, ADDITIVE_MIN_S), ADDITIVE_MAX_SHARE * left_s
            )
            budget = dataclasses.replace(budget, time_limit_s=budget.time_limit_s - reserve_s)
        improved_by: list[str] = []  # the phases that lowered the best plan, in turn
        for phase in ("intervals", "reorder") if whole_first else ("reorder", "intervals"):
            if best_bytes - constant <= (bound or 0):
                break
            before = best_bytes
            if phase == "reorder" and self.reorder_share > 0:
                graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
                starts = [tuple(best.order), tuple(schedule.order)]
                starts += [tuple(named_order(graph, name, sizes, scope)) for name in REORDER_STARTS]
                share_s = time_share(budget, self.reorder_share)
                best, best_bytes = self._reorder_phase(
                    problem,
                    Budget(time_limit_s=share_s, stop_event=budget.stop_event),
                    best,
                    best_bytes,
                    starts,
                    stats.setdefault("reorder_rounds", []),
                    whole=budget,
                )
                report(best_bytes, "order search")
            elif phase == "intervals" and self.interval_share > 0:
                best, best_bytes = self._interval_phase(
                    problem, budget, best, best_bytes, settings, stats, report
                )
                relaxed = stats.get("relaxation_bound_bytes")
                if relaxed is not None and relaxed - constant > (bound or 0):
                    bound = relaxed - constant  # the whole graph without placement: a bound
                    stats["bound_method"] = "the ilp on the whole graph without placement"
            if best_bytes < before:
                improved_by.append(
                    "order search" if phase == "reorder" else "windows without offsets"
                )
        if best_bytes - constant > (bound or 0) and not budget.should_stop():
            order = best.order
            cuts = choose_cuts(list(crossing_bytes(problem, order)), self.part_ops)
            stats["cuts"] = cuts
            progress = WindowProgress.fresh(settings.seed)  # the parts' proofs carry over
            if self.parts_share > 0 and cuts:  # one part: the windows cover it
                parts_budget = Budget(
                    time_limit_s=time_share(budget, self.parts_share),
                    stop_event=budget.stop_event,
                )
                best = solve_parts(
                    problem, best, cuts, settings, parts_budget, search, report, progress
                )
            if search.parts_improved:
                improved_by.append("parts")
            best = self._late_phases(
                problem, budget, best, settings, search, report, bound, stats, improved_by, progress
            )
        # The phases' clock (the time before the parts added) ran out: the windows were
        # cut, even when the parts added end before the limit (skip150, M_R, 8 s: 'best
        # plan found' FEASIBLE at 7.9 s, 9 windows tried, not converged).
        ran_out = budget.should_stop()
        stats.update(dataclasses.asdict(search))
        whole = search.whole_bound_bytes
        if whole is not None and whole - constant > (bound or 0):
            bound = whole - constant  # a whole-graph run's bound (see improve_windows)
            stats["bound_method"] = "the ilp on the whole graph"
        budget = whole_budget
        best_bytes = traffic_bytes(problem, best)
        if add_parts and best_bytes - constant > (bound or 0) and not budget.should_stop():
            bound = self._parts_added_phase(
                problem, budget, (start_plan, best), best_bytes - constant, settings, bound, stats
            )
            report(best_bytes, "lower bound: parts added")
        stats["source"] = " + ".join([source, *improved_by])
        return self._result(problem, budget, best, stats, search, bound, ran_out=ran_out)

    def _result(
        self,
        problem: Problem,
        budget: Budget,
        plan: Plan,
        stats: dict[str, Any],
        search: SearchStats,
        bound: int | None,
        *,
        ran_out: bool = False,
    ) -> SolveResult:
        """The result of ``plan``: TIMEOUT when it is not proven optimal, the windows did
        not converge and the time ran out (``ran_out``: a phase's clock, before the
        limit)."""
        waste = traffic_bytes(problem, plan) - constant_bytes(problem)
        if waste == 0:
            status, message = Status.OPTIMAL, "no non-compulsory traffic"
        elif bound is not None and waste <= bound:
            status, message = Status.OPTIMAL, f"meets the lower bound ({stats['bound_method']})"
        elif (ran_out or budget.should_stop()) and not search.converged:
            status = Status.TIMEOUT
            stop = "interrupted" if budget.interrupted() else "time limit reached"
            message = f"{stop}; returning the best plan so far ({stats['source']})"
        else:
            status = Status.FEASIBLE
            message = (
                "no window improves the plan any more"
                if search.converged
                else f"best plan found ({stats['source']})"
            )
        return make_result(
            self,
            problem,
            status,
            plan,
            budget,
            lower_bound_bytes=0 if waste == 0 else bound,
            stats=stats,
            message=message,
        )

    # ------------------------------------------------------------------ start
    def _greedy_only(
        self, problem: Problem, budget: Budget, first: Plan, stats: dict[str, Any]
    ) -> SolveResult:
        """Greedy's default plan as dnc's result: too little time is left for more."""
        stats["start"] = plan_source(problem, first, "greedy", "auto")
        stats["source"] = f"{stats['start']}; too little time left for dnc's phases"
        return self._result(problem, budget, first, stats, SearchStats(), None, ran_out=True)


def finishing_early(budget: Budget) -> Budget:
    """``budget`` with :data:`FINISH_S` less time (at most :data:`FINISH_SHARE` of it),
    the same start, stop flag and progress callback."""
    if budget.time_limit_s is None:
        return budget
    margin = min(FINISH_S, FINISH_SHARE * budget.time_limit_s)
    return dataclasses.replace(budget, time_limit_s=budget.time_limit_s - margin)
