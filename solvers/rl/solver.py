"""The ``rl`` solver: play the mallocGame with search guided by a trained network.

First, the greedy solver itself runs with all the time there is (its default, or this
solver's named order): its plan is the reference of its order and the floor, so ``rl``
is never worse than greedy at the same time limit. Then greedy's stack plans each other
order (the ``order`` option: one of greedy's named
orders, or ``searched``, the order :func:`memplan.solvers.order_search.search_order`
finds from the best plan's order so far; ``auto`` takes each of them, sharing the time,
:data:`SEARCHED_WEIGHT` shares for ``searched``). Each plan is its order's *reference*
(features mark the move that replays it; the default policy replays it where it
applies, in rollout passes with its evictions deferred until their space is needed, see
:mod:`~memplan.solvers.rl.reference`) and the plan kept when no game beats it, so the
result never has more traffic than greedy on the same order.

Then the solver plays games (PROBLEM.md section 9) on
:class:`memplan.placement.PlacementState`, on the orders whose reference is within
:data:`PLAY_WITHIN` of the best, best first, the time left shared among them:

- ``search=rollout`` (default): fortified rollout passes (:mod:`~.rollout`): at every
  move, the default move and ``alternatives`` others, picked by the network's prior,
  each valued by a rollout to the end of the game; the pass follows the best game it
  has seen, so it never ends above the plan it started from. Passes repeat from the
  best game; one that finds nothing doubles the alternatives of the next.
- ``search=gumbel``: complete games, every move chosen by
  :class:`~memplan.solvers.rl.search.GumbelSearch` (the first without noise, later ones
  with seeded Gumbel noise); a game cut short by the time limit is finished by the
  default policy.

Where Belady's stays of the searched order do not pack, greedy's plan of that order
loses most of what the search won; the game is played there too (its potential is
Belady's bytes: what a game that makes those choices fit could reach), beside
``searched-trail``, the packed stays of an earlier order of the search (see
:meth:`RlSolver._searched_candidates`).

``stats["game_bytes"]`` lists every game's (or pass's) own score per order
(``stats["reference_bytes"]`` the references' bytes; ``stats["game_complete"]`` whether the
search played it to the end or time cut it), so what the search found is visible apart
from the reference.

``network=shipped`` uses the checkpoint inside the package (numpy inference; no torch
or gymnasium needed), a path uses another ``.npz`` checkpoint, and ``network=none``
searches without a network (rollout: the alternatives drawn at random; gumbel: a
uniform prior and random rollouts to the end): the baseline that shows what the network
is worth at the same budget. The ``rl-uniform`` solver is
this solver with ``network=none`` preset, so both run side by side in ``memplan bench``.

Before any of this, the crowded-region lower bound of :mod:`memplan.traffic_bound` (a
bound over every plan; about 0.01-0.3 s on the light models) is computed within
:data:`BOUND_SHARE` of the time and reported: once a plan meets it, the solver stops,
proven optimal (light_shufflenet at MR, the small DARTS and PNASNet cells). With the
``ilp`` extra installed, the bound the ilp proves on the busiest part of the best
reference (:mod:`memplan.solvers.dnc.bound`) follows, within :data:`PART_BOUND_SHARE`
of the time left (light_densenet121 at M_H: greedy's plan proven optimal).

The status is OPTIMAL when the plan meets that bound (or moves nothing), FEASIBLE
otherwise, TIMEOUT when time ran out (or Ctrl-C) before the ``episodes`` games (passes)
were played (the best plan so far is returned). The same seed and options give the same plan
unless a run was cut short; ``episodes=0`` plays until ``max_time_s`` (FEASIBLE, and
machine-dependent), or with ``search=rollout`` until the search is exhausted (a pass
that tried every alternative at every move found nothing; another pass would replay
it), and Ctrl-C makes it TIMEOUT: the message says per order why the games stopped
(``stats["stopped_by"]``). The progress callback gets greedy's plans as they come, the
bound, each better reference and each better game.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from memplan.analysis import NAMED_ORDERS, named_order
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.fallback import plan_source
from memplan.options import check_choice, check_range, check_seed, seed_field, type_options
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import (
    Budget,
    Progress,
    SolveResult,
    Status,
    infeasible_below_mr,
    make_result,
)
from memplan.solvers.dnc.bound import ilp_part_bound
from memplan.solvers.order_search import Reordered, belady_score, search_order
from memplan.solvers.packing import TRAIL_PACK_S, pack_stays, pack_trail
from memplan.solvers.rl.features import NUM_ACTIONS
from memplan.solvers.rl.instances import Instance, make_instance, resolve_order
from memplan.solvers.rl.network import SHIPPED_CHECKPOINT, Network
from memplan.solvers.rl.reference import default_move
from memplan.solvers.rl.rollout import rollout_pass
from memplan.solvers.rl.search import play_episode, search_for
from memplan.traffic_bound import traffic_lower_bound

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

#: Share of the time the lower bound may take (it stops the games once a plan meets it).
BOUND_SHARE = 0.05
#: With the ilp extra installed: share of the time left after greedy's plans for the
#: bound of one part, and the ops in that part (dnc's default: 3 windows of 16 ops).
PART_BOUND_SHARE, PART_BOUND_OPS = 0.1, 48
#: Least seconds worth giving the part's bound once CP-SAT is imported (1 s before: the
#: import takes 0.3-0.7 s under load).
PART_BOUND_MIN_S = 0.2
#: Seconds the allocator may take to pack the searched order's Belady stays.
PACK_LIMIT_S = 2.0
#: When those stays do not pack: the search goes on at a capacity this share of the
#: real one lower each round, for at most this many rounds (dnc's rounds use 2 % too).
SLACK, SLACK_ROUNDS = 0.02, 4
#: Share of the time left the slack rounds may take (greedy's retries on the searched
#: order get the rest).
SLACK_ROUNDS_SHARE = 0.5
#: Orders whose greedy plan is at most this many times the best order's get games.
PLAY_WITHIN = 1.25
#: Values of the ``search`` option: fortified rollouts (the default) or Gumbel games.
ROLLOUT_SEARCH, GUMBEL_SEARCH = "rollout", "gumbel"

#: Values of the ``network`` option besides a checkpoint path.
NETWORK_CHOICES = ("shipped", "none")


@dataclass(frozen=True)
class Candidate:
    """An instance the solver may play, and how low a game on it might go."""

    name: str  # the order's name (``searched-trail``: an earlier order of the search's)
    instance: Instance  # its reference is the best plan known on the order
    #: The reference's bytes, or Belady's where its stays did not pack (what a game that
    #: makes them fit could reach): instances are played in this order.
    potential_bytes: int


@dataclass(frozen=True)
class RlSolver:
    """Search on the mallocGame (fortified rollouts or Gumbel tree search) guided by a
    policy/value network."""

    name: ClassVar[str] = "rl"

    order: str = field(
        default=AUTO_ORDER,
        metadata={
            "help": "operator order (fixed during a game): model | min-peak | dfs | bfs | "
            "rpo | searched (the whole-order search's, from the best order so far, in half "
            "its time) | auto (games on each of them, time shared; the best is kept: never "
            "more traffic than greedy's default, which plans the model and min-peak orders)"
        },
    )
    network: str = field(
        default="shipped",
        metadata={
            "help": "shipped (the checkpoint in the package) | none (the network-free "
            "baseline: random alternatives; gumbel: uniform prior, random rollouts) | a path "
            "to an .npz checkpoint"
        },
    )
    search: str = field(
        default=ROLLOUT_SEARCH,
        metadata={
            "help": "rollout (each game move: the default move and `alternatives` others the "
            "prior ranks first, each valued by a rollout to the end; the pass follows the "
            "best game) | gumbel (Gumbel tree search per move, `simulations` each, short "
            "rollouts plus the network's value)"
        },
    )
    alternatives: int = field(
        default=1,
        metadata={
            "help": "search=rollout: moves tried per game move besides the default one in the "
            "first pass, one rollout to the end each (the search budget; doubled after a pass "
            f"that finds nothing; network=none draws them at random); 1 .. {NUM_ACTIONS - 1}"
        },
    )
    simulations: int = field(
        default=16,
        metadata={"help": "search=gumbel: simulations per move (the search budget); >= 1"},
    )
    considered: int = field(
        default=8,
        metadata={"help": "search=gumbel: moves the root considers (Gumbel top-k); >= 1"},
    )
    episodes: int = field(
        default=4,
        metadata={
            "help": "games (gumbel) or passes (rollout) per order (same seed, same plan); "
            "0 = as many as max_time_s allows (rollout: fewer when the search is exhausted, "
            "a pass that tried every alternative at every move finding nothing; the message "
            "says so); >= 0"
        },
    )
    rollout_steps: int = field(
        default=16,
        metadata={
            "help": "search=gumbel: game steps of default play (replay greedy's plan, else "
            "Belady) before a leaf's network value; 0 = the network's value alone; >= 0"
        },
    )
    max_time_s: float = field(
        default=60.0,
        metadata={"help": "seconds of search at most, even under a longer time limit; > 0"},
    )
    seed: int = seed_field("seed of the Gumbel noise and rollouts; same seed, same plan")

    def __post_init__(self) -> None:
        type_options(self)
        check_choice(self.name, "order", self.order, (*AUTO_ORDERS, AUTO_ORDER))
        check_choice(self.name, "search", self.search, (ROLLOUT_SEARCH, GUMBEL_SEARCH))
        check_range(self.name, "alternatives", self.alternatives, 1, NUM_ACTIONS - 1)
        check_range(self.name, "simulations", self.simulations, 1)
        check_range(self.name, "considered", self.considered, 1)
        check_range(self.name, "episodes", self.episodes, 0)
        check_range(self.name, "rollout_steps", self.rollout_steps, 0)
        check_range(self.name, "max_time_s", self.max_time_s, 1e-3)
        check_seed(self.name, self.seed)
        if self.network not in NETWORK_CHOICES and not self.network.endswith(".npz"):
            raise ConfigError(
                f"{self.name!r}: option network={self.network!r} is not allowed; use one of "
                f"{', '.join(NETWORK_CHOICES)} or a path to an .npz checkpoint"
            )
        if self.network not in NETWORK_CHOICES:
            Network.load(self.network)  # a bad checkpoint fails now, before the model loads

    def load_network(self) -> Network | None:
        """The network the ``network`` option names (None for ``none``)."""
        if self.network == "none":
            return None
        path = SHIPPED_CHECKPOINT if self.network == "shipped" else self.network
        return Network.load(path)

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan each order with greedy's stack, then play on the best ones until the budget
        or the episode count is spent."""
        refused = infeasible_below_mr(self, problem, budget)
        if refused is not None:
            return refused
        network = self.load_network()
        # Stop searching a little early (at 98 % of max_time_s or of the budget's limit,
        # the shorter): the last game is finished and the plan validated and scored in time.
        limit_s = min(self.max_time_s, budget.time_limit_s or self.max_time_s)
        deadline = budget.started_at_s + limit_s * 0.98
        rng = np.random.default_rng(self.seed)
        stats: dict[str, Any] = {
            "order": self.order,
            "network": self.network,
            "search": self.search,
            "games": 0,
            "complete_games": 0,
            "evaluations": 0,
            "rollouts": 0,
            "reference_bytes": {},
            "same_order_as": {},
            "game_bytes": {},
            "game_complete": {},
        }
        # First of all (see _greedy_floor), on the budget itself (max_time_s may shorten it).
        floor = self._greedy_floor(problem, dataclasses.replace(budget, time_limit_s=limit_s))
        floor_bytes = None if floor is None else floor.potential_bytes
        if floor is not None:
            budget.report_progress(floor_bytes, None, f"greedy's plan ({floor.name} order)")
        target = self._lower_bound(problem, budget, deadline, stats)
        budget.report_progress(floor_bytes, target or None, "planning the orders")
        instances, best = self._instances(problem, budget, deadline, target, stats, floor)
        budget.report_progress(best[0], target or None, "reference plans made")
        if best[0] > target and not budget.should_stop():
            target = self._part_bound(problem, budget, deadline, best[1], target, stats)
            budget.report_progress(best[0], target or None, "playing the mallocGame")
        cut_short = SEARCHED_ORDER not in stats["reference_bytes"] and self.order == AUTO_ORDER
        if best[0] <= target:  # proven optimal (or no traffic): nothing to play for
            stats["best_from"] = best[2]
            return self._result(problem, budget, best[1], best[0], cut_short, stats)
        # Games improve greedy's plan of an order by a few percent, except where greedy's
        # allocator failed on stays that a game can make fit: an order whose potential
        # (see Candidate) is far above the best plan gets no time.
        playable = [
            (c.name, c.instance)
            for c in sorted(instances, key=lambda c: c.potential_bytes)
            if c.instance.baseline_bytes and c.potential_bytes <= PLAY_WITHIN * best[0]
        ]
        for k, (name, instance) in enumerate(playable):
            until = time.monotonic() + max(deadline - time.monotonic(), 0.0) / (len(playable) - k)

            def out_of_time(until: float = until) -> bool:
                return budget.should_stop() or time.monotonic() >= until

            def improved(moved: int, name: str = name, best_bytes: int = best[0]) -> None:
                if moved < best_bytes:  # each better game, as it is found
                    budget.report_progress(moved, target or None, f"a game on the {name} order")

            play = self._passes if self.search == ROLLOUT_SEARCH else self._games
            history, found, stopped = play(
                instance, name, network, rng, out_of_time, target, stats, improved
            )
            stats["game_bytes"][name] = history
            cut_short = cut_short or stopped
            if found is not None and found[0] < best[0]:
                best = (found[0], found[1], f"{self.search} {found[2]} ({name} order)")
                budget.report_progress(best[0], target or None, f"a game on the {name} order")
            if best[0] <= target:
                break
            if budget.should_stop():
                cut_short = cut_short or k + 1 < len(playable)
                break
        stats["best_from"] = best[2]
        return self._result(problem, budget, best[1], best[0], cut_short, stats)

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

    def _lower_bound(
        self, problem: Problem, budget: Budget, deadline: float, stats: dict[str, Any]
    ) -> int:
        """The crowded-region lower bound of :mod:`memplan.traffic_bound` (over all plans)
        within :data:`BOUND_SHARE` of the time, recorded in ``stats`` unless it is 0."""
        limit_s = BOUND_SHARE * max(deadline - time.monotonic(), 0.0)
        limit = Budget(time_limit_s=max(limit_s, 1e-3), stop_event=budget.stop_event)
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        order = named_order(problem.graph, "min-peak", sizes, scope)
        found = traffic_lower_bound(problem, order, should_stop=limit.should_stop)
        if found.bound_bytes > 0:
            stats["bound_bytes"], stats["bound_method"] = found.bound_bytes, found.method
        return found.bound_bytes

    def _part_bound(
        self,
        problem: Problem,
        budget: Budget,
        deadline: float,
        plan: Plan,
        bound: int,
        stats: dict[str, Any],
    ) -> int:
        """The larger of ``bound`` and what the ilp proves on the busiest
        :data:`PART_BOUND_OPS` steps of ``plan`` (:mod:`memplan.solvers.dnc.bound`: a
        bound over every plan of the whole graph), within :data:`PART_BOUND_SHARE` of the
        time; ``bound`` itself when the ilp extra is not installed. On light_densenet121
        at M_H it proves greedy's plan optimal in about 2 s (the crowded regions prove
        2.0 of its 5.6 MB)."""
        limit_s = PART_BOUND_SHARE * max(deadline - time.monotonic(), 0.0)
        # Importing CP-SAT and building the part's model come before its time limit counts.
        least_s = PART_BOUND_MIN_S if "ortools.sat.python.cp_model" in sys.modules else 1.0
        if limit_s < least_s:
            return bound  # (at a 0.1-s limit it ran until 0.46 s)
        limit = Budget(time_limit_s=limit_s, stop_event=budget.stop_event)
        try:
            found = ilp_part_bound(problem, plan, PART_BOUND_OPS, limit, self.seed)
        except ConfigError:  # no ilp extra: the crowded regions' bound stands
            return bound
        if found is None or found.bound_bytes <= bound:
            return bound
        stats["bound_bytes"] = found.bound_bytes
        stats["bound_method"] = f"{found.method} of the best order"
        return found.bound_bytes

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

    def _games(
        self,
        instance: Instance,
        name: str,
        network: Network | None,
        rng: np.random.Generator,
        out_of_time: Callable[[], bool],
        target: int,
        stats: dict[str, Any],
        on_better: Callable[[int], None] | None = None,
    ) -> tuple[list[int], tuple[int, Plan, int] | None, bool]:
        """Play up to ``episodes`` Gumbel-search games on one instance (of the order
        ``name``), until one meets ``target`` (a lower bound); ``on_better`` gets the
        bytes of each game better than the ones before. Why the games stopped is
        recorded in ``stats["stopped_by"][name]`` (see :func:`_stopped_by`).

        Returns:
            Each game's bytes, the best game (bytes, plan, number) if any, and whether
            time cut the games short.
        """
        history: list[int] = []
        best: tuple[int, Plan, int] | None = None
        _stopped_by(stats, name, "bound")
        while (instance.baseline_bytes or 0) > target and (best is None or best[0] > target):
            if self.episodes and len(history) >= self.episodes:
                _stopped_by(stats, name, "episodes")
                break
            if out_of_time():
                _stopped_by(stats, name, "time")
                return history, best, self.episodes > 0
            search = search_for(
                instance,
                network,
                simulations=self.simulations,
                considered=self.considered,
                rollout_steps=self.rollout_steps,
                rng=rng,
                noise=bool(history),
                should_stop=out_of_time,
            )
            state = instance.new_state()
            finished = play_episode(state, search, should_stop=out_of_time)
            while not state.done:  # out of time: the default policy finishes the game
                state.apply(default_move(state, instance.guide))
            stats["evaluations"] += search.evaluations
            _count_game(stats, name, finished)
            history.append(state.non_compulsory_bytes)
            if best is None or state.non_compulsory_bytes < best[0]:
                best = (state.non_compulsory_bytes, state.plan(), len(history))
                if on_better is not None:
                    on_better(best[0])
            if not finished:
                _stopped_by(stats, name, "time")
                return history, best, self.episodes > 0
        return history, best, False

    def _passes(
        self,
        instance: Instance,
        name: str,
        network: Network | None,
        rng: np.random.Generator,
        out_of_time: Callable[[], bool],
        target: int,
        stats: dict[str, Any],
        on_better: Callable[[int], None] | None = None,
    ) -> tuple[list[int], tuple[int, Plan, int] | None, bool]:
        """Fortified rollout passes (:mod:`.rollout`) on one instance, each from the best
        game so far, until ``episodes`` passes, the time is up, a game meets ``target`` (a
        lower bound), or a pass has tried every
        alternative at every move and found nothing (the search is exhausted: another
        pass would replay it, ``episodes=0`` included). A pass that finds nothing doubles
        the alternatives of the next (with a network, the same number would replay the
        same pass); the schedule is the same without a network, so both spend the same
        rollouts per move. ``on_better`` gets the bytes of each pass that improves;
        why the passes stopped is recorded in ``stats["stopped_by"][name]``.

        Returns:
            Each pass's bytes, the best game (bytes, plan, pass number) when a pass
            improved greedy's plan, and whether time cut the passes short.
        """
        assert instance.reference is not None and instance.baseline_bytes is not None
        history: list[int] = []
        best_bytes, best_plan, best_pass = instance.baseline_bytes, instance.reference, 0
        alternatives = self.alternatives
        _stopped_by(stats, name, "bound")
        while best_bytes > target:
            if self.episodes and len(history) >= self.episodes:
                _stopped_by(stats, name, "episodes")
                break
            if out_of_time():
                _stopped_by(stats, name, "time")
                return history, _found(best_bytes, best_plan, best_pass), self.episodes > 0
            found = rollout_pass(
                instance,
                best_plan,
                best_bytes,
                alternatives=alternatives,
                network=network,
                rng=rng,
                should_stop=out_of_time,
            )
            stats["rollouts"] += found.rollouts
            _count_game(stats, name, found.complete)
            history.append(found.best_bytes)
            if found.best_bytes < best_bytes:
                best_bytes, best_plan, best_pass = found.best_bytes, found.best_plan, len(history)
                if on_better is not None:
                    on_better(best_bytes)
            if not found.complete:
                _stopped_by(stats, name, "time")
                return history, _found(best_bytes, best_plan, best_pass), self.episodes > 0
            if found.improvements == 0:
                if alternatives >= NUM_ACTIONS - 1:
                    # Every alternative at every move: another pass would replay this one.
                    _stopped_by(stats, name, "exhausted")
                    break
                alternatives = min(2 * alternatives, NUM_ACTIONS - 1)
        return history, _found(best_bytes, best_plan, best_pass), False

    def _games_name(self) -> str:
        """What one game is called: a rollout pass or a gumbel game."""
        return "rollout passes" if self.search == ROLLOUT_SEARCH else f"{self.search} games"

    def _played(self, budget: Budget, stats: dict[str, Any]) -> str:
        """How many games were played and, per order, why they stopped (a run that
        ended early says so, and when)."""
        stopped_by: dict[str, str] = stats.get("stopped_by", {})
        games = f"{stats['games']} {self._games_name()}"
        if not stopped_by:
            return f"played no {self._games_name()}"
        if all(reason == "episodes" for reason in stopped_by.values()):
            return f"played {self.episodes} {self._games_name()} per order ({games})"
        groups: dict[str, list[str]] = {}
        for name, reason in stopped_by.items():
            groups.setdefault(reason, []).append(name)
        clauses = []
        for reason, names in groups.items():
            orders = f"the {', '.join(names)} order{'s' if len(names) > 1 else ''}"
            clauses.append(f"{orders}: {STOP_REASONS[reason].format(episodes=self.episodes)}")
        limit_s = min(self.max_time_s, budget.time_limit_s or self.max_time_s)
        return (
            f"played {games} in {budget.elapsed_s():.1f} s of {limit_s:g} s ({'; '.join(clauses)})"
        )

    def _result(
        self,
        problem: Problem,
        budget: Budget,
        plan: Plan,
        best_bytes: int,
        cut_short: bool,
        stats: dict[str, Any],
    ) -> SolveResult:
        bound = stats.get("bound_bytes")
        stopped_by: dict[str, str] = stats.get("stopped_by", {})
        if best_bytes == 0:
            status, message = Status.OPTIMAL, "no non-compulsory traffic"
        elif bound is not None and best_bytes <= bound:
            status = Status.OPTIMAL
            message = f"meets the lower bound ({stats['bound_method']})"
        elif cut_short or (budget.interrupted() and "time" in stopped_by.values()):
            # Ctrl-C ends a run before its end, episodes=0 included (which has no count
            # to fall short of: time running out is its normal end).
            status = Status.TIMEOUT
            why = "interrupted (Ctrl-C)" if budget.interrupted() else "the time ran out"
            per_order = f" of {self.episodes} per order" if self.episodes else ""
            message = (
                f"{why} at {budget.elapsed_s():.1f} s after {stats['complete_games']} "
                f"complete {self._games_name()}{per_order}; "
                f"returning the best plan so far (from {stats['best_from']})"
            )
        else:
            status = Status.FEASIBLE
            message = f"{self._played(budget, stats)}; the best plan is from {stats['best_from']}"
        # 0 bytes is a lower bound over every plan, and a plan with 0 meets it.
        bound = 0 if best_bytes == 0 else bound
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


#: Why the games (passes) on an order stopped, as ``stats["stopped_by"]`` records it.
STOP_REASONS = {
    "episodes": "all {episodes} played",
    "exhausted": "stopped early, the search is exhausted: a pass that tried every "
    "alternative at every move found nothing better, and another would replay it",
    "time": "until the time limit",
    "bound": "until a plan met the lower bound",
}


def _stopped_by(stats: dict[str, Any], name: str, reason: str) -> None:
    """Record why the games on the order ``name`` stopped (a key of :data:`STOP_REASONS`)."""
    stats.setdefault("stopped_by", {})[name] = reason


def _count_game(stats: dict[str, Any], name: str, complete: bool) -> None:
    """Count one game (or pass) on the order ``name``, and whether it ran to its end."""
    stats["games"] += 1
    stats["complete_games"] += complete
    stats["game_complete"].setdefault(name, []).append(complete)


def _found(best_bytes: int, plan: Plan, number: int) -> tuple[int, Plan, int] | None:
    """The best game as ``_passes`` reports it (None: no pass improved greedy's plan)."""
    return (best_bytes, plan, number) if number else None


@dataclass(frozen=True)
class UniformSearchSolver(RlSolver):
    """The ``rl`` solver without a network (random alternatives; for gumbel, a uniform
    prior and random rollouts)."""

    name: ClassVar[str] = "rl-uniform"

    network: str = field(
        default="none",
        metadata={
            "help": "none (random alternatives; gumbel: uniform prior, random rollouts) | "
            "shipped | an .npz path"
        },
    )
