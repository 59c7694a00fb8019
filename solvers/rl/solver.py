"""The ``rl`` solver: play the mallocGame with tree search guided by a trained network.

For a fixed order (the ``order`` option: one of greedy's named orders, or ``searched``,
the order :func:`memplan.solvers.order_search.search_order` finds from the best plan's
order so far within half that order's time; ``auto`` plays each of them in turn, sharing
the time, :data:`SEARCHED_WEIGHT` shares for ``searched``, and keeps the best), the
solver plays complete games
(PROBLEM.md section 9) on :class:`memplan.placement.PlacementState`, choosing every move
with :class:`~memplan.solvers.rl.search.GumbelSearch`, and keeps the game with the
least non-compulsory traffic. The first game picks by the network's prior and the
search (no noise); later games add Gumbel noise (seeded), so they differ.

The greedy stack's plan on the same order is computed first: it is the game's
*reference* (features mark the move that replays it; rollouts replay it where it
applies, see :mod:`~memplan.solvers.rl.reference`) and the plan kept when no game beats
it, so the result never has more traffic than greedy on the same order. A game cut
short by the time limit is finished by the default policy (replay, else online Belady).
``stats["game_bytes"]`` lists every game's own score per order (``stats["greedy_bytes"]``
the reference's; ``stats["game_complete"]`` whether the search played the whole game or
time cut it and default play finished it), so what the search found is visible apart
from that fallback.

``network=shipped`` uses the checkpoint inside the package (numpy inference; no torch
or gymnasium needed), a path uses another ``.npz`` checkpoint, and ``network=none``
searches without a network (uniform prior, random rollouts to the end): the baseline
that shows what the network is worth at the same budget. The ``rl-uniform`` solver is
this solver with ``network=none`` preset, so both run side by side in ``memplan bench``.

The status is FEASIBLE (a heuristic proves no bound), OPTIMAL with zero non-compulsory
traffic, TIMEOUT when time ran out (or Ctrl-C) before the ``episodes`` games were
played (the best plan so far is returned). The same seed and options give the same plan
unless a run was cut short; ``episodes=0`` plays until ``max_time_s`` (FEASIBLE, and
machine-dependent).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from memplan.analysis import NAMED_ORDERS, named_order
from memplan.errors import ConfigError
from memplan.options import check_choice, check_range, check_seed, seed_field
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget, SolveResult, Status, infeasible_below_mr, make_result
from memplan.solvers.order_search import search_order
from memplan.solvers.rl.instances import Instance, make_instance
from memplan.solvers.rl.network import SHIPPED_CHECKPOINT, Network
from memplan.solvers.rl.reference import default_move
from memplan.solvers.rl.search import play_episode, search_for

#: The ``order`` value that plays every order of :data:`AUTO_ORDERS` and keeps the best.
AUTO_ORDER = "auto"
#: The ``order`` value for the order the whole-order search finds.
SEARCHED_ORDER = "searched"
AUTO_ORDERS = (*NAMED_ORDERS, SEARCHED_ORDER)
#: Shares of the time ``auto`` gives the searched order (one for each named order): on
#: a fixed order the greedy stack is hard to beat (the ilp proves it optimal for its
#: order on the small catalog cells), so most of what a game can win lies in the order.
SEARCHED_WEIGHT = 3
#: Share of the searched order's time the search takes (its games get the rest).
SEARCH_SHARE = 0.5

#: Values of the ``network`` option besides a checkpoint path.
NETWORK_CHOICES = ("shipped", "none")


@dataclass(frozen=True)
class RlSolver:
    """Gumbel tree search on the mallocGame, guided by a policy/value network."""

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
            "help": "shipped (the checkpoint in the package) | none (uniform prior, random "
            "rollouts: the network-free baseline) | a path to an .npz checkpoint"
        },
    )
    simulations: int = field(
        default=16, metadata={"help": "search simulations per move (the search budget); >= 1"}
    )
    considered: int = field(
        default=8, metadata={"help": "moves the root considers (Gumbel top-k); >= 1"}
    )
    episodes: int = field(
        default=4,
        metadata={
            "help": "games to play (same seed, same plan); 0 = as many as max_time_s allows; >= 0"
        },
    )
    rollout_steps: int = field(
        default=16,
        metadata={
            "help": "game steps of default play (replay greedy's plan, else Belady) before a "
            "leaf's network value; 0 = the network's value alone; >= 0"
        },
    )
    max_time_s: float = field(
        default=60.0,
        metadata={"help": "seconds of search at most, even under a longer time limit; > 0"},
    )
    seed: int = seed_field("seed of the Gumbel noise and rollouts; same seed, same plan")

    def __post_init__(self) -> None:
        check_choice(self.name, "order", self.order, (*AUTO_ORDERS, AUTO_ORDER))
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

    def load_network(self) -> Network | None:
        """The network the ``network`` option names (None for ``none``)."""
        if self.network == "none":
            return None
        path = SHIPPED_CHECKPOINT if self.network == "shipped" else self.network
        return Network.load(path)

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Play games on each order until the budget or the episode count is spent."""
        refused = infeasible_below_mr(self, problem, budget)
        if refused is not None:
            return refused
        network = self.load_network()
        orders = AUTO_ORDERS if self.order == AUTO_ORDER else (self.order,)
        # Stop searching a little early: the last game is finished by default play and the
        # plan validated and scored within max_time_s. The budget's own limit: should_stop.
        deadline = budget.started_at_s + self.max_time_s * 0.98
        rng = np.random.default_rng(self.seed)
        best: tuple[int, Plan, str] | None = None
        stats: dict[str, Any] = {
            "order": self.order,
            "network": self.network,
            "games": 0,
            "complete_games": 0,
            "evaluations": 0,
            "greedy_bytes": {},
            "game_bytes": {},
            "game_complete": {},
        }
        cut_short = False
        for k, name in enumerate(orders):
            weights = [SEARCHED_WEIGHT if o == SEARCHED_ORDER else 1 for o in orders[k:]]
            share_s = max(deadline - time.monotonic(), 0.0) * weights[0] / sum(weights)
            order_deadline = time.monotonic() + share_s
            order: str | tuple[int, ...] = name
            if name == SEARCHED_ORDER:
                order, stats["search"] = self._searched_order(
                    problem, budget, None if best is None else best[1], share_s * SEARCH_SHARE
                )
                share_s = max(order_deadline - time.monotonic(), 0.0)
            instance = make_instance(
                problem,
                order,
                baseline_time_limit_s=max(min(share_s / 3, budget.remaining_s()), 1e-3),
                alloc_time_limit_s=max(min(10.0, share_s / 6), 1e-3),
            )
            assert instance.reference is not None and instance.baseline_bytes is not None
            stats["greedy_bytes"][name] = instance.baseline_bytes
            if best is None or instance.baseline_bytes < best[0]:
                best = (instance.baseline_bytes, instance.reference, f"greedy ({name} order)")

            def out_of_time(until: float = order_deadline) -> bool:
                return budget.should_stop() or time.monotonic() >= until

            history, found, stopped = self._play(instance, name, network, rng, out_of_time, stats)
            stats["game_bytes"][name] = history
            cut_short = cut_short or stopped
            if found is not None and found[0] < best[0]:
                best = (found[0], found[1], f"game {found[2]} ({name} order)")
            if budget.should_stop():
                cut_short = cut_short or k + 1 < len(orders)
                break
        assert best is not None
        stats["best_from"] = best[2]
        return self._result(problem, budget, best[1], best[0], cut_short, stats)

    def _searched_order(
        self, problem: Problem, budget: Budget, best: Plan | None, limit_s: float
    ) -> tuple[tuple[int, ...], dict[str, int]]:
        """The whole-order search's order, from the best plan's order (else the min-peak
        order), within ``limit_s`` seconds; and what the search did."""
        graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
        start = best.order if best is not None else named_order(graph, "min-peak", sizes, scope)
        limit = Budget(time_limit_s=limit_s, stop_event=budget.stop_event)
        found = search_order(problem, start, seed=self.seed, should_stop=limit.should_stop)
        return found.order, {
            "start_bytes": found.start_bytes,
            "belady_bytes": found.best_bytes,
            "moves": found.moves,
        }

    def _play(
        self,
        instance: Instance,
        name: str,
        network: Network | None,
        rng: np.random.Generator,
        out_of_time: Callable[[], bool],
        stats: dict[str, Any],
    ) -> tuple[list[int], tuple[int, Plan, int] | None, bool]:
        """Play up to ``episodes`` games on one instance (of the order ``name``).

        Returns:
            Each game's bytes, the best game (bytes, plan, number) if any, and whether
            time cut the games short.
        """
        history: list[int] = []
        best: tuple[int, Plan, int] | None = None
        target = instance.baseline_bytes
        while target != 0 and (self.episodes == 0 or len(history) < self.episodes):
            if out_of_time():
                return history, best, self.episodes > 0
            search = search_for(
                instance,
                network,
                simulations=self.simulations,
                considered=self.considered,
                rollout_steps=self.rollout_steps,
                rng=rng,
                noise=bool(history),
            )
            state = instance.new_state()
            finished = play_episode(state, search, should_stop=out_of_time)
            while not state.done:  # out of time: the default policy finishes the game
                state.apply(default_move(state, instance.guide))
            stats["evaluations"] += search.evaluations
            stats["games"] += 1
            stats["complete_games"] += finished
            history.append(state.non_compulsory_bytes)
            stats["game_complete"].setdefault(name, []).append(finished)
            if best is None or state.non_compulsory_bytes < best[0]:
                best = (state.non_compulsory_bytes, state.plan(), len(history))
            if not finished:
                return history, best, self.episodes > 0
        return history, best, False

    def _result(
        self,
        problem: Problem,
        budget: Budget,
        plan: Plan,
        best_bytes: int,
        cut_short: bool,
        stats: dict[str, Any],
    ) -> SolveResult:
        if best_bytes == 0:
            status, message = Status.OPTIMAL, "no non-compulsory traffic"
        elif cut_short:
            status = Status.TIMEOUT
            why = "interrupted" if budget.interrupted() else "the time ran out"
            message = (
                f"{why} after {stats['complete_games']} complete games "
                f"({self.episodes} per order); "
                f"returning the best plan so far (from {stats['best_from']})"
            )
        else:
            status, message = Status.FEASIBLE, ""
        # 0 bytes is a lower bound over every plan, and a plan with 0 meets it.
        bound = 0 if best_bytes == 0 else None
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
    """The ``rl`` solver without a network (uniform prior, random rollouts)."""

    name: ClassVar[str] = "rl-uniform"

    network: str = field(
        default="none",
        metadata={"help": "none (uniform prior, random rollouts) | shipped | an .npz path"},
    )
