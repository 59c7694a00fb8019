"""The lower bounds ``dnc`` reports (phases 2 and 9 of :mod:`memplan.solvers.dnc.solver`):
crowded regions, one part solved on its own, the cut cover, and parts that own disjoint
tensors added. Each is proven where it is computed (:mod:`memplan.traffic_bound`,
:mod:`.bound`, :mod:`.cover`); the phase keeps the largest, and names its method in
``stats["bound_method"]``.

:class:`LowerBounds` is the part of :class:`~memplan.solvers.dnc.solver.DncSolver` that
runs them (it reads the solver's options).
"""

from __future__ import annotations

import itertools
from typing import Any

from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.schedule import PeakSchedule
from memplan.solver import Budget
from memplan.solvers.dnc.bound import additive_bound, part_bound, weights_streamed
from memplan.solvers.dnc.cover import cover_bound
from memplan.solvers.dnc.search import RunSettings, time_share
from memplan.traffic_bound import traffic_lower_bound

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


class LowerBounds:
    """The lower bounds on non-compulsory traffic (a mixin of
    :class:`~memplan.solvers.dnc.solver.DncSolver`, whose options it reads)."""

    window_ops: int
    workers: int
    seed: int

    def _bound(
        self, problem: Problem, budget: Budget, schedule: PeakSchedule, stats: dict[str, Any]
    ) -> int | None:
        """The traffic lower bound of :mod:`memplan.traffic_bound` (None when it is 0)."""
        share = Budget(time_limit_s=time_share(budget, BOUND_SHARE), stop_event=budget.stop_event)
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
            time_limit_s=time_share(budget, PART_BOUND_SHARE), stop_event=budget.stop_event
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
        share_s = time_share(budget, COVER_SHARE)
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
