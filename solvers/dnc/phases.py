"""The improving phases of ``dnc``: the order search, the windows without offsets, and the
windows (LNS) with the order search again when they stall (phases 3, 4, 7 and 8 of
:mod:`memplan.solvers.dnc.solver`).

:class:`SearchPhases` is the part of :class:`~memplan.solvers.dnc.solver.DncSolver` that
runs them (it reads the solver's options); each takes the best plan so far and returns a
plan at least as good, within the budget it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.dnc.search import (
    Report,
    RunSettings,
    SearchStats,
    WindowProgress,
    constant_bytes,
    improve_windows,
    time_share,
    traffic_bytes,
    without_offsets,
)
from memplan.solvers.dnc.starts import MIN_PLAN_S, PACK_MAX_S
from memplan.solvers.greedy import plan_given_order
from memplan.solvers.online import online_plan
from memplan.solvers.order_search import search_order
from memplan.solvers.packing import TRAIL_PACK_S, latest_packed, pack, pack_stays, pack_trail
from memplan.solvers.replacement import simulate

#: Share of the time left greedy's stack may take to plan a round's order.
PLAN_SHARE = 0.8
#: Rounds of the order search, and the share of the capacity the search capacity drops
#: by after a round whose stays did not pack.
REORDER_ROUNDS, REORDER_SLACK = 6, 0.02
#: Share of the order search's time (of its phase's part for searching) that one round
#: may take while it still improves, when its own part (a third at most) is spent: on
#: graphs of 1,000+ ops a round is far from converged when its part is up.
ROUND_MAX_SHARE = 0.75
#: Share of the time left that a round of the order search takes after the windows
#: stall (the rest packs or plans the order it finds).
LATE_SEARCH_SHARE = 0.8


class SearchPhases:
    """The improving phases (a mixin of :class:`~memplan.solvers.dnc.solver.DncSolver`,
    whose options it reads)."""

    window_ops: int
    max_windows: int
    max_moves: int
    interval_share: float
    stall_share: float
    seed: int

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
            stall_s = time_share(budget, self.stall_share) if may_yield else None
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
            time_limit_s=time_share(budget, self.interval_share), stop_event=budget.stop_event
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
