"""The orders the ``rl`` solver plays on, each with its reference plan.

:class:`OrderPlanning` is the part of :class:`~memplan.solvers.rl.solver.RlSolver` that
makes them (it reads the solver's ``order`` and ``seed`` options):

- the *floor*: the greedy solver's own plan, run first on the solve's budget, so ``rl``
  is never worse than greedy at the same time limit (:meth:`OrderPlanning._greedy_floor`);
- greedy's stack on each named order of ``order`` (``auto``: all of them, and
  ``searched``), orders that coincide planned once (:meth:`OrderPlanning._instances`);
- the ``searched`` order (:func:`memplan.solvers.order_search.search_order`) with its
  Belady stays packed where they pack, else greedy's plan of it with Belady's bytes as its
  potential, beside ``searched-slack`` (the search again at a slightly lower capacity)
  and ``searched-trail`` (an earlier order of the search whose stays pack).

Each comes as a :class:`Candidate`: an :class:`~memplan.solvers.rl.instances.Instance`
whose reference is the best plan known on the order, and how low a game on it might go.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memplan.analysis import NAMED_ORDERS, named_order
from memplan.cost import evaluate
from memplan.fallback import plan_source
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget, Progress
from memplan.solvers.order_search import Reordered, belady_score, search_order
from memplan.solvers.packing import TRAIL_PACK_S, pack_stays, pack_trail
from memplan.solvers.rl.instances import Instance, make_instance, resolve_order

#: The ``order`` value that plays every order of :data:`AUTO_ORDERS` and keeps the best.
AUTO_ORDER = "auto"
#: The ``order`` value for the order the whole-order search finds.
SEARCHED_ORDER = "searched"
AUTO_ORDERS = (*NAMED_ORDERS, SEARCHED_ORDER)
#: Shares of the time ``auto`` gives the searched order (one for each named order): on
#: a fixed order the greedy stack is hard to beat (the ilp proves it optimal for its
#: order on the small catalog cells), so most of what a game can win lies in the order.
SEARCHED_WEIGHT = 3
#: Share of the searched order's time the search takes (its games get the rest), and
#: the least search time worth starting it with.
SEARCH_SHARE, SEARCH_MIN_S = 0.5, 0.3
#: Seconds the allocator may take to pack the searched order's Belady stays.
PACK_LIMIT_S = 2.0
#: When those stays do not pack: the search goes on at a capacity this share of the
#: real one lower each round, for at most this many rounds (dnc's rounds use 2 % too).
SLACK, SLACK_ROUNDS = 0.02, 4
#: Share of the time left the slack rounds may take (greedy's retries on the searched
#: order get the rest).
SLACK_ROUNDS_SHARE = 0.5


@dataclass(frozen=True)
class Candidate:
    """An instance the solver may play, and how low a game on it might go."""

    name: str  # the order's name (``searched-trail``: an earlier order of the search's)
    instance: Instance  # its reference is the best plan known on the order
    #: The reference's bytes, or Belady's where its stays did not pack (what a game that
    #: makes them fit could reach): instances are played in this order.
    potential_bytes: int


class OrderPlanning:
    """Plans the orders to play (a mixin of
    :class:`~memplan.solvers.rl.solver.RlSolver`, whose options it reads)."""

    order: str  # the ``order`` option: a named order, ``searched`` or ``auto``
    seed: int  # the ``seed`` option (the order search's and the packer's)

    def _instances(
        self,
        problem: Problem,
        budget: Budget,
        deadline: float,
        target: int,
        stats: dict[str, Any],
        floor: Candidate | None,
    ) -> tuple[list[Candidate], tuple[int, Plan, str]]:
        """The instances to play (greedy's stack plans each order) and the best plan among
        them (bytes, plan, where from); no further order once a plan meets ``target`` (a
        lower bound). Orders get time by weight (:data:`SEARCHED_WEIGHT` for
        ``searched``), a third of it for greedy's stack: the games come later."""
        orders = AUTO_ORDERS if self.order == AUTO_ORDER else (self.order,)
        candidates: list[Candidate] = []
        best: tuple[int, Plan, str] | None = None
        if floor is not None:
            assert floor.instance.baseline_bytes is not None and floor.instance.reference
            candidates.append(floor)
            stats["reference_bytes"][floor.name] = floor.instance.baseline_bytes
            reference = floor.instance.reference
            source = plan_source(problem, reference, "greedy", floor.name)
            best = (floor.potential_bytes, reference, source)
            if best[0] <= target:
                return candidates, best
        for k, name in enumerate(orders):
            if floor is not None and name == floor.name:
                continue  # greedy's own plan of this order is its reference
            if best is not None and (budget.should_stop() or time.monotonic() >= deadline):
                break  # no time for another order (at 0.1 s the searched one took 0.35 s)
            incumbent = None if best is None else best[0]
            budget.report_progress(incumbent, target or None, f"planning the {name} order")
            weights = [SEARCHED_WEIGHT if o == SEARCHED_ORDER else 1 for o in orders[k:]]
            share_s = max(deadline - time.monotonic(), 0.0) * weights[0] / sum(weights)
            limits = {
                "baseline_time_limit_s": max(min(share_s / 3, budget.remaining_s()), 1e-3),
                "alloc_time_limit_s": max(min(10.0, share_s / 6), 1e-3),
            }
            if name == SEARCHED_ORDER:
                if share_s * SEARCH_SHARE < SEARCH_MIN_S:
                    continue  # loading its kernels alone takes 0.3 s (0.1-s limit: 0.38 s)
                tied = [
                    c.instance.order
                    for c in candidates
                    if best is not None and c.instance.baseline_bytes == best[0]
                ]
                found = self._searched_order(problem, budget, tied, share_s * SEARCH_SHARE)
                # Greedy's retries on stays that do not pack each try the allocator: cap
                # them as for packing the stays (darts_v2_cifar at MH, 3.7 s a try: out of
                # time, 230.8 MB; 2 s a try: 11.2 MB).
                limits["alloc_time_limit_s"] = min(limits["alloc_time_limit_s"], PACK_LIMIT_S)
                added = self._searched_candidates(
                    problem,
                    deadline,
                    found,
                    limits,
                    stats,
                    slack=Budget(time_limit_s=share_s * SEARCH_SHARE, stop_event=budget.stop_event),
                )
            else:
                ops = resolve_order(problem, name)
                twin = next((c for c in candidates if c.instance.order == ops), None)
                if twin is not None:  # named orders often coincide (all five on densenet121)
                    stats["same_order_as"][name] = twin.name
                    stats["reference_bytes"][name] = twin.instance.baseline_bytes
                    continue
                instance = make_instance(
                    problem,
                    ops,
                    **limits,
                    stop_event=budget.stop_event,
                    budget=_until(deadline, budget.stop_event),
                )
                assert instance.baseline_bytes is not None
                added = [Candidate(name, instance, instance.baseline_bytes)]
            for candidate in added:
                moved, plan = candidate.instance.baseline_bytes, candidate.instance.reference
                assert moved is not None and plan is not None
                stats["reference_bytes"][candidate.name] = moved
                candidates.append(candidate)
                if best is None or moved < best[0]:
                    best = (moved, plan, f"reference ({candidate.name} order)")
                    message = f"greedy's stack on the {candidate.name} order"
                    budget.report_progress(moved, target or None, message)
            if budget.should_stop() or (best is not None and best[0] <= target):
                break
        assert best is not None
        return candidates, best

    def _greedy_floor(self, problem: Problem, budget: Budget) -> Candidate | None:
        """The greedy solver's own plan (``order=auto``, or this solver's named order), run
        before anything else on the same budget, as greedy alone has it: the floor that makes rl
        never worse than greedy at the same time limit, short limits included (at 1 s on a
        398-op graph every order's reference, planned in a share of the time, fell back
        to the online pass: 12x greedy's traffic). None if greedy found no plan."""
        from memplan.solver import make_solver

        order = self.order if self.order in NAMED_ORDERS else AUTO_ORDER
        greedy = make_solver("greedy", {"order": order})
        # The same start, limit and stop flag as greedy alone; its plans are rl's first
        # incumbents, so its progress is passed on (marked as greedy's).
        forward = budget.on_progress

        def on_progress(progress: Progress) -> None:
            if forward is not None:
                message = f"greedy: {progress.message}" if progress.message else "greedy"
                forward(dataclasses.replace(progress, message=message))

        result = greedy.solve(problem, dataclasses.replace(budget, on_progress=on_progress))
        if result.plan is None:
            return None
        name = str(result.stats.get("order", order))
        moved = evaluate(problem, result.plan).non_compulsory_bytes
        instance = make_instance(
            problem, result.plan.order, name=name, baseline=False, budget=budget
        )
        instance = dataclasses.replace(instance, reference=result.plan, baseline_bytes=moved)
        return Candidate(name, instance, moved)

    def _searched_order(
        self, problem: Problem, budget: Budget, best: Sequence[Sequence[int]], limit_s: float
    ) -> Reordered:
        """The whole-order search from the best plans' orders (else the min-peak order),
        within ``limit_s`` seconds. Of orders whose plans tie, it starts from the one with
        the lowest Belady score, the search's own (pnasnet5_large, M_H: the min-peak and
        dfs orders both plan at 37.39 MB; from dfs, Belady 37.39 MB, the search reaches
        31.36 MB, from min-peak, Belady 37.46 MB, 34.34 MB)."""
        graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
        if best:
            start = min(best, key=lambda order: belady_score(problem, order))
        else:
            start = named_order(graph, "min-peak", sizes, scope)
        limit = Budget(time_limit_s=limit_s, stop_event=budget.stop_event)
        return search_order(problem, start, seed=self.seed, should_stop=limit.should_stop)

    def _searched_candidates(
        self,
        problem: Problem,
        deadline: float,
        found: Reordered,
        limits: dict[str, float],
        stats: dict[str, Any],
        slack: Budget | None = None,
    ) -> list[Candidate]:
        """The searched order's instances: its own, one searched with slack, and an
        earlier order's of the trail.

        When Belady's stays of the order found pack as they are, they are the order's
        reference. When they do not, greedy's stack (run with ``limits``, see
        :func:`make_instance`) retries at a lower capacity and throws away much of what
        the search won (darts_v2_cifar, activations, MH: Belady 2.65 MB, greedy on the
        order 11.2 MB). A game from greedy's plan can make those choices fit (there, one
        rollout pass with the network: 3.54 MB; without it, four passes; from the online
        pass's plan, 11.0 MB, whose compactions leave no room to keep a tensor, nothing),
        so the order is played with its Belady bytes as its potential; the packed stays
        of an order searched again with a little slack (:meth:`_slack_rounds`, within the
        ``slack`` budget, if any; 2.65 MB there) come as ``searched-slack``, and those of
        the latest trail order that packs (:mod:`memplan.solvers.packing`; 2.95 MB there)
        as ``searched-trail``. The slack rounds come before greedy's stack: on large
        graphs greedy's retries take seconds (randwire_ws_regular, all, MH: 8 s) that
        the rounds put to better use.
        """
        stats["order_search"] = {
            "start_bytes": found.start_bytes,
            "belady_bytes": found.best_bytes,
            "moves": found.moves,
            "packed": False,
        }
        capacity = problem.capacity_bytes
        left_s = deadline - time.monotonic()
        stop_event = slack.stop_event if slack is not None else threading.Event()
        until = _until(deadline, stop_event)  # stops the online passes that scale features
        packed = None
        if left_s > 0 and not stop_event.is_set():
            packed = pack_stays(
                problem, found.order, capacity, min(PACK_LIMIT_S, left_s), self.seed
            )
        if packed is not None:
            stats["order_search"]["packed"] = True
            return [_packed_candidate(problem, SEARCHED_ORDER, packed, until)]
        # The rounds take at most half the time left: greedy's retries on the order are
        # the fallback when they pack nothing (randwire_ws_regular, all, MR, 30 s: rounds
        # that took it all left greedy no time, 117.2 MB, the dfs order's plan; greedy's
        # retries on the searched order give 78.1 MB).
        tighter = None
        if slack is not None:
            rounds_s = SLACK_ROUNDS_SHARE * max(deadline - time.monotonic(), 0.0)
            rounds = Budget(
                time_limit_s=min(slack.remaining_s(), rounds_s), stop_event=slack.stop_event
            )
            tighter = self._slack_rounds(problem, found, rounds)
        left_s = max(deadline - time.monotonic(), 1e-3)
        own_limits = {
            **limits,
            "baseline_time_limit_s": min(limits["baseline_time_limit_s"], left_s),
        }
        instance = make_instance(
            problem,
            found.order,
            **own_limits,
            stop_event=stop_event,
            budget=until,
        )
        assert instance.baseline_bytes is not None
        added = [
            Candidate(SEARCHED_ORDER, instance, min(found.best_bytes, instance.baseline_bytes))
        ]
        if tighter is not None:
            added.append(_packed_candidate(problem, f"{SEARCHED_ORDER}-slack", tighter, until))

        # Each try takes TRAIL_PACK_S at most: stop trying when one more would overrun.
        def out_of_time() -> bool:
            return stop_event.is_set() or time.monotonic() + TRAIL_PACK_S >= deadline

        earlier = pack_trail(problem, found, capacity, out_of_time, self.seed)
        if earlier is not None:
            added.append(_packed_candidate(problem, f"{SEARCHED_ORDER}-trail", earlier, until))
        return added

    def _slack_rounds(self, problem: Problem, found: Reordered, limit: Budget) -> Plan | None:
        """The order search again from the order found, at a capacity :data:`SLACK` of
        the real one lower each round (up to :data:`SLACK_ROUNDS`), until Belady's stays
        of the order it finds pack at the real capacity (their packed plan), within
        ``limit``; None when none packs. The search fills the capacity wherever it saves
        bytes, so its stays often do not pack; a little slack lets them (darts_v2_cifar,
        all, MH: Belady 2.65 MB, no packing; at 98 % of the capacity the same 2.65 MB
        packs, where greedy's plan of the order moves 9.29 MB). dnc's order rounds do the
        same.

        Where the capacity cannot drop (below M_R), a round searches again from the
        search's own start with another seed instead: an order that is already full stays
        full, but another run from the start often lands on an order as good whose stays
        pack (darts_v2_cifar_small, all, MR: Belady 256 KiB from every seed, packing for
        two seeds in six; greedy's plan of the unpacked ones moves 512 KiB)."""
        align = problem.alignment_bytes
        drop = max(int(SLACK * problem.capacity_bytes) // align * align, align)
        order, first = found.order, (found.trail[0][1] if found.trail else found.order)
        for k in range(1, SLACK_ROUNDS + 1):
            if limit.should_stop():
                return None
            search_capacity, start = problem.capacity_bytes - k * drop, order
            if search_capacity < problem.min_resident_bytes:
                search_capacity, start = problem.capacity_bytes, first
            again = search_order(
                problem.with_capacity(search_capacity),
                start,
                seed=self.seed + k,
                should_stop=limit.should_stop,
            )
            pack_s = min(PACK_LIMIT_S, max(limit.remaining_s(), 0.1))
            packed = pack_stays(problem, again.order, search_capacity, pack_s, self.seed)
            if packed is not None:
                return packed
            order = again.order
        return None


def _until(deadline: float, stop_event: threading.Event) -> Budget:
    """A budget that ends at ``deadline`` (``time.monotonic()``) or on ``stop_event``."""
    return Budget(time_limit_s=max(deadline - time.monotonic(), 1e-3), stop_event=stop_event)


def _packed_candidate(
    problem: Problem, name: str, plan: Plan, budget: Budget | None = None
) -> Candidate:
    """An instance on ``plan``'s order with ``plan`` (a packed plan) as its reference
    (``budget`` stops the online pass that scales its features)."""
    moved = evaluate(problem, plan).non_compulsory_bytes
    instance = make_instance(problem, plan.order, baseline=False, budget=budget)
    instance = dataclasses.replace(instance, reference=plan, baseline_bytes=moved)
    return Candidate(name, instance, moved)
