"""Latency under the two timing models, the prefetch pass, and what timing costs.

1. For each workload (default: the nine light models and the four small NAS networks)
   at M_H on the ``edge-npu`` preset, the greedy plan's latency under ``serial`` and
   ``overlap``, and under ``overlap`` after the prefetch pass (the same traffic); the
   share of DMA time hidden behind compute before and after; the floor
   ``max(compute, DMA)`` no schedule beats. A Markdown table.
2. On a greedy plan of >= 100,000 residencies (:func:`memplan.testing.large_random_plan`),
   medians of: the cost model (``memplan.cost.evaluate``, which runs both timing models),
   the ``overlap`` model alone (``memplan.timing.latency_s``), the whole timeline
   (``memplan.timing.simulate``) and the prefetch pass.

Run: ``python benchmarks/timing.py [--workloads NAME ...] [--budget MH] [--scope
activations|all] [--residencies 100000] [--repeat 5] [--skip-table] [--skip-cost]``.
Times are CPU seconds of this process (the machine may be shared); the load average is
printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from memplan.accelerator import load_accelerator
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.graphs import catalog
from memplan.io.loading import load_model
from memplan.ir import Graph
from memplan.problem import Problem, Scope
from memplan.solver import Budget, make_solver
from memplan.solvers.prefetch import prefetch
from memplan.testing import large_random_plan
from memplan.timing import latency_s, simulate

LIGHT = (
    "light_bvlc_alexnet",
    "light_densenet121",
    "light_inception_v1",
    "light_inception_v2",
    "light_resnet50",
    "light_shufflenet",
    "light_squeezenet",
    "light_vgg19",
    "light_zfnet512",
)
NAS_SMALL = (
    "darts_v2_cifar_small",
    "nasnet_a_cifar_small",
    "amoebanet_a_cifar_small",
    "pnasnet5_cifar_small",
)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _graph(name: str) -> Graph:
    info = catalog.get_workload(name)
    source = catalog.load_model(name) if info.is_generated else str(info.stored_file())
    return load_model(source).graph


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f}"


def latency_table(workloads: list[str], budget: str = "MH", scope: str = "activations") -> None:
    """Print the serial / overlap / prefetch table (Markdown)."""
    accelerator = load_accelerator("edge-npu")
    print(
        f"## Latency of greedy plans at {budget} on {accelerator.name}, {scope} scope ({_load()})\n"
    )
    print(
        "| model | non-compulsory B | serial ms | overlap ms | after prefetch ms | "
        "floor ms | compute ms | DMA ms | hidden before | hidden after | loads moved | "
        "prefetch s |"
    )
    print("|" + "---|" * 12)
    for name in workloads:
        base = Problem(_graph(name), accelerator, Scope.parse(scope))
        problem = base.with_capacity(resolve_budget(budget, base).capacity_bytes)
        result = make_solver("greedy").solve(problem, Budget())
        assert result.plan is not None and result.cost is not None
        serial = simulate(problem, result.plan, "serial")
        overlap = simulate(problem, result.plan, "overlap")
        cpu = time.process_time()
        done = prefetch(problem, result.plan)
        prefetch_s = time.process_time() - cpu
        after = simulate(problem, done.plan, "overlap")
        assert evaluate(problem, done.plan).traffic_bytes == result.cost.traffic_bytes
        floor = max(overlap.compute_s, overlap.dma_busy_s)
        print(
            f"| {name} | {result.cost.non_compulsory_bytes:,} | {_ms(serial.latency_s)} | "
            f"{_ms(overlap.latency_s)} | {_ms(after.latency_s)} | {_ms(floor)} | "
            f"{_ms(overlap.compute_s)} | {_ms(overlap.dma_busy_s)} | "
            f"{overlap.hidden_dma_share:.1%} | {after.hidden_dma_share:.1%} | "
            f"{done.moved_loads} | {prefetch_s:.2f} |"
        )
    print()


def _median_s(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        cpu = time.process_time()
        work()
        times.append(time.process_time() - cpu)
    return statistics.median(times)


def timing_cost(target_residencies: int, repeat: int) -> None:
    """Print the medians of the cost model, the overlap model and the whole timeline."""
    start = time.perf_counter()
    problem, result = large_random_plan(target_residencies)
    plan = result.plan
    assert plan is not None
    print(
        f"## Timing cost on a plan of {len(plan.residencies):,} residencies "
        f"({problem.graph.num_ops:,} ops; greedy took {time.perf_counter() - start:.1f} s)\n"
    )
    figures = {
        "cost model (evaluate: traffic, both timing models, energy)": lambda: evaluate(
            problem, plan
        ),
        "overlap model alone (timing.latency_s)": lambda: latency_s(problem, plan, "overlap"),
        "serial model alone (timing.latency_s)": lambda: latency_s(problem, plan, "serial"),
        "whole timeline (timing.simulate, overlap)": lambda: simulate(problem, plan, "overlap"),
    }
    for label, work in figures.items():
        print(f"- {label}: median {_median_s(work, repeat):.3f} s CPU of {repeat} ({_load()})")
    cpu = time.process_time()
    done = prefetch(problem, plan)
    print(
        f"- prefetch pass: {time.process_time() - cpu:.2f} s CPU, {done.moved_loads:,} loads "
        f"moved, overlap latency {done.latency_before_s * 1e3:.3f} -> "
        f"{done.latency_after_s * 1e3:.3f} ms ({done.candidate})"
    )


def main() -> None:
    """Parse arguments and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=[*LIGHT, *NAS_SMALL])
    parser.add_argument("--budget", default="MH")
    parser.add_argument("--scope", default="activations", choices=("activations", "all"))
    parser.add_argument("--residencies", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    if not args.skip_table:
        latency_table(args.workloads, args.budget, args.scope)
    if not args.skip_cost:
        timing_cost(args.residencies, args.repeat)


if __name__ == "__main__":
    main()
