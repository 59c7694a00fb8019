"""What the network is worth: the same games with and without it, at equal budget.

The ``rl`` solver returns the best of its games and its reference plans (greedy's stack
on each order), so on a cell where no game beats the reference its plan is the same with
or without the network. This module measures the searches themselves, on instances the
agent never trained on (:data:`memplan.rl.sampler.HELD_OUT_FAMILIES` by default): for
each (workload, scope, budget, order) where the game has a decision to make (the online
Belady pass spills), the same instance is played

- by the **greedy stack** on that order (the reference; the reward's baseline);
- by **Gumbel search** (:class:`~memplan.solvers.rl.search.GumbelSearch`, no noise) with
  the network's prior and value, and network-free (a uniform prior, random rollouts to
  the end of the game): the same simulations and considered moves per move;
- by **one fortified rollout pass** (:func:`~memplan.solvers.rl.rollout.rollout_pass`,
  the solver's default search) from the reference, its alternatives ranked by the
  network's prior, and drawn at random: the same number of alternatives per move.

Budgets are counted in simulations and rollouts, not seconds, so a slower evaluator does
not get less search (the seconds are reported too). Every game's plan passes the
validator before its bytes are reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.ir import Graph
from memplan.min_peak import cached_peak_provider
from memplan.placement import Timeline
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.solvers.rl.features import NUM_ACTIONS
from memplan.solvers.rl.instances import Instance, make_instance, online_bytes, resolve_order
from memplan.solvers.rl.network import Network
from memplan.solvers.rl.rollout import rollout_pass
from memplan.solvers.rl.search import MAX_SIMULATIONS, play_episode, search_for
from memplan.validate import check_plan

#: The searches compared, each played with the network and without it.
SEARCHES = ("gumbel", "rollout")


@dataclass(frozen=True)
class EvalConfig:
    """The budget of every game (equal with and without the network)."""

    simulations: int = 8  # Gumbel search: simulations per move
    considered: int = 4  # Gumbel search: moves sampled at the root
    rollout_steps: int = 16  # Gumbel with the network: default-policy steps before its value
    alternatives: int = 2  # rollout pass: moves tried per move besides the default one
    seed: int = 0  # the network-free searches' random draws

    def __post_init__(self) -> None:
        for name, most in (
            ("simulations", MAX_SIMULATIONS),
            ("considered", NUM_ACTIONS),
            ("alternatives", NUM_ACTIONS - 1),
        ):
            if not 1 <= getattr(self, name) <= most:
                raise ConfigError(f"--{name} must be 1 .. {most}, got {getattr(self, name)}")
        if self.rollout_steps < 0:
            raise ConfigError(f"--rollout-steps must be >= 0, got {self.rollout_steps}")


@dataclass(frozen=True)
class Game:
    """One game's result."""

    bytes: int  # non-compulsory bytes of its (validated) plan
    seconds: float  # wall-clock time it took


@dataclass(frozen=True)
class EvalRow:
    """One held-out cell: the reference and the four searches on the same instance."""

    workload: str
    scope: str
    budget: str
    order: str
    ops: int
    capacity_bytes: int
    greedy_bytes: int  # the greedy stack on this order (the reference)
    online_bytes: int  # the online Belady pass (the game's default without a reference)
    gumbel_network: Game
    gumbel_free: Game
    rollout_network: Game
    rollout_free: Game

    def game(self, search: str, network: bool) -> Game:
        """The game of ``search`` (``gumbel`` or ``rollout``) with or without the network."""
        game: Game = getattr(self, f"{search}_{'network' if network else 'free'}")
        return game

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready row."""
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    """A held-out game to play: where it comes from and its instance."""

    workload: str
    budget: str  # the budget as given (e.g. ``MH``)
    order: str  # the order's name
    instance: Instance
    online_bytes: int  # the online Belady pass's bytes (> 0: the game decides something)


def _never() -> bool:
    return False


def _checked_bytes(instance: Instance, plan: Plan, what: str) -> int:
    check_plan(instance.problem, plan, what)
    return evaluate(instance.problem, plan).non_compulsory_bytes


def play_gumbel(
    instance: Instance,
    network: Network | None,
    config: EvalConfig,
    label: str,
    should_stop: Callable[[], bool] = _never,
) -> Game | None:
    """A complete Gumbel game (no noise), with the network or network-free; None when
    ``should_stop`` cut it short."""
    started = time.perf_counter()
    state = instance.new_state()
    search = search_for(
        instance,
        network,
        simulations=config.simulations,
        considered=config.considered,
        rollout_steps=config.rollout_steps,
        rng=np.random.default_rng(config.seed),
        noise=False,
        should_stop=should_stop,
    )
    if not play_episode(state, search, should_stop=should_stop):
        return None
    plan = state.plan()
    return Game(_checked_bytes(instance, plan, label), time.perf_counter() - started)


def play_rollout(
    instance: Instance,
    network: Network | None,
    config: EvalConfig,
    label: str,
    should_stop: Callable[[], bool] = _never,
) -> Game | None:
    """One fortified rollout pass from the reference, alternatives by prior or at random;
    None when ``should_stop`` cut it short."""
    assert instance.reference is not None and instance.baseline_bytes is not None
    started = time.perf_counter()
    result = rollout_pass(
        instance,
        instance.reference,
        instance.baseline_bytes,
        alternatives=config.alternatives,
        network=network,
        rng=np.random.default_rng(config.seed),
        should_stop=should_stop,
    )
    if not result.complete:
        return None
    return Game(_checked_bytes(instance, result.best_plan, label), time.perf_counter() - started)


def cells(
    graphs: Sequence[tuple[str, Graph]],
    problem_of: Callable[[Graph, Scope], Problem],
    scopes: Sequence[Scope],
    budgets: Sequence[str],
    orders: Sequence[str],
    on_skip: Callable[[str], None] | None = None,
    on_quiet: Callable[[str, Scope, str, bool], None] | None = None,
) -> Iterator[Cell]:
    """Every cell where the game decides
    something (the online Belady pass spills). Budgets resolve as ``memplan optimize``
    resolves them (a cached proof of M_P, else the heuristic peak); a budget below M_R
    is skipped (``on_skip`` hears why), and ``on_quiet`` hears each (workload, scope,
    budget) where the pass spills on none of the orders, and whether that budget is
    M_R itself (the smallest a plan fits in: no smaller budget to try)."""
    for name, graph in graphs:
        for scope in scopes:
            base = problem_of(graph, scope)
            for budget in budgets:
                capacity = resolve_budget(budget, base, cached_peak_provider).capacity_bytes
                problem = base.with_capacity(capacity)
                if problem.capacity_bytes < problem.min_resident_bytes:
                    if on_skip is not None:
                        on_skip(
                            f"{name}/{scope.value}/{budget}: {problem.capacity_bytes:,} B is "
                            f"below M_R ({problem.min_resident_bytes:,} B): no plan exists"
                        )
                    continue
                spills = False
                for order in orders:
                    timeline = Timeline.of(problem, resolve_order(problem, order))
                    online = online_bytes(problem, timeline)
                    if online == 0:
                        continue
                    spills = True
                    label = f"{name}/{scope.value}/{budget}/{order}"
                    instance = make_instance(problem, timeline.order, name=label)
                    yield Cell(name, budget, order, instance, online)
                if not spills and on_quiet is not None:
                    at_mr = problem.capacity_bytes == problem.min_resident_bytes
                    on_quiet(name, scope, budget, at_mr)


def evaluate_cell(
    cell: Cell,
    network: Network,
    config: EvalConfig,
    should_stop: Callable[[], bool] = _never,
) -> EvalRow | None:
    """Play the four searches on ``cell`` and return its row (None when ``should_stop``
    cut a game short: a cell counts only with all four games)."""
    instance = cell.instance
    assert instance.baseline_bytes is not None
    label = instance.name
    games: list[Game] = []
    for play, net, what in (
        (play_gumbel, network, "gumbel game"),
        (play_gumbel, None, "network-free gumbel game"),
        (play_rollout, network, "rollout pass"),
        (play_rollout, None, "network-free rollout pass"),
    ):
        game = play(instance, net, config, f"{label}: {what}", should_stop)
        if game is None:
            return None
        games.append(game)
    return EvalRow(
        workload=cell.workload,
        scope=instance.problem.scope.value,
        budget=cell.budget,
        order=cell.order,
        ops=instance.problem.graph.num_ops,
        capacity_bytes=instance.problem.capacity_bytes,
        greedy_bytes=instance.baseline_bytes,
        online_bytes=cell.online_bytes,
        gumbel_network=games[0],
        gumbel_free=games[1],
        rollout_network=games[2],
        rollout_free=games[3],
    )


@dataclass(frozen=True)
class Tally:
    """How one search did with the network against without it, over the rows."""

    search: str
    better: int  # cells where the network's game moved fewer bytes
    equal: int
    worse: int
    below_greedy_network: int  # cells where the network's game is below the reference
    below_greedy_free: int
    median_seconds_network: float
    median_seconds_free: float


def tally(rows: Sequence[EvalRow]) -> list[Tally]:
    """Per search: network better / equal / worse than network-free, and below greedy."""
    tallies = []
    for search in SEARCHES:
        pairs = [(r.game(search, True), r.game(search, False), r.greedy_bytes) for r in rows]
        tallies.append(
            Tally(
                search=search,
                better=sum(n.bytes < f.bytes for n, f, _ in pairs),
                equal=sum(n.bytes == f.bytes for n, f, _ in pairs),
                worse=sum(n.bytes > f.bytes for n, f, _ in pairs),
                below_greedy_network=sum(n.bytes < g for n, _, g in pairs),
                below_greedy_free=sum(f.bytes < g for _, f, g in pairs),
                median_seconds_network=float(np.median([n.seconds for n, _, _ in pairs] or [0])),
                median_seconds_free=float(np.median([f.seconds for _, f, _ in pairs] or [0])),
            )
        )
    return tallies


__all__ = [
    "SEARCHES",
    "Cell",
    "EvalConfig",
    "EvalRow",
    "Game",
    "Tally",
    "cells",
    "evaluate_cell",
    "play_gumbel",
    "play_rollout",
    "tally",
]
