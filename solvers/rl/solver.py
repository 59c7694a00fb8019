"""The ``rl`` solver: play the mallocGame with search guided by a trained network.

First, the greedy solver itself runs with all the time there is (its default, or this
solver's named order): its plan is the reference of its order and the floor, so ``rl``
is never worse than greedy at the same time limit. Then greedy's stack plans each other
order (the ``order`` option: one of greedy's named
orders, or ``searched``, the order :func:`memplan.solvers.order_search.search_order`
finds from the best plan's order so far; ``auto`` takes each of them, sharing the time,
:data:`~memplan.solvers.rl.orders.SEARCHED_WEIGHT` shares for ``searched``). Each plan
is its order's *reference* (features mark the move that replays it; the default policy
replays it where it applies, in rollout passes with its evictions deferred until their
space is needed, see :mod:`~memplan.solvers.rl.reference`) and the plan kept when no
game beats it, so the result never has more traffic than greedy on the same order.

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
:mod:`~memplan.solvers.rl.orders`).

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

This module holds the plug-in (its options, their checks, the solve's phases, the
bounds and the result's status); the orders and their references are made in
:mod:`~memplan.solvers.rl.orders`, and the games are played (and why they stopped is
worded) in :mod:`~memplan.solvers.rl.play`: :class:`RlSolver` takes both as mixins.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from memplan.analysis import named_order
from memplan.errors import ConfigError
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
from memplan.solvers.dnc.bound import ilp_part_bound
from memplan.solvers.latency import objective_field, solve_for_latency
from memplan.solvers.rl.features import NUM_ACTIONS
from memplan.solvers.rl.network import SHIPPED_CHECKPOINT, Network
from memplan.solvers.rl.orders import (
    AUTO_ORDER,
    AUTO_ORDERS,
    SEARCHED_ORDER,
    OrderPlanning,
)
from memplan.solvers.rl.play import (
    GUMBEL_SEARCH,
    ROLLOUT_SEARCH,
    GamePlay,
)
from memplan.timing import OBJECTIVE_LATENCY, OBJECTIVES
from memplan.traffic_bound import traffic_lower_bound

#: Share of the time the lower bound may take (it stops the games once a plan meets it).
BOUND_SHARE = 0.05
#: With the ilp extra installed: share of the time left after greedy's plans for the
#: bound of one part, and the ops in that part (dnc's default: 3 windows of 16 ops).
PART_BOUND_SHARE, PART_BOUND_OPS = 0.1, 48
#: Least seconds worth giving the part's bound once CP-SAT is imported (1 s before: the
#: import takes 0.3-0.7 s under load).
PART_BOUND_MIN_S = 0.2
#: Orders whose greedy plan is at most this many times the best order's get games.
PLAY_WITHIN = 1.25

#: Values of the ``network`` option besides a checkpoint path.
NETWORK_CHOICES = ("shipped", "none")


@dataclass(frozen=True)
class RlSolver(OrderPlanning, GamePlay):
    """Search on the mallocGame (fortified rollouts or Gumbel tree search) guided by a
    policy/value network."""

    name: ClassVar[str] = "rl"
    capabilities: ClassVar[frozenset[str]] = frozenset({OBJECTIVE_LATENCY})

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
    objective: str = objective_field()

    def __post_init__(self) -> None:
        type_options(self)
        check_choice(self.name, "objective", self.objective, OBJECTIVES)
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

    @stops_on_ctrl_c
    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan each order with greedy's stack, then play on the best ones until the budget
        or the episode count is spent."""
        if self.objective == "latency":
            return solve_for_latency(self, problem, budget)
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
