"""Where ``dnc`` starts (phase 1 of :mod:`memplan.solvers.dnc.solver`): the min-peak order,
a no-spill packing of it when its peak fits, else greedy's plans on several orders.

:class:`StartingPlans` is the part of :class:`~memplan.solvers.dnc.solver.DncSolver` that
makes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from memplan.analysis import (
    default_min_peak_schedule,
    min_peak_order,
    peak_live_bytes,
    tensor_lifetimes,
)
from memplan.dsa import Buffer, allocate
from memplan.errors import MemplanError
from memplan.fallback import plan_source, spill_everything_plan
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem
from memplan.schedule import PeakSchedule
from memplan.solver import Budget
from memplan.solvers.dnc.search import constant_bytes, time_share, traffic_bytes

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


class StartingPlans:
    """The low-peak order and the starting plans (a mixin of
    :class:`~memplan.solvers.dnc.solver.DncSolver`)."""

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
        limit = Budget(time_limit_s=time_share(budget, share), stop_event=budget.stop_event)
        schedule = default_min_peak_schedule(graph, sizes, scope, should_stop=limit.should_stop)
        stats["min_peak_bytes"] = schedule.peak_bytes
        stats["min_peak_proven"] = schedule.proven
        return schedule

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


def budget_total(budget: Budget) -> float:
    """The budget's whole time in seconds (infinity without a limit)."""
    return budget.time_limit_s if budget.time_limit_s is not None else float("inf")
