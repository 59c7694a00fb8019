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
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from memplan.analysis import (
    default_min_peak_schedule,
    min_peak_order,
    named_order,
    peak_live_bytes,
    tensor_lifetimes,
)
from memplan.budgets import PeakEstimate
from memplan.cut import crossing_bytes
from memplan.dsa import Buffer, allocate
from memplan.errors import MemplanError
from memplan.fallback import plan_source, spill_everything_plan
from memplan.options import check_choice, check_range, check_seed, seed_field, type_options
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, Scope
from memplan.registry import EXACT_MIN_PEAK
from memplan.schedule import PeakSchedule, min_peak_schedule
from memplan.solver import Budget, SolveResult, Status, infeasible_below_mr, make_result
from memplan.solvers.dnc.bound import additive_bound, part_bound, weights_streamed
from memplan.solvers.dnc.cover import cover_bound
from memplan.solvers.dnc.cuts import choose_cuts
from memplan.solvers.dnc.search import (
    Report,
    RunSettings,
    SearchStats,
    WindowProgress,
    constant_bytes,
    improve_windows,
    part_solver_class,
    require_part_solver,
    solve_parts,
    traffic_bytes,
    without_offsets,
)
from memplan.solvers.greedy import plan_given_order
from memplan.solvers.online import online_plan
from memplan.solvers.order_search import search_order
from memplan.solvers.packing import TRAIL_PACK_S, latest_packed, pack, pack_stays, pack_trail
from memplan.solvers.replacement import simulate
from memplan.traffic_bound import traffic_lower_bound

INNER = ("ilp", "ilp-fixed")

#: Most CP-SAT threads per part: OR-Tools 9.15 dies of a segmentation fault with 20 or
#: more workers under the deterministic time limits dnc's parts and windows use
#: (measured on a 220-op transformer; 19 ran), and a 2-core machine gains nothing there.
MAX_WORKERS = 16

#: Seconds dnc needs after greedy's default to do anything (import OR-Tools, the min-peak
#: search, a first window): with less left, greedy's plan is returned at once rather than
#: late (nasnet_a_cifar at a 1-s limit ended at 1.6 s).
MIN_WORK_S = 0.5
#: Orders of greedy's further starting plans, after its default (``order=auto``), which
#: runs first of all with the whole budget (see :meth:`DncSolver.solve`).
GREEDY_ORDERS = ("rpo", "dfs")
#: Share of the whole time after which no further greedy order starts (each of them at
#: most GREEDY_MAX_S seconds).
GREEDY_SHARE, GREEDY_MAX_S = 0.25, 10.0
#: Share of the time left the min-peak search may take; SPILLING_SCHEDULE_SHARE when the
#: capacity is below NO_SPILL_REACH times the peak of the search's start order
#: (:func:`min_peak_order`). There a plan without spills is out of reach (the search
#: lowered that peak by 7 % at most on six catalog graphs: randwire_ws_large 40.5 ->
#: 37.8 MiB, unproven after 4 s), and its order is only one start of the order search,
#: which needs the time (randwire_ws_large, act, M_R: 7.4 s of 30 s went to it).
SCHEDULE_SHARE, SPILLING_SCHEDULE_SHARE, NO_SPILL_REACH = 0.5, 0.1, 0.5
#: Seconds the exact allocator may take to pack the no-spill plan of the min-peak order
#: (and a round's order), and the least a round's order gets to be packed in, even when
#: the round's search used up its phase's share.
PACK_MAX_S, MIN_PLAN_S = 5.0, 0.1
#: Where a start plan that spills nothing comes from (``stats["start"]``).
NO_SPILL_SOURCE = "no-spill packing of the min-peak order"
#: Seconds (at most this share of the limit) the phases stop before the time limit, for
#: validating and scoring the plan (about 30 ms on 4,500 residencies) and the step under
#: way when time ran out: a 30 s limit ended at up to 30.07 s without it.
FINISH_S, FINISH_SHARE = 0.15, 0.01
#: Share of the time left greedy's stack may take to plan a round's order.
PLAN_SHARE = 0.8
#: Share of the time left the traffic lower bound may take.
BOUND_SHARE = 0.15
#: Share of the time left the bound from one part may take, and the part's size in
#: ``window_ops`` (nasnet_a_large, activations, MH: 48 ops prove 31.4 MB in a few
#: seconds, where the crowded regions prove 8.0 MB; 96 ops ran out of time).
PART_BOUND_SHARE, PART_BOUND_WINDOWS = 0.15, 3
#: Share of the time left after the first bounds that is kept back for the bound of
#: parts that own disjoint tensors (runs of about ``window_ops`` steps, then of
#: PART_BOUND_WINDOWS x ``window_ops``; darts_v2_cifar, activations, M_R: seven runs of
#: about 48 steps of greedy's order prove 7.08 MB in 8 s, the cut cover 2.06 MB). At
#: 30 s, 0.2 cost plans on 3 of 4 cells tried (nasnet_a_mobile, all, M_H: 1.08 MB
#: against 0.83 MB), 0.1 on none of 7, and still proved 7.08 MB on darts_v2_cifar.
ADDITIVE_SHARE = 0.1
#: ... but at least ADDITIVE_MIN_S seconds, within ADDITIVE_MAX_SHARE of the time left (17
#: stems, 138 ops, 10 s: the 0.8 s of the share proved greedy's plan optimal in 0.5 s on
#: an idle machine, and ran out at a load of 4 on 2 cores).
ADDITIVE_MIN_S, ADDITIVE_MAX_SHARE = 2.0, 0.25
#: Share of the time left the cut-cover bound may take, at most COVER_MAX_S seconds,
#: and the least worth starting it with (randwire_ws_regular, activations, M_R: 27.3 MB
#: proven in 0.3 s, twice the crowded regions' 13.9 MB).
COVER_SHARE, COVER_MAX_S, COVER_MIN_S = 0.08, 10.0, 0.2
#: Rounds of the order search, and the share of the capacity the search capacity drops
#: by after a round whose stays did not pack.
REORDER_ROUNDS, REORDER_SLACK = 6, 0.02
#: The interval phase's largest window, in ``window_ops`` (twice the option, grown 4x):
#: graphs up to this many times ``window_ops`` ops are solved whole there.
INTERVAL_WHOLE_WINDOWS = 8
#: Named orders the order search also starts from (after the best plan's and the
#: min-peak order; each distinct one once).
REORDER_STARTS = ("model", "rpo", "dfs")
#: Share of the order search's time (of its phase's part for searching) that one round
#: may take while it still improves, when its own part (a third at most) is spent: on
#: graphs of 1,000+ ops a round is far from converged when its part is up.
ROUND_MAX_SHARE = 0.75
#: Share of the time left that a round of the order search takes after the windows
#: stall (the rest packs or plans the order it finds).
LATE_SEARCH_SHARE = 0.8


@dataclass(frozen=True)
class DncSolver:
    """Divide and conquer: CP-SAT on parts cut at narrow places, then windows (LNS)."""

    name: ClassVar[str] = "dnc"
    capabilities: ClassVar[frozenset[str]] = frozenset({EXACT_MIN_PEAK})

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

    def __post_init__(self) -> None:
        type_options(self)
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
    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` within ``budget`` (see the module docstring)."""
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
                share_s = self._share(budget, self.reorder_share)
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
                    time_limit_s=self._share(budget, self.parts_share),
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

    def _late_phases(
        self,
        problem: Problem,
        budget: Budget,
        best: Plan,
        settings: RunSettings,
        search: SearchStats,
        report: Report,
        bound: int | None,
        stats: dict[str, Any],
        improved_by: list[str],
        progress: WindowProgress,
    ) -> Plan:
        """The windows (phase 7, going on from ``progress``: the parts proven optimal);
        when none of them improves the plan within ``stall_share`` of the time left (they
        stall), the order search from the best plan's order (phase 8), then the windows
        again: on the new plan from the start (and they may stall again), or where they
        stopped when the search found nothing (then to the end: on small graphs they
        converge about as soon as without the search); returns the best plan and appends
        the phases that improved it to ``improved_by``."""
        target = constant_bytes(problem) + (bound or 0)
        rounds = stats.setdefault("late_reorder_rounds", [])
        may_yield = self.stall_share < 1.0 and not self.max_windows
        while True:
            # With a clock and no cap on the windows, they may stall; then the order search.
            stall_s = self._share(budget, self.stall_share) if may_yield else None
            improved = search.windows_improved
            search.stalled = False
            best = improve_windows(
                problem,
                best,
                window_ops=self.window_ops,
                max_windows=self.max_windows,
                settings=settings,
                budget=budget,
                stats=search,
                report=report,
                target_bytes=target,
                stall_s=stall_s,
                progress=progress,
                whole_last=True,
            )
            if search.windows_improved > improved and "windows" not in improved_by:
                improved_by.append("windows")
            if not search.stalled or budget.should_stop():
                return best
            before = traffic_bytes(problem, best)
            best, after = self._reorder_phase(
                problem,
                budget,
                best,
                before,
                [tuple(best.order)],
                rounds,
                seed_offset=REORDER_ROUNDS * (1 + len(rounds)),
                search_share=LATE_SEARCH_SHARE,  # leaves time to pack the order found
                first_capacity=_late_search_capacity(problem, best, before),
            )
            report(after, "order search again")
            if after <= target:
                return best
            if after < before:  # a new plan: a new sweep, which may yield again
                if "order search again" not in improved_by:
                    improved_by.append("order search again")
                progress = WindowProgress.fresh(settings.seed)
            else:  # nothing: the windows go on where they stopped, to the end
                may_yield = False

    def _reorder_phase(
        self,
        problem: Problem,
        budget: Budget,
        best: Plan,
        best_bytes: int,
        starts: Sequence[tuple[int, ...]],
        rounds: list[dict[str, int | bool]],
        *,
        seed_offset: int = 0,
        search_share: float = 1.0,
        whole: Budget | None = None,
        first_capacity: int | None = None,
    ) -> tuple[Plan, int]:
        """Rounds of the order search within ``budget``, each planned: Belady's stays at
        the search capacity packed at the real one, or when they do not pack, the online
        passes of :mod:`memplan.solvers.online`, the greedy stack on the order found (its
        retries shrink the capacity until the plan packs) and the trail; each round's
        figures are appended to ``rounds``; round k searches with seed ``seed + seed_offset + k``,
        for at most ``search_share`` of its part of the time (the rest is for planning);
        ``whole`` is the solve's budget when ``budget`` is a share of it (planning may
        overrun the share, not the solve); the first start is searched at
        ``first_capacity`` (the real capacity by default).

        Rounds start from ``starts`` in turn (phase 3: the best plan's, the min-peak
        order, the model's, rpo, dfs): the search is local, and its start matters (nasnet_a_large at
        MH, 40,000 moves: 37.2 MB from rpo's order, 32.5 MB from the min-peak order). The
        search fills the capacity wherever it saves bytes, and a plan whose live bytes
        touch the capacity at many steps often does not pack (darts_v2_cifar at MH: no
        packing within 5 % of it); so when the stays do not pack, the next round goes on
        from the order found at a capacity :data:`REORDER_SLACK` lower.
        """
        capacity, constant = problem.capacity_bytes, constant_bytes(problem)
        whole = whole if whole is not None else budget
        queue = [(order, capacity) for order in dict.fromkeys(starts)]
        if first_capacity is not None and queue:
            queue[0] = (queue[0][0], first_capacity)
        for k in range(REORDER_ROUNDS):
            if not queue or budget.should_stop():
                break
            order, search_capacity = queue.pop(0)
            left = budget.remaining_s()
            per_round = (
                None if left == float("inf") else search_share * left / min(len(queue) + 1, 3)
            )
            round_budget = Budget(time_limit_s=per_round, stop_event=budget.stop_event)
            # A round still improving at its time goes on, up to ROUND_MAX_SHARE of the
            # phase's search time (the rest plans its order): the next start gets less.
            longest = None if per_round is None else ROUND_MAX_SHARE * search_share * left
            longest_budget = Budget(time_limit_s=longest, stop_event=budget.stop_event)
            found = search_order(
                problem.with_capacity(search_capacity),
                order,
                seed=self.seed + seed_offset + k,
                should_stop=round_budget.should_stop,
                must_stop=longest_budget.should_stop,
                max_moves=self.max_moves,
            )
            # Packing and greedy's stack take half of what this phase has left each (at
            # least MIN_PLAN_S: a round that used its share still gets its order packed),
            # never more than PLAN_SHARE of what the solve has left (Belady's simulation
            # and a fallback plan come on top of a limit), and the trail tries while one
            # more try fits: the last round ends within the time limit.
            plan_limit = min(
                PACK_MAX_S,
                max(budget.remaining_s() / 2, MIN_PLAN_S),
                PLAN_SHARE * whole.remaining_s(),
            )
            packed = None
            if plan_limit > MIN_PLAN_S / 2:
                packed = pack_stays(problem, found.order, search_capacity, plan_limit, self.seed)
            candidates = [packed] if packed is not None else []
            if packed is None:
                # The online passes first (a fraction of a second on 2,000 ops; at M_R
                # the plan, randwire_ws_large, act: 374 MB where greedy's stack fell back
                # to 383 MB), then greedy's retries (a lower capacity where it packs),
                # then the trail.
                online = online_plan(problem, found.order, whole)
                candidates += [online] if online is not None else []
                plan_limit = min(plan_limit, PLAN_SHARE * whole.remaining_s())
                if plan_limit > MIN_PLAN_S / 2:
                    planned = plan_given_order(
                        problem,
                        found.order,
                        Budget(time_limit_s=plan_limit, stop_event=budget.stop_event),
                    )
                    if planned.plan is not None:
                        candidates.append(planned.plan)

                # The trail may overrun the phase's share like the planning above (not
                # the solve): a round that searched to its longest leaves the phase
                # spent, and its best order's fallback plan can be far above an earlier
                # order's packing (randwire_ws_regular, all, M_H: 23.2 MB against 19.1).
                def out_of_time() -> bool:
                    return whole.should_stop() or whole.remaining_s() <= 2 * TRAIL_PACK_S

                earlier = pack_trail(problem, found, search_capacity, out_of_time, self.seed)
                candidates += [earlier] if earlier is not None else []
                # Go on at a lower capacity, which leaves the allocator slack; at M_R
                # there is none to leave, and the next start is worth more than a
                # search from an order that is already full (darts_v2_cifar, act, MR:
                # such a round found nothing, rpo's order found 8.04 MB).
                lower = search_capacity - int(REORDER_SLACK * capacity)
                if lower >= problem.min_resident_bytes:
                    queue.insert(0, (found.order, lower))
            scored = [(traffic_bytes(problem, c), c) for c in candidates]
            round_best = min((moved for moved, _ in scored), default=None)
            rounds.append(
                {
                    "capacity_bytes": search_capacity,
                    "start_bytes": found.start_bytes,
                    "belady_bytes": found.best_bytes,
                    "moves": found.moves,
                    "packed": packed is not None,
                    "planned_bytes": -1 if round_best is None else round_best - constant,
                }
            )
            if round_best is not None and round_best < best_bytes:
                best_bytes, best = min(scored, key=lambda pair: pair[0])
        return best, best_bytes

    def _interval_phase(
        self,
        problem: Problem,
        budget: Budget,
        best: Plan,
        best_bytes: int,
        settings: RunSettings,
        stats: dict[str, Any],
        report: Report,
    ) -> tuple[Plan, int]:
        """Windows without placement (only the capacity sum), then one packing of the
        whole plan: bigger windows fit in the time, and offsets are chosen globally."""
        share = Budget(
            time_limit_s=self._share(budget, self.interval_share), stop_event=budget.stop_event
        )
        interval_stats = SearchStats()

        constant = constant_bytes(problem)

        def quiet(moved: int, message: str) -> None:
            report(best_bytes, f"intervals: {moved - constant} B unpacked")

        trail: list[Plan] = []
        intervals = improve_windows(
            problem,
            without_offsets(best),
            window_ops=2 * self.window_ops,
            max_windows=self.max_windows,
            settings=dataclasses.replace(settings, placement=False),
            budget=share,
            stats=interval_stats,
            report=quiet,
            trail=trail,
        )
        if interval_stats.whole_bound_bytes is not None:
            stats["relaxation_bound_bytes"] = interval_stats.whole_bound_bytes
        stats["interval_windows_improved"] = interval_stats.windows_improved
        stats["interval_windows_tried"] = interval_stats.windows_tried
        moved = traffic_bytes(problem, intervals)
        stats["interval_bytes"] = moved - constant
        if moved >= best_bytes or budget.should_stop():
            stats["interval_packed"] = False
            return best, best_bytes
        packed = pack(problem, intervals, min(PACK_MAX_S, budget.remaining_s()), self.seed)
        stats["interval_packed"] = packed is not None
        if packed is None:
            # The windows fill the capacity as they go, and a full plan often does not
            # pack; an earlier plan of theirs may (darts_v2_cifar, all, MH: 2.65 MB does
            # not pack in 5 s, and without this the phase kept nothing).
            packed = self._packed_trail(problem, budget, trail[:-1], best_bytes)
            if packed is None:
                return best, best_bytes
            moved = traffic_bytes(problem, packed)
            stats["interval_trail_bytes"] = moved - constant
        report(moved, "intervals packed")
        return packed, moved

    def _packed_trail(
        self, problem: Problem, budget: Budget, trail: Sequence[Plan], best_bytes: int
    ) -> Plan | None:
        """The latest plan of ``trail`` (each better than the one before) that moves
        fewer than ``best_bytes`` and packs, by bisection, :data:`TRAIL_PACK_S` per try;
        None when none does in time."""
        better = [plan for plan in trail if traffic_bytes(problem, plan) < best_bytes]
        return latest_packed(
            len(better),
            lambda k: pack(problem, better[k], TRAIL_PACK_S, self.seed),
            lambda: budget.remaining_s() <= 2 * TRAIL_PACK_S,
        )

    def _schedule(self, problem: Problem, budget: Budget, stats: dict[str, Any]) -> PeakSchedule:
        """The low-peak order: the budgets' search (same node limit, same order, so an
        M_P budget fits it; when a budget of this process ran it, its result), within
        :data:`SCHEDULE_SHARE` of the time, or :data:`SPILLING_SCHEDULE_SHARE` when the
        capacity is below :data:`NO_SPILL_REACH` times the peak of its start order."""
        graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
        share = SCHEDULE_SHARE
        heuristic = peak_live_bytes(graph, min_peak_order(graph, sizes, scope), sizes, scope)
        if problem.capacity_bytes < NO_SPILL_REACH * heuristic:
            share = SPILLING_SCHEDULE_SHARE  # no plan without spills in reach: a start order
        limit = Budget(time_limit_s=self._share(budget, share), stop_event=budget.stop_event)
        schedule = default_min_peak_schedule(graph, sizes, scope, should_stop=limit.should_stop)
        stats["min_peak_bytes"] = schedule.peak_bytes
        stats["min_peak_proven"] = schedule.proven
        return schedule

    def _bound(
        self, problem: Problem, budget: Budget, schedule: PeakSchedule, stats: dict[str, Any]
    ) -> int | None:
        """The traffic lower bound of :mod:`memplan.traffic_bound` (None when it is 0)."""
        share = Budget(time_limit_s=self._share(budget, BOUND_SHARE), stop_event=budget.stop_event)
        found = traffic_lower_bound(
            problem,
            schedule.order,
            min_peak_bound_bytes=schedule.lower_bound_bytes,
            should_stop=share.should_stop,
        )
        stats["bound_method"] = found.method
        stats["bound_regions"] = len(found.regions)
        return found.bound_bytes or None

    def _part_bound(
        self,
        problem: Problem,
        budget: Budget,
        best: Plan,
        settings: RunSettings,
        bound: int | None,
        stats: dict[str, Any],
    ) -> int | None:
        """The larger of ``bound`` and what the ilp proves on the busiest
        :data:`PART_BOUND_WINDOWS` x ``window_ops`` steps of the best plan
        (:mod:`.bound`: valid for the whole graph)."""
        share = Budget(
            time_limit_s=self._share(budget, PART_BOUND_SHARE), stop_event=budget.stop_event
        )
        found = part_bound(problem, best, PART_BOUND_WINDOWS * self.window_ops, settings, share)
        if found is None:
            return bound
        stats["part_bound"] = {"steps": list(found.steps), "bound_bytes": found.bound_bytes}
        if found.bound_bytes <= (bound or 0):
            return bound
        stats["bound_method"] = f"{found.method} of the start plan's order"
        return found.bound_bytes

    def _parts_added_phase(
        self,
        problem: Problem,
        budget: Budget,
        plans: tuple[Plan, Plan],
        moved_bytes: int,
        settings: RunSettings,
        bound: int | None,
        stats: dict[str, Any],
    ) -> int | None:
        """Phase 9: the larger of ``bound`` and the parts added on the runs of the start
        and best ``plans`` (the best moving ``moved_bytes``), until one meets it.

        Runs of the start plan's order (a low-peak one) often hold whole crowded regions
        where the final order spreads them (darts_v2_cifar, activations, M_R: 7.08 MB
        against 1.18 MB): it comes first. Short runs are solved fast (a chain of 17
        NASNet-like stems: all proven in 0.9 s, where runs three times as long prove 1/17
        of it in 27 s), long ones can prove more (darts_v2_cifar: 7.08 MB against
        5.90 MB). With weights in scope, the relaxation with weights streamed comes
        first (Lemma 3: its parts are easier; darts_v2_cifar, all, M_R: 4.13 MB in 16 s
        against 23 s)."""
        start_plan, best = plans
        streamed = (True, False) if problem.scope is Scope.ALL else (False,)
        for plan_of, width, relax in itertools.product(
            ("start", "best"), (self.window_ops, PART_BOUND_WINDOWS * self.window_ops), streamed
        ):
            if moved_bytes <= (bound or 0) or budget.should_stop():
                break
            if plan_of == "best" and best.order == start_plan.order:
                continue
            runs_plan = start_plan if plan_of == "start" else best
            bound = self._additive_bound(
                problem, budget, runs_plan, plan_of, width, relax, settings, bound, stats
            )
        return bound

    def _additive_bound(
        self,
        problem: Problem,
        budget: Budget,
        plan: Plan,
        plan_of: str,
        width: int,
        streamed: bool,
        settings: RunSettings,
        bound: int | None,
        stats: dict[str, Any],
    ) -> int | None:
        """The larger of ``bound`` and the sum of what the ilp proves on runs of ``width``
        steps of ``plan`` (the ``plan_of`` plan: start or best), each tensor charged in
        one run (:func:`.bound.additive_bound`), with weights streamed when
        ``streamed`` (:func:`.bound.weights_streamed`), within ``budget``."""
        if streamed:
            found = additive_bound(*weights_streamed(problem, plan), width, settings, budget)
        else:
            found = additive_bound(problem, plan, width, settings, budget)
        if found is None:
            return bound
        stats.setdefault("additive_bound", []).append(
            {
                "plan": plan_of,
                "width": width,
                "weights_streamed": streamed,
                "bound_bytes": found.bound_bytes,
                "parts_solved": found.solved,
                "parts_to_solve": found.to_solve,
            }
        )
        if found.bound_bytes <= (bound or 0):
            return bound
        relaxed = ", weights streamed" if streamed else ""
        stats["bound_method"] = f"{found.method} (the {plan_of} plan's order{relaxed})"
        return found.bound_bytes

    def _cover_bound(
        self, problem: Problem, budget: Budget, bound: int | None, stats: dict[str, Any]
    ) -> int | None:
        """The larger of ``bound`` and the cut-cover bound (:mod:`.cover`), within
        :data:`COVER_SHARE` of the time left (at most :data:`COVER_MAX_S`)."""
        share_s = self._share(budget, COVER_SHARE)
        limit_s = COVER_MAX_S if share_s is None else min(share_s, COVER_MAX_S)
        if limit_s < COVER_MIN_S:
            return bound
        found = cover_bound(
            problem,
            Budget(time_limit_s=limit_s, stop_event=budget.stop_event),
            seed=self.seed,
            workers=self.workers,
        )
        if found is None:
            return bound
        stats["cover_bound"] = {"ops": found.ops, "bound_bytes": found.bound_bytes}
        if found.bound_bytes <= (bound or 0):
            return bound
        stats["bound_method"] = found.method
        return found.bound_bytes

    @staticmethod
    def _share(budget: Budget, share: float) -> float | None:
        """Seconds of ``budget`` left times ``share`` (None without a limit)."""
        remaining = budget.remaining_s()
        return None if remaining == float("inf") else share * remaining

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

    def _greedy_default(self, problem: Problem, budget: Budget) -> Plan | None:
        """Greedy's default plan (``order=auto``) with all the time of ``budget``."""
        from memplan.solver import make_solver

        try:  # the same budget object: the same start, limit and stop flag as greedy alone
            quiet = dataclasses.replace(budget, on_progress=None)  # its lines mean greedy's
            return make_solver("greedy", {"order": "auto"}).solve(problem, quiet).plan
        except MemplanError:
            return None

    def _start(
        self,
        problem: Problem,
        budget: Budget,
        stats: dict[str, Any],
        schedule: PeakSchedule,
        first: Plan | None,
    ) -> tuple[Plan, str]:
        """The best starting plan: a no-spill packing when one fits, else the best of
        greedy's default (``first``, made before anything else) and greedy's other orders."""
        candidates: list[tuple[int, Plan, str]] = []
        packed = self._no_spill(problem, budget, schedule.order)
        if packed is not None:
            return packed, NO_SPILL_SOURCE
        from memplan.solver import make_solver

        if first is not None:
            source = plan_source(problem, first, "greedy", "auto")
            candidates.append((traffic_bytes(problem, first), first, source))
        for order_name in GREEDY_ORDERS:
            # Greedy's other orders get what the greedy share leaves.
            remaining = budget.remaining_s()
            if budget.should_stop() or budget.elapsed_s() > GREEDY_SHARE * budget_total(budget):
                break
            limit = min(GREEDY_MAX_S, GREEDY_SHARE * remaining)
            try:
                greedy = make_solver("greedy", {"order": order_name})
                sub = Budget(
                    time_limit_s=None if limit == float("inf") else limit,
                    stop_event=budget.stop_event,
                )
                result = greedy.solve(problem, sub)
            except MemplanError:
                continue
            if result.plan is not None:
                value = traffic_bytes(problem, result.plan)
                source = plan_source(problem, result.plan, "greedy", order_name)
                candidates.append((value, result.plan, source))
        if not candidates:
            fallback = min_peak_order(problem.graph, problem.aligned_sizes_bytes, problem.in_scope)
            return spill_everything_plan(problem, fallback), "spill everything"
        candidates.sort(key=lambda c: c[0])
        stats["greedy_bytes"] = {
            name: value - constant_bytes(problem) for value, _, name in candidates
        }
        return candidates[0][1], candidates[0][2]

    def _early_no_spill(self, problem: Problem, budget: Budget) -> Plan | None:
        """The no-spill plan of the min-peak order when it packs at once, else None.

        Tried before anything else: the order is the budgets' search's when it ran to its
        end in this process (the one that proves M_P), else its start order (also the
        one greedy plans as ``min-peak``), and only when its peak fits the capacity. Only
        the allocator's portfolio packs it here (0.25 s on 2,000 ops; failing costs as
        little: skip1500, M_P, 0.15 s, where the exact search took all 5 s it had); the
        exact search comes later, in :meth:`_start`.
        """
        graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
        if budget.should_stop():
            return None
        # A search stopped at once gives its start order; a finished one is returned as is.
        schedule = default_min_peak_schedule(graph, sizes, scope, should_stop=lambda: True)
        if schedule.peak_bytes > problem.capacity_bytes:
            return None
        return self._no_spill(problem, budget, schedule.order, algorithm="portfolio")

    def _no_spill(
        self,
        problem: Problem,
        budget: Budget,
        order: Sequence[int],
        *,
        algorithm: str = "auto",
    ) -> Plan | None:
        """Every tensor on chip for its whole life in ``order``, if it packs (by the
        allocator ``algorithm``, within :data:`PACK_MAX_S` of ``budget``)."""
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        if peak_live_bytes(problem.graph, order, sizes, scope) > problem.capacity_bytes:
            return None
        spans = tensor_lifetimes(problem.graph, order, scope)
        buffers, tensors = [], []
        for tensor, span in enumerate(spans):
            if span is not None:
                buffers.append(
                    Buffer(tensor, span[0], span[1], sizes[tensor], problem.alignment_bytes)
                )
                tensors.append(tensor)
        limit = min(PACK_MAX_S, budget.remaining_s())
        pack_budget = Budget(time_limit_s=max(limit, 0.01), stop_event=budget.stop_event)
        result = allocate(buffers, problem.capacity_bytes, algorithm=algorithm, budget=pack_budget)
        if not result.fits or result.offsets_bytes is None:
            return None
        graph = problem.graph
        residencies = []
        for tensor, buffer, offset in zip(tensors, buffers, result.offsets_bytes, strict=True):
            info = graph.tensors[tensor]
            arrive = Arrive.PRODUCE if graph.producer[tensor] is not None else Arrive.LOAD
            leave = Leave.STORE if info.is_output else Leave.DROP
            residencies.append(
                Residency(info.id, buffer.lower, buffer.upper, offset, arrive, leave)
            )
        return Plan.make(order, residencies)


def _late_search_capacity(problem: Problem, best: Plan, best_bytes: int) -> int:
    """The capacity a late search from ``best``'s order starts at: the real one, or
    :data:`REORDER_SLACK` lower when ``best`` moves more than Belady's stays of its
    order would (they did not pack, so the order is full: a search from it at the real
    capacity finds the same stays again. darts_v2_cifar, all, MH: the online plan of a
    searched order, 5.75 MB against Belady's 2.65 MB; the late round searched at the
    capacity and found nothing that packs, 5.46 MB kept; from a plan that packed, the
    late round found stays that pack, 2.65 MB)."""
    capacity = problem.capacity_bytes
    stays = simulate(problem, best.order, capacity)
    if traffic_bytes(problem, stays.plan(best.order)) >= best_bytes:
        return capacity
    lower = capacity - int(REORDER_SLACK * capacity)
    return lower if lower >= problem.min_resident_bytes else capacity


def finishing_early(budget: Budget) -> Budget:
    """``budget`` with :data:`FINISH_S` less time (at most :data:`FINISH_SHARE` of it),
    the same start, stop flag and progress callback."""
    if budget.time_limit_s is None:
        return budget
    margin = min(FINISH_S, FINISH_SHARE * budget.time_limit_s)
    return dataclasses.replace(budget, time_limit_s=budget.time_limit_s - margin)


def budget_total(budget: Budget) -> float:
    """The budget's whole time in seconds (infinity without a limit)."""
    return budget.time_limit_s if budget.time_limit_s is not None else float("inf")
