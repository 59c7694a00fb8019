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

:class:`InstanceSampler` draws seeded instances for training: random DAGs
(:func:`memplan.testing.random_dag`) and catalog workloads of the training families
(:data:`TRAIN_FAMILIES`), at budgets between M_R and the no-spill peak. The other
families (:data:`HELD_OUT_FAMILIES`) are for evaluation only.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memplan.accelerator import DEFAULT_PRESET, load_accelerator
from memplan.analysis import NAMED_ORDERS, check_order, named_order, peak_live_bytes
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.ir import Graph, OpId
from memplan.placement import PlacementState, Timeline
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.greedy import GreedySolver
from memplan.solvers.replacement import run_belady
from memplan.solvers.rl.reference import Reference

#: Workload families the shipped agent trained on (random DAGs besides).
TRAIN_FAMILIES = ("nasnet", "amoebanet", "randwire", "inception", "resnet", "mobilenet", "vgg")
#: Families kept out of training, for the held-out evaluation.
HELD_OUT_FAMILIES = ("darts", "pnasnet", "densenet", "shufflenet", "unet", "bert", "vit")
#: Largest catalog workload (ops) the sampler draws: games on bigger ones are slow.
MAX_TRAIN_OPS = 260


@dataclass(frozen=True)
class _FixedOrderGreedy(GreedySolver):
    """The greedy stack on a given order (its own order option is ignored)."""

    fixed_order: tuple[int, ...] = dataclasses.field(
        default=(), metadata={"help": "the op order to use"}
    )

    def orders(self, problem: Problem) -> dict[str, tuple[OpId, ...]]:
        return {"given": tuple(OpId(o) for o in self.fixed_order)}


def greedy_plan(
    problem: Problem,
    order: Sequence[int],
    time_limit_s: float = 30.0,
    alloc_time_limit_s: float = 10.0,
) -> Plan:
    """The greedy stack's plan on ``order`` (Belady replacement, then the allocators).

    ``alloc_time_limit_s`` caps each exact-allocator try (greedy's own default is 10 s).
    """
    greedy = _FixedOrderGreedy(fixed_order=tuple(order), alloc_time_limit_s=alloc_time_limit_s)
    result = greedy.solve(problem, Budget(time_limit_s))
    assert result.plan is not None, result.message
    return result.plan


def online_bytes(problem: Problem, timeline: Timeline) -> int:
    """Non-compulsory bytes of the online Belady pass (lowest gap, compact when stuck)."""
    state = PlacementState(problem, timeline=timeline, undo=False)
    run_belady(state)
    return state.non_compulsory_bytes


@dataclass(frozen=True)
class Instance:
    """One game: a problem, its order, and the scores to measure the game by."""

    name: str  # a readable label (workload, budget, seed)
    problem: Problem  # graph, accelerator (capacity), scope
    timeline: Timeline  # the fixed order and what it implies
    baseline_bytes: int | None  # greedy stack's non-compulsory bytes on the order; None: skipped
    reference: Plan | None  # the greedy stack's plan on the order (None: skipped)
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
) -> Instance:
    """Build the instance of ``problem`` under ``order``.

    Args:
        problem: the problem; its capacity must be at least M_R.
        order: an order name or a topological order of op ids.
        name: a label (the graph's name by default).
        baseline: run the greedy stack (:attr:`Instance.baseline_bytes`, ``reference``).
        baseline_time_limit_s: the greedy stack's time limit.
        alloc_time_limit_s: the greedy stack's limit per exact-allocator try.

    Raises:
        ConfigError: the capacity is below M_R, or the order is unknown.
    """
    if problem.capacity_bytes < problem.min_resident_bytes:
        raise ConfigError(problem.describe_capacity_error())
    ops = resolve_order(problem, order)
    timeline = Timeline.of(problem, ops)
    scale = max(online_bytes(problem, timeline), problem.capacity_bytes, 1)
    reference = (
        greedy_plan(problem, ops, baseline_time_limit_s, alloc_time_limit_s) if baseline else None
    )
    greedy = None if reference is None else evaluate(problem, reference).non_compulsory_bytes
    return Instance(name or problem.graph.name, problem, timeline, greedy, reference, scale)


def catalog_graph(workload: str) -> Graph:
    """The graph of a catalog workload (generated or stored)."""
    from memplan.graphs.catalog import load_model
    from memplan.io.loading import load_model as import_model

    return import_model(load_model(workload)).graph


def catalog_workloads(families: Sequence[str], max_ops: int = MAX_TRAIN_OPS) -> list[str]:
    """Catalog workload names of ``families`` with at most ``max_ops`` ops, sorted."""
    from memplan.graphs.catalog import list_workloads

    return sorted(w.name for w in list_workloads() if w.family in families and w.ops <= max_ops)


class InstanceSampler:
    """Seeded training instances: random DAGs and catalog workloads, tight budgets.

    The capacity is drawn between M_R and M_R + 60 % of the way to the model order's
    no-spill peak, so most games must spill. Instances on which the online Belady pass
    does not spill at all are skipped (nothing to learn there).

    Args:
        seed: the sampler's seed (same seed, same instances).
        families: catalog families to draw from (empty: random DAGs only).
        dag_share: the fraction of instances that are random DAGs.
        baseline: run the greedy stack on each instance (for rewards).
        dag_ops: the range of ops of random DAGs.
    """

    def __init__(
        self,
        seed: int,
        families: Sequence[str] = TRAIN_FAMILIES,
        *,
        dag_share: float = 0.6,
        baseline: bool = True,
        dag_ops: tuple[int, int] = (16, 70),
    ) -> None:
        self._rng = random.Random(seed)
        self._workloads = catalog_workloads(families) if families else []
        self._dag_share = dag_share if self._workloads else 1.0
        self._baseline = baseline
        self._dag_ops = dag_ops
        self._graphs: dict[str, Graph] = {}
        self._accelerator = load_accelerator(DEFAULT_PRESET)

    def sample(self) -> Instance:
        """The next instance (never one without spills)."""
        while True:
            instance = self._draw()
            if instance is not None:
                return instance

    def _draw(self) -> Instance | None:
        from memplan.testing import random_dag

        rng = self._rng
        if rng.random() < self._dag_share:
            seed = rng.randrange(1 << 30)
            graph = random_dag(seed, rng.randint(*self._dag_ops))
            label = f"dag{seed}"
        else:
            label = rng.choice(self._workloads)
            if label not in self._graphs:
                self._graphs[label] = catalog_graph(label)
            graph = self._graphs[label]
        problem = Problem(graph, self._accelerator)
        low = problem.min_resident_bytes
        high = peak_live_bytes(
            graph, range(graph.num_ops), problem.aligned_sizes_bytes, problem.in_scope
        )
        align = problem.alignment_bytes
        capacity = int(low + rng.random() * 0.6 * max(high - low, 0)) // align * align
        problem = problem.with_capacity(max(capacity, low))
        order: Any = rng.choice(("model", "model", "min-peak"))
        timeline = Timeline.of(problem, resolve_order(problem, order))
        if online_bytes(problem, timeline) == 0:
            return None
        name = f"{label}@{problem.capacity_bytes}"
        return make_instance(
            problem, timeline.order, name=name, baseline=self._baseline, alloc_time_limit_s=0.5
        )
