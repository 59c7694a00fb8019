"""Wall times of the core checks and of the greedy baseline.

1. The validator and the cost model on a plan of >= 100,000 residencies: a long random
   network-like graph planned by the greedy at a tight capacity (many spills).
2. ``greedy`` on ``light_densenet121`` at M_R, M_H and M_P (activations scope).
3. With ``--light``: ``greedy`` on the nine light models at MR, MH, MP, 512KiB and 2MiB,
   every plan validated, as a Markdown table.

Targets: under 2 s for each figure of 1 and 2.

Run: ``python bench/bench_core.py [--residencies 100000] [--light]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "solvers"))
sys.path.insert(0, str(HERE.parent / "tests"))

from memplan.accelerator import Accelerator  # noqa: E402
from memplan.budgets import resolve_budget  # noqa: E402
from memplan.cost import evaluate  # noqa: E402
from memplan.problem import Problem, Scope  # noqa: E402
from memplan.solver import Budget, make_solver  # noqa: E402
from memplan.units import format_bytes  # noqa: E402
from memplan.validate import validate  # noqa: E402

BUDGETS = ("MR", "MH", "MP", "512KiB", "2MiB")


def bench_validator(target_residencies: int) -> None:
    """Validator and cost model on a big greedy plan."""
    from memplan.testing.graphs import random_dag as random_graph

    n_ops = max(10, target_residencies // 3)
    while True:
        graph = random_graph(7, n_ops, max_size_bytes=4096)
        problem = Problem(graph, Accelerator("bench", 0), Scope.ALL)
        problem = problem.with_capacity(resolve_budget("MR", problem).capacity_bytes * 2)
        start = time.perf_counter()
        result = make_solver("greedy").solve(problem, Budget())
        solve_s = time.perf_counter() - start
        assert result.plan is not None
        if len(result.plan.residencies) >= target_residencies:
            break
        n_ops = int(n_ops * target_residencies / len(result.plan.residencies)) + 100
    plan = result.plan
    print(
        f"plan: {graph.num_ops} ops, {graph.num_tensors} tensors, "
        f"{len(plan.residencies)} residencies (greedy {solve_s:.2f} s, "
        f"fallback {result.stats['fallback']}, {result.stats['evictions']} evictions)"
    )
    for _ in range(3):  # best of three: the machine may be shared
        wall, cpu = time.perf_counter(), time.process_time()
        violations = validate(problem, plan)
        validate_s, validate_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        cost = evaluate(problem, plan)
        cost_s, cost_cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert not violations
        print(
            f"validate: {validate_s:.3f} s wall ({validate_cpu:.3f} s cpu)   "
            f"cost: {cost_s:.3f} s wall ({cost_cpu:.3f} s cpu)   "
            f"total {validate_s + cost_s:.3f} s wall"
        )
    print(f"  non-compulsory {format_bytes(cost.non_compulsory_bytes)}")


def light_path(name: str) -> Path:
    """Path of a light model in the installed onnx wheel."""
    from helpers import light_model_path

    return light_model_path(name)


def bench_densenet() -> None:
    """The greedy baseline on light_densenet121 at the paper budgets."""
    from memplan.onnx.importer import import_model

    graph = import_model(light_path("densenet121")).graph
    base = Problem(graph, Accelerator("edge", 0), Scope.ACTIVATIONS)
    make_solver("greedy").solve(base.with_capacity(1 << 30), Budget())  # warm the JIT caches
    print(f"light_densenet121: {graph.num_ops} ops, {graph.num_tensors} tensors")
    for spec in ("MR", "MH", "MP"):
        problem = base.with_capacity(resolve_budget(spec, base).capacity_bytes)
        start, cpu = time.perf_counter(), time.process_time()
        result = make_solver("greedy").solve(problem, Budget())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert result.cost is not None
        print(
            f"  {spec}: capacity {format_bytes(problem.capacity_bytes)}, greedy {wall:.3f} s "
            f"wall ({cpu:.3f} s cpu), "
            f"non-compulsory {format_bytes(result.cost.non_compulsory_bytes)}, "
            f"{result.status.value}, fallback {result.stats['fallback']}"
        )


def bench_light_table(options: dict[str, str], dtype_bytes: int, scope: Scope) -> None:
    """Markdown table: greedy on the nine light models at five budgets."""
    from helpers import LIGHT_MODELS

    from memplan.onnx.importer import import_model

    print(
        f"\ngreedy {options or '(defaults)'} on the light models, {dtype_bytes}-byte "
        f"elements, scope {scope.value}"
    )
    print("| model | budget | capacity | non-compulsory | peak | status | fallback | wall s |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    for name in LIGHT_MODELS:
        graph = import_model(light_path(name), dtype_bytes=dtype_bytes).graph
        base = Problem(graph, Accelerator("edge", 0), scope)
        for spec in BUDGETS:
            problem = base.with_capacity(resolve_budget(spec, base).capacity_bytes)
            start = time.perf_counter()
            result = make_solver("greedy", options).solve(problem, Budget())
            wall = time.perf_counter() - start
            if result.plan is None:
                print(
                    f"| {name} | {spec} | {format_bytes(problem.capacity_bytes)} | - | - | "
                    f"{result.status.value} (M_R {format_bytes(problem.min_resident_bytes)}) "
                    f"| - | {wall:.2f} |"
                )
                continue
            assert not validate(problem, result.plan)
            assert result.cost is not None
            print(
                f"| {name} | {spec} | {format_bytes(problem.capacity_bytes)} | "
                f"{format_bytes(result.cost.non_compulsory_bytes)} | "
                f"{format_bytes(result.cost.peak_bytes)} | {result.status.value} | "
                f"{result.stats['fallback']} | {wall:.2f} |"
            )


def main() -> None:
    """Parse arguments and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residencies", type=int, default=100_000)
    parser.add_argument("--light", action="store_true", help="also the light-model table")
    parser.add_argument(
        "--option", action="append", default=[], help="greedy option NAME=VALUE (table only)"
    )
    parser.add_argument(
        "--dtype-bytes", type=int, default=1, help="bytes per element (table; COSMA: 1)"
    )
    parser.add_argument("--scope", default="activations", help="activations | all (table)")
    parser.add_argument("--skip-core", action="store_true", help="only the light-model table")
    args = parser.parse_args()
    if not args.skip_core:
        bench_validator(args.residencies)
        bench_densenet()
    if args.light:
        from memplan.options import parse_option_pairs

        bench_light_table(
            parse_option_pairs(args.option), args.dtype_bytes, Scope.parse(args.scope)
        )


if __name__ == "__main__":
    main()
