"""Plain helper functions shared by tests: seeded random graphs and ONNX light models.

Import them as ``from helpers import random_graph, light_model_path`` (pytest puts the
tests folder on ``sys.path``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from memplan.accelerator import Accelerator
from memplan.analysis import named_order
from memplan.ir import Graph, GraphBuilder, TensorId, TensorKind
from memplan.problem import Problem, Scope
from memplan.testing import tiny_spill_graph

#: The nine model-zoo graphs with ConstantOfShape weights that ship in the onnx wheel.
LIGHT_MODELS = (
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
)


def light_model_path(name: str) -> Path:
    """Path of ``onnx/backend/test/data/light/light_<name>.onnx`` in the installed onnx.

    ``name`` may be given with or without the ``light_`` prefix and ``.onnx`` suffix.
    """
    import onnx

    stem = name.removeprefix("light_").removesuffix(".onnx")
    folder = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    path = folder / f"light_{stem}.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is the onnx wheel complete?")
    return path


def random_graph(
    seed: int,
    n_ops: int,
    *,
    max_size_bytes: int = 4096,
    weight_prob: float = 0.4,
    two_output_prob: float = 0.15,
) -> Graph:
    """A seeded random DAG of ``n_ops`` ops (same seed and arguments, same graph).

    Each op reads one to three earlier tensors (mostly recent ones, sometimes a long
    skip), sometimes a weight, and writes one or two activations of random, often
    unaligned, sizes. The last op's outputs and a few random activations are graph
    outputs; some activations are never read.

    Args:
        seed: random seed.
        n_ops: number of ops (>= 1).
        max_size_bytes: largest tensor size in bytes.
        weight_prob: probability that an op reads a weight.
        two_output_prob: probability that an op writes two activations.
    """
    if n_ops < 1:
        raise ValueError("n_ops must be >= 1")
    rng = random.Random(seed)
    b = GraphBuilder(f"random-{seed}-{n_ops}")

    def size() -> int:
        return rng.randint(1, max_size_bytes)

    available: list[TensorId] = [
        b.tensor(f"in{i}", size(), TensorKind.INPUT) for i in range(rng.randint(1, 2))
    ]
    activations: list[TensorId] = []
    last_outputs: list[TensorId] = []
    for i in range(n_ops):
        fan_in = min(len(available), rng.choice((1, 1, 2, 2, 3)))
        chosen: list[TensorId] = []
        while len(chosen) < fan_in:
            if rng.random() < 0.75:
                pick = available[-1 - min(int(rng.expovariate(0.8)), len(available) - 1)]
            else:
                pick = rng.choice(available)
            if pick not in chosen:
                chosen.append(pick)
        if rng.random() < weight_prob:
            chosen.append(b.tensor(f"w{i}", size(), TensorKind.WEIGHT))
        n_out = 2 if rng.random() < two_output_prob else 1
        outputs = [b.tensor(f"t{i}_{k}", size()) for k in range(n_out)]
        b.op(f"op{i}", rng.choice(("Conv", "Add", "Relu", "MatMul")), chosen, outputs,
             macs=rng.randint(0, 10_000))  # fmt: skip
        available.extend(outputs)
        activations.extend(outputs)
        last_outputs = outputs
    for t in last_outputs:
        b.mark_output(t)
    for t in activations:
        if rng.random() < 0.05:
            b.mark_output(t)
    return b.build()


def greedy_case(seed: int, budget: str = "MR", n_ops: int = 18) -> tuple[Any, Any]:
    """A random graph at a tight budget (both scopes by seed parity) and greedy's plan for
    it: a valid plan with spills and reloads, for tests of cuts and parts.

    Returns:
        ``(problem, plan)``.
    """
    from memplan.accelerator import Accelerator
    from memplan.budgets import resolve_budget
    from memplan.problem import Problem, Scope
    from memplan.solver import Budget, make_solver

    scope = (Scope.ACTIVATIONS, Scope.ALL)[seed % 2]
    base = Problem(random_graph(seed, n_ops), Accelerator("t", 0, 64), scope)
    problem = base.with_capacity(resolve_budget(budget, base).capacity_bytes)
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=30)).plan
    assert plan is not None
    return problem, plan


def spill_case(seed: int) -> tuple[Problem, tuple[int, ...]]:
    """A random graph at a capacity between M_R and 2 M_R, and one of its named orders."""
    rng = random.Random(seed)
    graph = tiny_spill_graph(seed, rng.randint(4, 16))
    scope = (Scope.ACTIVATIONS, Scope.ALL)[seed % 2]
    problem = Problem(graph, Accelerator("t", 1 << 30, rng.choice([1, 64])), scope)
    low = problem.min_resident_bytes
    problem = problem.with_capacity(low + rng.randint(0, low))
    name = rng.choice(["model", "dfs", "rpo", "min-peak"])
    order = named_order(graph, name, problem.aligned_sizes_bytes, problem.in_scope)
    return problem, tuple(order)


def assert_only_floor_bound(result: Any) -> None:
    """An ilp result from a restricted model (a fixed order, ``max_loads``, a skipped
    search): its only bound is the crowded-region floor over all plans
    (``stats["floor_bytes"]``), never the restricted model's, and it is OPTIMAL only
    when its plan meets that floor."""
    from memplan.solver import Status

    floor = result.stats.get("floor_bytes")
    assert result.lower_bound_bytes in (None, floor), result.message
    if result.lower_bound_bytes is not None:
        assert 0 < result.lower_bound_bytes <= result.cost.non_compulsory_bytes
    if result.status is Status.OPTIMAL:
        assert result.lower_bound_bytes == floor == result.cost.non_compulsory_bytes
