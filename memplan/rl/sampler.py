"""Seeded mallocGame instances for training: random DAGs and catalog workloads.

:class:`InstanceSampler` draws instances (:class:`memplan.solvers.rl.instances.Instance`)
for self-play and for the Gymnasium environment: random DAGs
(:func:`memplan.testing.random_dag`) and catalog workloads of the training families
(:data:`TRAIN_FAMILIES`), at budgets between M_R and the no-spill peak. The other
families (:data:`HELD_OUT_FAMILIES`) are for evaluation only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from memplan.accelerator import DEFAULT_PRESET, load_accelerator
from memplan.analysis import peak_live_bytes
from memplan.ir import Graph
from memplan.placement import Timeline
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.rl.instances import Instance, make_instance, online_bytes, resolve_order

#: Workload families the shipped agent trained on (random DAGs besides).
TRAIN_FAMILIES = ("nasnet", "amoebanet", "randwire", "inception", "resnet", "mobilenet", "vgg")
#: Families kept out of training, for the held-out evaluation.
HELD_OUT_FAMILIES = ("darts", "pnasnet", "densenet", "shufflenet", "unet", "bert", "vit")
#: Largest catalog workload (ops) the sampler draws: games on bigger ones are slow.
MAX_TRAIN_OPS = 260
#: Search nodes per exact-allocator try of an instance's greedy baseline, and the
#: seconds that only back it up. 80 sampled instances took 5.7 s in all (1.5 s the
#: slowest); 100,000 nodes missed a packing 0.5 s found on an idle machine.
BASELINE_ALLOC_NODES, BASELINE_ALLOC_S = 300_000, 30.0


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

    def sample(self, budget: Budget | None = None) -> Instance:
        """The next instance (never one without spills).

        Args:
            budget: bounds the greedy baseline's search (its time left, its stop flag);
                once it has run out the instance's baseline may be weaker than with time
                to spare, so the caller should not play it (training stops then).
        """
        while True:
            instance = self._draw(budget)
            if instance is not None:
                return instance

    def _draw(self, budget: Budget | None) -> Instance | None:
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
        # The baseline's allocator is bounded by search nodes, not seconds (0.5 s per try
        # gave another baseline, hence another reward, for the same seed under load);
        # the time limit is only a safety net.
        limit_s = BASELINE_ALLOC_S
        if budget is not None:
            limit_s = min(limit_s, budget.remaining_s())
        return make_instance(
            problem,
            timeline.order,
            name=name,
            baseline=self._baseline,
            baseline_time_limit_s=limit_s,
            alloc_time_limit_s=max(limit_s, 1e-3),
            stop_event=None if budget is None else budget.stop_event,
            alloc_node_limit=BASELINE_ALLOC_NODES,
            budget=budget,
        )
