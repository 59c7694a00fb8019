"""Orders of minimum peak on the NAS and RandWire workloads: the min-peak table.

Per workload (activations scope, edge-npu alignment): the peak live bytes (no spilling)
of the model's own order, of reverse post-order (the baseline of Serenity and HMCOS), of
the list schedulers alone (memplan's heuristic before the search), of the search of
``memplan.schedule`` (what M_P budgets use), whether the search proved its order optimal,
the reductions against the model order and RPO, and the seconds the search took.

Run: ``python benchmarks/min_peak.py [--suite nas randwire] [--node-limit N]``.
"""

from __future__ import annotations

import argparse
import os
import time

from memplan.accelerator import load_accelerator
from memplan.analysis import (
    list_min_peak_order,
    min_peak_order,
    model_order,
    peak_live_bytes,
    reverse_post_order,
)
from memplan.graphs import catalog
from memplan.io.loading import load_model
from memplan.problem import Problem, Scope
from memplan.schedule import DEFAULT_NODE_LIMIT, min_peak_schedule


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _mib(value: int) -> str:
    return f"{value / 2**20:.3f}"


def _cut(base: int, value: int) -> str:
    return f"{100 * (base - value) / base:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", nargs="+", default=["nas", "randwire"])
    parser.add_argument("--scope", default="activations", choices=["activations", "all"])
    parser.add_argument("--node-limit", type=int, default=DEFAULT_NODE_LIMIT)
    args = parser.parse_args()
    names = list(
        dict.fromkeys(w.name for suite in args.suite for w in catalog.list_workloads(suite))
    )
    accelerator = load_accelerator("edge-npu")
    print(f"# min-peak orders ({args.scope} scope; {_load()})\n")
    print(
        "| workload | ops | model (MiB) | RPO (MiB) | list schedulers (MiB) | search (MiB) | "
        "proven | lower bound (MiB) | vs model | vs RPO | vs list | search s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        graph = load_model(name).graph
        problem = Problem(graph, accelerator, Scope(args.scope))
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope

        model = peak_live_bytes(graph, model_order(graph), sizes, scope)
        rpo = peak_live_bytes(graph, reverse_post_order(graph), sizes, scope)
        listed = peak_live_bytes(graph, list_min_peak_order(graph, sizes, scope), sizes, scope)
        started = time.perf_counter()
        schedule = min_peak_schedule(
            graph, sizes, scope, min_peak_order(graph, sizes, scope), node_limit=args.node_limit
        )
        seconds = time.perf_counter() - started
        found = schedule.peak_bytes
        print(
            f"| {name} | {graph.num_ops} | {_mib(model)} | {_mib(rpo)} | {_mib(listed)} | "
            f"{_mib(found)} | {'yes' if schedule.proven else 'no'} | "
            f"{_mib(schedule.lower_bound_bytes)} | {_cut(model, found)} | {_cut(rpo, found)} | "
            f"{_cut(listed, found)} | {seconds:.1f} |",
            flush=True,
        )
    print(f"\n{_load()}")


if __name__ == "__main__":
    main()
