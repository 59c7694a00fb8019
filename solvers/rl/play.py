"""How the ``rl`` solver plays the games on one order, and how it says why they stopped.

:class:`GamePlay` is the part of :class:`~memplan.solvers.rl.solver.RlSolver` that plays
(it reads the solver's search options):

- ``search=rollout``: fortified rollout passes (:func:`~memplan.solvers.rl.rollout.rollout_pass`)
  from the best game so far, the alternatives doubled after a pass that finds nothing,
  until the search is exhausted (:meth:`GamePlay._passes`);
- ``search=gumbel``: complete games with
  :class:`~memplan.solvers.rl.search.GumbelSearch` at every move, a game cut short by
  the time limit finished by the default policy (:meth:`GamePlay._games`).

Both stop after ``episodes`` games, at the time limit, or when a game meets the lower
bound; why is recorded per order in ``stats["stopped_by"]`` (a key of
:data:`STOP_REASONS`), and :meth:`GamePlay._played` puts it in words for the result's
message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from memplan.plan import Plan
from memplan.solver import Budget
from memplan.solvers.rl.features import NUM_ACTIONS
from memplan.solvers.rl.instances import Instance
from memplan.solvers.rl.network import Network
from memplan.solvers.rl.reference import default_move
from memplan.solvers.rl.rollout import rollout_pass
from memplan.solvers.rl.search import play_episode, search_for

#: Values of the ``search`` option: fortified rollouts (the default) or Gumbel games.
ROLLOUT_SEARCH, GUMBEL_SEARCH = "rollout", "gumbel"

#: Why the games (passes) on an order stopped, as ``stats["stopped_by"]`` records it.
STOP_REASONS = {
    "episodes": "all {episodes} played",
    "exhausted": "stopped early, the search is exhausted: a pass that tried every "
    "alternative at every move found nothing better, and another would replay it",
    "time": "until the time limit",
    "bound": "until a plan met the lower bound",
}


class GamePlay:
    """Plays the games on one instance (a mixin of
    :class:`~memplan.solvers.rl.solver.RlSolver`, whose options it reads)."""

    search: str  # the ``search`` option: ROLLOUT_SEARCH or GUMBEL_SEARCH
    alternatives: int  # search=rollout: moves tried besides the default one, first pass
    simulations: int  # search=gumbel: simulations per move
    considered: int  # search=gumbel: moves the root considers
    episodes: int  # games (passes) per order; 0 = until the time limit
    rollout_steps: int  # search=gumbel: default-play steps before a leaf's value
    max_time_s: float  # seconds of search at most

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
