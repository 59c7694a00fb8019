"""The greedy baseline: order, then replacement, then allocation (COSMA's baseline stack).

COSMA compares its ILP against the three sub-problems solved one after the other
(PROBLEM.md section 6); this solver is that stack:

1. **Order**: by default (``order=auto``) both the model's own order (COSMA's "PyTorch
   order") and the min-peak list scheduler of :func:`memplan.analysis.min_peak_order`
   are planned, and the plan with the fewest non-compulsory bytes is kept (ties: the
   lower peak, then the model order); ``stats["order"]`` says which won and
   ``stats["orders_tried"]`` what each cost. Neither order dominates: at M_P the
   model order of light_shufflenet spills 588 KiB where the min-peak order spills
   nothing, while on seeded 40-op random DAGs (both scopes, MR/MH/MP) the model order
   moves fewer bytes in 39 of 360 cases (min-peak in 166). One order can be asked
   for: ``model``, ``min-peak``, or a depth-first / breadth-first topological order
   (``dfs`` / ``bfs``).
2. **Replacement** (:mod:`memplan.solvers.replacement`): Belady's rule (evict the
   resident tensor, not used by the current op, whose next use is furthest), a
   size-aware variant (largest ``size x next-use distance``), or the cheapest tensor
   that alone frees the bytes missing (``belady-fit``); by default (``auto``) Belady's
   rule and ``belady-fit`` are simulated and the one that moves fewer bytes is packed.
   A spilled activation is stored once and reloaded before its next use; graph outputs
   are stored at their last use. The sum of live aligned sizes never exceeds the
   capacity.
3. **Allocation**: the residencies are buffers ``[start, end)`` of aligned size, placed
   by an allocator of :func:`memplan.dsa.allocate`: by default ``auto``, the greedy
   portfolio, then the exact search when no greedy packing fits. COSMA's own baseline
   used TFLite's greedy-by-size (``allocator=greedy-by-size``), which fragments more:
   on light_densenet121 at MH it costs 2.6 MB of spills where ``auto`` needs 1.4 MB.

A replacement whose live bytes fit can still fail to pack (fragmentation). The solver
then plays the online passes of :mod:`memplan.solvers.online` once (replacement and
placement at once; they cannot fail at a capacity >= M_R, and take a fraction of a
second on 2,000 ops), repeats the replacement with a smaller *effective* capacity (the
capacity minus the overflow, doubling the cut on every retry, never below M_R), then
bisects between the largest capacity that packed and the smallest that did not. When
no try packs and the allocator is not ``auto`` or ``portfolio``, the portfolio tries
the last replacement. Of all these it keeps the plan with the least traffic (a tie:
the two-phase plan): at M_R, where the capacity cannot drop, the online passes often
win (randwire_ws_large, all, MR, min-peak order: 680 MB against 697 MB), and at M_H
sometimes (act: 114 MB against 131 MB after 12 retries). If the budget runs out first,
it returns
:func:`memplan.fallback.spill_everything_plan` (every op's working set on chip for its
own step only), valid at any capacity >= M_R. Below M_R the result is INFEASIBLE.

With ``objective=latency`` the plan of every order at the least traffic then goes
through the prefetch pass (:mod:`memplan.solvers.prefetch`): loads start earlier where
the scratchpad has room, so the ``overlap`` timing model's latency drops at the same
traffic, and the fastest is kept (traffic first, then latency; the peak decides no
more: the lower-peak min-peak order was up to 5% slower on seeded random DAGs).

The status is FEASIBLE (a heuristic proves nothing), except OPTIMAL when the plan has
no non-compulsory traffic: 0 bytes is a lower bound over all plans, and the plan meets
it (under ``objective=latency`` it stays FEASIBLE with that bound: no latency is
proven), and TIMEOUT when the time limit (or a stop) cut any order's try short or left
an order out, even when the plan kept is another order's: then the plan depends on the
limit. The solver is deterministic: ``seed`` is accepted for the protocol; eviction ties
go to the larger tensor, then to the lower tensor id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from memplan.analysis import NAMED_ORDERS, named_order
from memplan.cost import Cost, evaluate
from memplan.dsa import Buffer, allocate, allocator_installed, available_allocators
from memplan.errors import ConfigError
from memplan.fallback import spill_everything_plan
from memplan.ir import OpId
from memplan.options import check_choice, check_range, check_seed, seed_field, type_options
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import (
    Budget,
    SolveResult,
    Status,
    infeasible_below_mr,
    make_result,
    stops_on_ctrl_c,
)
from memplan.solvers.online import OnlinePlan, best_online
from memplan.solvers.prefetch import prefetch
from memplan.solvers.replacement import (
    POLICIES,
    Replacement,
    Stay,
    Stopped,
    scoped_touched,
    simulate,
    use_steps,
)
from memplan.timing import OBJECTIVE_LATENCY, OBJECTIVES

#: The ``order`` option's value that plans :data:`AUTO_ORDERS` and keeps the better plan.
AUTO_ORDER = "auto"

#: The orders ``order=auto`` tries, in tie-break order.
AUTO_ORDERS = ("model", "min-peak")

#: Choices of the ``order`` option.
ORDERS = (AUTO_ORDER, *NAMED_ORDERS)

#: The ``replacement`` option's value that simulates :data:`AUTO_POLICIES` on each
#: order and packs the replacement that moves fewer bytes.
AUTO_REPLACEMENT = "auto"

#: The rules ``replacement=auto`` compares, in tie-break order.
AUTO_POLICIES = ("belady", "belady-fit")

#: Choices of the ``replacement`` option.
REPLACEMENTS = (AUTO_REPLACEMENT, *POLICIES)

#: The ``allocator`` option's names, and the registered allocator each one runs.
ALLOCATORS: dict[str, str] = {
    "greedy-by-size": "greedy-by-size",  # TFLite's arena planner
    "first-fit": "first-fit-decreasing",  # size order, lowest gap
    "best-fit": "best-fit-size",  # size order, best-fitting gap (XLA)
    "portfolio": "portfolio",  # best of every greedy variant
    "auto": "auto",  # the portfolio, then the exact search when it does not fit
}

#: Allocator choice that places tensors during the replacement (no separate packing).
ONLINE = "online"


@dataclass(frozen=True, slots=True)
class _Attempt:
    """The plan of one order and how it was made."""

    plan: Plan  # a valid plan of that order
    cost: Cost  # the cost model's scores of `plan`
    stats: dict[str, Any]  # what the solver did (order, fallback, counters)
    timed_out: bool  # the budget ran out (or a stop came) while planning this order

    def rank(self) -> tuple[int, int]:
        """Sort key: fewer non-compulsory bytes first, then the lower peak."""
        return self.cost.non_compulsory_bytes, self.cost.peak_bytes


@dataclass(frozen=True)
class GreedySolver:
    """Order, Belady replacement and greedy allocation, one after the other."""

    name: ClassVar[str] = "greedy"
    capabilities: ClassVar[frozenset[str]] = frozenset({OBJECTIVE_LATENCY})

    order: str = field(
        default=AUTO_ORDER,
        metadata={
            "help": "operator order: auto (plan the model and min-peak orders, keep the "
            "plan with fewer non-compulsory bytes; default) | model | min-peak | dfs | bfs | "
            "rpo (reverse post-order)"
        },
    )
    replacement: str = field(
        default=AUTO_REPLACEMENT,
        metadata={
            "help": "eviction rule: auto (belady and belady-fit on each order, the one "
            "that moves fewer bytes is packed; default) | belady (furthest next use) | "
            "belady-size (largest size x next-use distance) | belady-fit (the cheapest "
            "tensor that alone frees the bytes missing, else belady)"
        },
    )
    allocator: str = field(
        default="auto",
        metadata={
            "help": "offset allocator: auto (portfolio, then exact search; default) | "
            "greedy-by-size (TFLite, COSMA's baseline) | first-fit | best-fit | portfolio, "
            "or any registered allocator name; online = only the online passes: place each "
            "tensor when it arrives, evicting until a gap opens (never fails)"
        },
    )
    max_retries: int = field(
        default=12,
        metadata={
            "help": "replacement retries with a smaller effective capacity when packing "
            "fails (fragmentation), after one try of the online passes; >= 0"
        },
    )
    alloc_time_limit_s: float = field(
        # The exact search finds a packing within a fraction of a second or not at all in
        # practice; 10 s per failing try made an unlimited solve of a 120-op random graph
        # take 70 s for the same plan as 1 s.
        default=1.0,
        metadata={"help": "seconds an exact allocator (allocator=auto) may search per try; > 0"},
    )
    alloc_node_limit: int = field(
        default=0,
        metadata={
            "help": "search nodes an exact allocator may expand per try, 0 = none: with it "
            "(and time to spare) the plan does not depend on the machine's load; >= 0"
        },
    )
    seed: int = seed_field("accepted for the protocol; the greedy is deterministic")
    objective: str = field(
        default="traffic",
        metadata={
            "help": "traffic (default) | latency: then run the prefetch pass, which starts "
            "loads earlier where space allows (same traffic, lower overlap-model latency)"
        },
    )

    def __post_init__(self) -> None:
        type_options(self)
        check_choice(self.name, "order", self.order, ORDERS)
        check_choice(self.name, "replacement", self.replacement, REPLACEMENTS)
        self._check_allocator()
        check_range(self.name, "max_retries", self.max_retries, 0)
        check_range(self.name, "alloc_time_limit_s", self.alloc_time_limit_s, 1e-3)
        check_range(self.name, "alloc_node_limit", self.alloc_node_limit, 0)
        check_seed(self.name, self.seed)
        check_choice(self.name, "objective", self.objective, OBJECTIVES)

    def _check_allocator(self) -> None:
        """Raise :class:`ConfigError` unless ``allocator`` names one that is installed.

        The list of installed allocators is read only for the message: reading it scans
        every installed distribution (making a greedy took a median 2.4 ms with it, 0.1 ms
        without), and dnc and ilp make a greedy on each solve.
        """
        registered = ALLOCATORS.get(self.allocator, self.allocator)
        if self.allocator == ONLINE or allocator_installed(registered):
            return
        installed = available_allocators()
        choices = tuple(dict.fromkeys((*ALLOCATORS, ONLINE, *installed)))
        check_choice(self.name, "allocator", self.allocator, choices)
        raise ConfigError(
            f"solver 'greedy': allocator {self.allocator!r} needs the allocator "
            f"{registered!r}, which is not installed (installed: {', '.join(installed)}); "
            "reinstall memplan (pip install -e .) or pick another allocator"
        )

    # ------------------------------------------------------------------ solve
    @stops_on_ctrl_c
    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem``: order(s), replacement, allocation, with the fallbacks above."""
        refused = infeasible_below_mr(self, problem, budget)
        if refused is not None:
            return refused
        best: _Attempt | None = None
        attempts: list[_Attempt] = []
        tried: dict[str, int] = {}
        cut = False  # an order was skipped, or its try cut short: the limit shaped the plan
        for name, order in self.orders(problem).items():
            if best is not None and budget.should_stop():
                cut = True  # keep the plan of the orders planned in time
                break
            incumbent = None if best is None else best.cost.non_compulsory_bytes
            budget.report_progress(incumbent, None, f"planning the {name} order")
            attempt = self._plan_order(problem, name, order, budget)
            tried[name] = attempt.cost.non_compulsory_bytes
            attempts.append(attempt)
            # Any order's cut try counts, not only the best one's: the model order's plan
            # kept while the min-peak order ran out of time (rw2000, M_H, 8 s: 2.96 MB,
            # where 30 s gave 2.64 MB) was reported FEASIBLE with no message.
            cut = cut or attempt.timed_out
            if best is None or attempt.rank() < best.rank():
                best = attempt  # strictly better: a tie keeps the earlier order
        assert best is not None, "every order list names at least one order"
        if self.objective == "latency":
            # Traffic first, then latency: every order at the best traffic is prefetched
            # and timed (the min-peak order, kept for its lower peak, was up to 5% slower
            # than the model order at the same traffic on seeded random DAGs).
            fewest = best.cost.non_compulsory_bytes
            tied = [best, *(a for a in attempts if a is not best and a.rank()[0] == fewest)]
            return self._prefetched(problem, tied, budget, tried, cut)
        stats = dict(best.stats)
        if self.order == AUTO_ORDER:
            stats["orders_tried"] = tried
        if best.cost.non_compulsory_bytes == 0:
            # 0 is a lower bound over every plan, and this plan meets it.
            return make_result(
                self,
                problem,
                Status.OPTIMAL,
                best.plan,
                budget,
                lower_bound_bytes=0,
                stats=stats,
                message="no non-compulsory traffic",
            )
        status, message = Status.FEASIBLE, ""
        if cut:
            stop = "interrupted" if budget.interrupted() else "the budget ran out"
            status = Status.TIMEOUT
            # stats["fallback"] "none" means the plan needed no fallback, not "no plan"
            fallback = stats.get("fallback", "none")
            how = "" if fallback == "none" else f" (the {fallback} fallback)"
            message = f"{stop}; returning the best plan so far{how}"
        return make_result(self, problem, status, best.plan, budget, stats=stats, message=message)

    def _prefetched(
        self,
        problem: Problem,
        tied: Sequence[_Attempt],
        budget: Budget,
        tried: dict[str, int],
        cut: bool,
    ) -> SolveResult:
        """``objective=latency``: of the plans ``tied`` at the least traffic (the one of
        the lowest peak first), the fastest after the prefetch pass (a tie: the earlier);
        ``cut``: the time limit cut an order's try short, or skipped an order. An order
        left out of the prefetch pass for want of time counts as cut as well."""
        best, done = tied[0], prefetch(problem, tied[0].plan, budget, seed=self.seed)
        for attempt in tied[1:]:
            if budget.should_stop():
                cut = True  # an order at the same traffic was not timed
                break
            other = prefetch(problem, attempt.plan, budget, seed=self.seed)
            cut = cut or other.timed_out
            if other.latency_after_s < done.latency_after_s:
                best, done = attempt, other
        stats = dict(best.stats)
        if self.order == AUTO_ORDER:
            stats["orders_tried"] = tried
        stats.update(done.to_stats())
        status, message = Status.FEASIBLE, f"prefetch: {done.candidate}"
        if cut or done.timed_out:
            stop = "interrupted" if budget.interrupted() else "the budget ran out"
            status, message = Status.TIMEOUT, f"{stop}; returning the best plan so far"
        bound = 0 if best.cost.non_compulsory_bytes == 0 else None
        return make_result(
            self,
            problem,
            status,
            done.plan,
            budget,
            lower_bound_bytes=bound,
            stats=stats,
            message=message,
        )

    def orders(self, problem: Problem) -> dict[str, tuple[OpId, ...]]:
        """The orders to plan, by name: the ``order`` option's, or both auto orders.

        Under ``auto``, an order equal to an earlier one is planned once.
        """
        names = AUTO_ORDERS if self.order == AUTO_ORDER else (self.order,)
        graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
        orders: dict[str, tuple[OpId, ...]] = {}
        for name in names:
            order = named_order(graph, name, sizes, scope)
            if order not in orders.values():
                orders[name] = order
        return orders

    def _plan_order(
        self, problem: Problem, name: str, order: tuple[OpId, ...], budget: Budget
    ) -> _Attempt:
        """Replacement and allocation for one order, with the fallbacks of the docstring."""
        stats: dict[str, Any] = {"order": name}
        replacement: Replacement | None = None
        plan: Plan | None = None
        steps = scoped_touched(problem), use_steps(problem, order)  # for every simulation
        policy, first = self._policy(problem, order, budget, stats, steps)
        stats["replacement"] = policy
        if self.allocator == ONLINE:
            stats["retries"] = 0
            try:
                online = best_online(problem, order, policy, budget)
            except Stopped:
                timed_out = True
            else:
                plan, replacement, timed_out = (
                    self._take_online(online, order, stats),
                    online.replacement,
                    False,
                )
                stats["fallback"] = "none"  # the online passes were asked for
        else:
            plan, replacement, timed_out = self._plan_with_retries(
                problem, order, budget, stats, steps, policy, first
            )
        if plan is None:
            plan, replacement = spill_everything_plan(problem, order), None
            stats["fallback"] = "spill-everything"
            stats["allocator_used"] = "stacked per step"
        # The comparison of eviction rules stopped before its end, or the time ran out
        # during the try (a packing cut short there fails without raising Stopped).
        rules_cut = self.replacement == AUTO_REPLACEMENT and len(
            stats.get("replacement_bytes", AUTO_POLICIES)
        ) < len(AUTO_POLICIES)
        timed_out = timed_out or rules_cut or budget.should_stop()
        stats.update(
            evictions=replacement.evictions if replacement else None,
            spill_stores=replacement.spill_stores if replacement else None,
            reloads=replacement.reloads if replacement else None,
            residencies=len(plan.residencies),
            max_live_aligned_bytes=replacement.max_live_bytes if replacement else None,
        )
        return _Attempt(plan, evaluate(problem, plan), stats, timed_out)

    def _policy(
        self,
        problem: Problem,
        order: Sequence[int],
        budget: Budget,
        stats: dict[str, Any],
        steps: tuple[list[tuple[int, ...]], list[list[int]]],
    ) -> tuple[str, Replacement | None]:
        """The eviction rule for ``order``, and its replacement at the full capacity when
        choosing it took one (``replacement=auto``; else None).

        Under ``auto`` each rule of :data:`AUTO_POLICIES` is simulated (milliseconds to a
        tenth of a second: only the packing is slow) and the one whose interval plan moves
        fewer bytes is kept (a tie: the first). Neither rule dominates: on 20 catalog
        workloads, both scopes, M_R and M_H, greedy with ``belady-fit`` alone moves fewer
        bytes than with ``belady`` on 14 of 80 cells (nasnet_a_mobile, all, M_H: 1.1 MB
        against 3.2 MB) and more on 12 (bert_base, activations, M_R: 44.0 MB against
        9.4 MB); ``auto`` is never above ``belady`` there and below it on the 14.
        """
        if self.replacement != AUTO_REPLACEMENT:
            return self.replacement, None
        best: tuple[int, str, Replacement] | None = None
        moved: dict[str, int] = {}
        touched, uses = steps
        for policy in AUTO_POLICIES:
            try:
                replacement = simulate(
                    problem, order, problem.capacity_bytes, policy, budget,
                    touched=touched, uses=uses,
                )  # fmt: skip
            except Stopped:
                break
            waste = evaluate(problem, replacement.plan(order)).non_compulsory_bytes
            moved[policy] = waste
            if best is None or waste < best[0]:
                best = (waste, policy, replacement)
        stats["replacement_bytes"] = moved
        if best is None:
            return AUTO_POLICIES[0], None
        return best[1], best[2]

    def _plan_with_retries(
        self,
        problem: Problem,
        order: Sequence[int],
        budget: Budget,
        stats: dict[str, Any],
        steps: tuple[list[tuple[int, ...]], list[list[int]]],
        policy: str,
        first: Replacement | None = None,
    ) -> tuple[Plan | None, Replacement, bool]:
        """Replace by ``policy`` and pack, shrinking the effective capacity while packing
        fails (``steps``: the op-touch and use steps :func:`simulate` takes; ``first``:
        the replacement at the full capacity, when already simulated).

        After a failure, the effective capacity drops by the overflow (doubling the cut
        on every further failure, never below M_R) until a replacement packs; the
        remaining tries bisect between that capacity and the last failing one for a
        larger one that still packs, keeping the plan with the least traffic.

        Returns ``(plan or None, its replacement, timed out)``.
        """
        capacity, floor = problem.capacity_bytes, problem.min_resident_bytes
        alignment = problem.alignment_bytes
        effective = capacity
        failing: int | None = None  # smallest effective capacity whose packing failed
        packing = 0  # largest effective capacity whose packing succeeded
        best: tuple[int, Plan, Replacement, int, str] | None = None  # waste first
        online: OnlinePlan | None = None  # the online passes, played at the first failure
        stats["fallback"] = "none"
        replacement = Replacement((), 0, 0, 0, 0)
        attempt, stopped = 0, False
        touched, uses = steps
        for attempt in range(self.max_retries + 1):
            try:
                if attempt == 0 and first is not None:
                    replacement = first
                else:
                    replacement = simulate(
                        problem, order, effective, policy, budget, touched=touched, uses=uses
                    )
            except Stopped:
                stopped = True
                break
            offsets, height, used = self._pack(problem, replacement.stays, budget)
            if offsets is not None:
                plan = replacement.plan(order, offsets)
                waste = evaluate(problem, plan).non_compulsory_bytes
                if best is None or waste < best[0]:
                    best = (waste, plan, replacement, effective, used)
                packing = max(packing, effective)
                if failing is None or waste == 0:
                    break
            else:
                failing = effective if failing is None else min(failing, effective)
                if attempt == 0:
                    # Cheap (0.3 s on 2,000 ops) and sometimes better than every retry
                    # (randwire_ws_large, act, MH: 114 MB against 131 MB); played first,
                    # so a budget that ends during the retries still has it.
                    try:
                        online = best_online(problem, order, policy, budget)
                    except Stopped:
                        stopped = True
                        break
            if best is None:
                if effective <= floor:
                    break
                overflow = max(height - capacity if height is not None else 0, alignment)
                effective = max(floor, (effective - (overflow << attempt)) // alignment * alignment)
            else:
                assert failing is not None
                effective = (packing + failing) // 2 // alignment * alignment
                if effective <= packing:
                    break
                if budget.should_stop():
                    stopped = True
                    break
        stats["retries"] = attempt
        if (
            best is None
            and not stopped
            and replacement.stays
            and self.allocator not in ("portfolio", "auto")
        ):
            # Last try on the last replacement: the portfolio often packs what one rule cannot.
            offsets, _, used = self._pack(problem, replacement.stays, budget, "portfolio")
            if offsets is not None:
                plan = replacement.plan(order, offsets)
                waste = evaluate(problem, plan).non_compulsory_bytes
                best = (waste, plan, replacement, effective, used)
                stats["fallback"] = "portfolio"
        if online is not None and (best is None or online.non_compulsory_bytes < best[0]):
            return self._take_online(online, order, stats), online.replacement, stopped
        if best is not None:
            _, plan, replacement, effective, used = best
            stats["effective_capacity_bytes"] = effective
            stats["allocator_used"] = used
            if effective < capacity and stats["fallback"] == "none":
                stats["fallback"] = "reduced-capacity"
            return plan, replacement, stopped
        return None, replacement, stopped or budget.should_stop()

    @staticmethod
    def _take_online(online: OnlinePlan, order: Sequence[int], stats: dict[str, Any]) -> Plan:
        """The online passes' plan, recorded in ``stats``."""
        stats["fallback"] = "online"
        stats["allocator_used"] = f"online {online.variant}"
        stats["online_flushes"] = online.compactions
        return Plan.make(order, online.residencies)

    def _pack(
        self,
        problem: Problem,
        stays: Sequence[Stay],
        budget: Budget,
        allocator: str | None = None,
    ) -> tuple[list[int] | None, int | None, str]:
        """Offsets of ``stays`` within the capacity (or None), the height, the allocator."""
        alignment = problem.alignment_bytes
        sizes = problem.aligned_sizes_bytes
        buffers = [
            Buffer(i, s.start, s.end, sizes[s.tensor], alignment) for i, s in enumerate(stays)
        ]
        time_limit_s = min(self.alloc_time_limit_s, budget.remaining_s())
        result = allocate(
            buffers,
            problem.capacity_bytes,
            algorithm=ALLOCATORS.get(allocator or self.allocator, allocator or self.allocator),
            budget=Budget(time_limit_s=time_limit_s, stop_event=budget.stop_event),
            minimize=False,
            seed=self.seed,
            node_limit=self.alloc_node_limit,
        )
        if result.fits and result.offsets_bytes is not None:
            return list(result.offsets_bytes), result.height_bytes, result.algorithm
        return None, result.height_bytes, result.algorithm


@dataclass(frozen=True)
class _GivenOrder(GreedySolver):
    """The greedy stack on one given order (its ``order`` option is not used)."""

    given: tuple[int, ...] = ()

    def orders(self, problem: Problem) -> dict[str, tuple[OpId, ...]]:
        return {"given": tuple(OpId(o) for o in self.given)}


def plan_given_order(
    problem: Problem,
    order: Sequence[int],
    budget: Budget,
    *,
    alloc_time_limit_s: float = 1.0,
    alloc_node_limit: int = 0,
) -> SolveResult:
    """The greedy stack (replacement, then allocation, with its fallbacks) on ``order``.

    For other solvers that choose an order themselves and want greedy's replacement and
    packing for it (dnc's order search, the mallocGame's reference plan).
    """
    solver = _GivenOrder(
        given=tuple(order),
        alloc_time_limit_s=alloc_time_limit_s,
        alloc_node_limit=alloc_node_limit,
    )
    return solver.solve(problem, budget)
