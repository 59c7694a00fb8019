"""mallocGame instances: a problem, a fixed order, and the scores to measure a game by.

An :class:`Instance` is what one game is played on. Its order comes from a name
(``model``, ``min-peak``, ``dfs``, ``bfs``: the orders greedy offers) or is given. Two
scores come with it:

- ``baseline_bytes``: the greedy stack (Belady replacement, then the allocator
  portfolio and exact search) on the same order; the environment's reward says how
  far below it a game ended. Its plan is kept as the instance's ``reference``: the
  features mark the move that replays it (:mod:`~memplan.solvers.rl.reference`);
- ``scale_bytes``: the traffic that counts as 1.0 inside features and values, so that
  one network reads instances of any size: the online Belady pass's score (cheap, always
  available at inference) or the capacity, whichever is larger.

The seeded training sampler lives above the solvers, in :mod:`memplan.rl.sampler`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from memplan.analysis import NAMED_ORDERS, check_order, named_order
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.ir import OpId
from memplan.placement import PlacementState, Timeline
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.greedy import plan_given_order
from memplan.solvers.replacement import Stopped, run_belady
from memplan.solvers.rl.reference import Reference


def greedy_plan(
    problem: Problem,
    order: Sequence[int],
    time_limit_s: float = 30.0,
    alloc_time_limit_s: float = 10.0,
    stop_event: threading.Event | None = None,
    alloc_node_limit: int = 0,
) -> Plan:
    """The greedy stack's plan on ``order`` (Belady replacement, then the allocators).

    ``alloc_time_limit_s`` caps each exact-allocator try (greedy's own default is 1 s);
    ``stop_event`` (Ctrl-C) ends it early with its best plan so far; ``alloc_node_limit``
    bounds each try by search nodes as well (0: no node limit).
    """
    budget = Budget(time_limit_s, stop_event=stop_event or threading.Event())
    result = plan_given_order(
        problem,
        order,
        budget,
        alloc_time_limit_s=alloc_time_limit_s,
        alloc_node_limit=alloc_node_limit,
    )
    assert result.plan is not None, result.message
    return result.plan


def online_bytes(problem: Problem, timeline: Timeline, budget: Budget | None = None) -> int:
    """Non-compulsory bytes of the online Belady pass (lowest gap, compact when stuck).

    Raises:
        Stopped: ``budget`` ran out first.
    """
    state = PlacementState(problem, timeline=timeline, undo=False)
    run_belady(state, budget=budget)
    return state.non_compulsory_bytes


@dataclass(frozen=True)
class Instance:
    """One game: a problem, its order, and the scores to measure the game by."""

    name: str  # a readable label (workload, budget, seed)
    problem: Problem  # graph, accelerator (capacity), scope
    timeline: Timeline  # the fixed order and what it implies
    baseline_bytes: int | None  # the reference's non-compulsory bytes; None: skipped
    reference: Plan | None  # greedy's plan on the order, or a better one (None: skipped)
    scale_bytes: int  # traffic that counts as 1.0 in features and values

    @functools.cached_property
    def guide(self) -> Reference | None:
        """The reference plan, ready to suggest moves (None without one)."""
        return None if self.reference is None else Reference(self.reference)

    @property
    def order(self) -> tuple[OpId, ...]:
        """The fixed op order."""
        return self.timeline.order

    def new_state(self, undo: bool = True) -> PlacementState:
        """A fresh game state at step 0."""
        return PlacementState(self.problem, timeline=self.timeline, undo=undo)


def resolve_order(problem: Problem, order: str | Sequence[int]) -> tuple[OpId, ...]:
    """An order by name (``model``, ``min-peak``, ``dfs``, ``bfs``) or checked as given."""
    if isinstance(order, str):
        if order not in NAMED_ORDERS:
            raise ConfigError(f"unknown order {order!r}; use one of {', '.join(NAMED_ORDERS)}")
        return named_order(problem.graph, order, problem.aligned_sizes_bytes, problem.in_scope)
    check_order(problem.graph, order)
    return tuple(OpId(int(o)) for o in order)


def make_instance(
    problem: Problem,
    order: str | Sequence[int] = "model",
    *,
    name: str | None = None,
    baseline: bool = True,
    baseline_time_limit_s: float = 30.0,
    alloc_time_limit_s: float = 10.0,
    stop_event: threading.Event | None = None,
    alloc_node_limit: int = 0,
    budget: Budget | None = None,
) -> Instance:
    """Build the instance of ``problem`` under ``order``.

    Args:
        problem: the problem; its capacity must be at least M_R.
        order: an order name or a topological order of op ids.
        name: a label (the graph's name by default).
        baseline: run the greedy stack (:attr:`Instance.baseline_bytes`, ``reference``).
        baseline_time_limit_s: the greedy stack's time limit.
        alloc_time_limit_s: the greedy stack's limit per exact-allocator try.
        stop_event: set on Ctrl-C: the greedy stack returns its best plan so far.
        alloc_node_limit: search nodes per exact-allocator try (0: none); with time limits
            that do not bind, the baseline is then the same under any load.
        budget: stops the online pass that sets the features' scale (then the capacity
            is the scale: a solve out of time plays no game): on one input read by
            10,000 ops that pass took 26 s.

    Raises:
        ConfigError: the capacity is below M_R, or the order is unknown.
    """
    if problem.capacity_bytes < problem.min_resident_bytes:
        raise ConfigError(problem.describe_capacity_error())
    ops = resolve_order(problem, order)
    timeline = Timeline.of(problem, ops)
    try:
        online = online_bytes(problem, timeline, budget)
    except Stopped:
        online = 0
    scale = max(online, problem.capacity_bytes, 1)
    reference = (
        greedy_plan(
            problem, ops, baseline_time_limit_s, alloc_time_limit_s, stop_event, alloc_node_limit
        )
        if baseline
        else None
    )
    greedy = None if reference is None else evaluate(problem, reference).non_compulsory_bytes
    return Instance(name or problem.graph.name, problem, timeline, greedy, reference, scale)
