"""What the network is worth in the rl solver's rollout search, game by game, held out.

``memplan bench --solvers rl,rl-uniform`` compares final plans, and on most cells both
keep the same reference (greedy's plan on an order no game improves). This script looks
at the games themselves: on every catalog workload of the families the shipped agent
never trained on (``memplan.rl.sampler.HELD_OUT_FAMILIES``), at M_R and M_H, for the
named orders and the order the whole-order search finds (seed 0, from the min-peak
order), it builds the instance (greedy's plan on the order as the reference) and plays
one fortified rollout pass (``memplan.solvers.rl.rollout``) with the shipped network
ranking the alternatives, and ``--uniform-seeds`` passes with random alternatives (one
per seed), with the same number of alternatives per move (so the same number of
rollouts) and the same time cap. The network is compared with the median of the random
passes, so one lucky or unlucky draw does not decide.

Run: ``python benchmarks/rl_passes.py [--workloads ...] [--scopes activations all]
[--orders ...] [--alternatives 1] [--pass-s 20] [--uniform-seeds 3] [--json out.jsonl]``;
prints a table of the instances where any pass improved the reference, and the count of
network better / equal / worse than the random passes' median.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from memplan.accelerator import load_accelerator
from memplan.analysis import named_order
from memplan.budgets import resolve_budget
from memplan.graphs import catalog
from memplan.io.loading import load_model
from memplan.problem import Problem, Scope
from memplan.rl.sampler import HELD_OUT_FAMILIES, catalog_workloads
from memplan.solver import Budget
from memplan.solvers.order_search import search_order
from memplan.solvers.rl.instances import Instance, make_instance
from memplan.solvers.rl.network import SHIPPED_CHECKPOINT, Network
from memplan.solvers.rl.rollout import rollout_pass

ORDERS = ("model", "min-peak", "dfs", "rpo", "searched")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _pass(
    instance: Instance, network: Network | None, alternatives: int, cap_s: float, seed: int = 0
) -> dict[str, object]:
    """One rollout pass from the instance's reference, within ``cap_s`` seconds."""
    assert instance.reference is not None and instance.baseline_bytes is not None
    start = time.monotonic()
    found = rollout_pass(
        instance,
        instance.reference,
        instance.baseline_bytes,
        alternatives=alternatives,
        network=network,
        rng=np.random.default_rng(seed),
        should_stop=lambda: time.monotonic() - start > cap_s,
    )
    return {
        "bytes": found.best_bytes,
        "rollouts": found.rollouts,
        "complete": found.complete,
        "s": round(time.monotonic() - start, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=None)
    parser.add_argument("--budgets", nargs="+", default=["MR", "MH"])
    parser.add_argument("--scopes", nargs="+", default=["activations"], help="activations | all")
    parser.add_argument("--orders", nargs="+", default=list(ORDERS), help=f"of {ORDERS}")
    parser.add_argument(
        "--uniform-seeds", type=int, default=1, help="random passes per instance (seeds 0..)"
    )
    parser.add_argument("--alternatives", type=int, default=1)
    parser.add_argument("--pass-s", type=float, default=20.0, help="time cap per pass (s)")
    parser.add_argument("--search-s", type=float, default=10.0, help="order search (s)")
    parser.add_argument("--json", default=None, help="append one JSON line per instance")
    args = parser.parse_args()
    workloads = args.workloads or catalog_workloads(HELD_OUT_FAMILIES, max_ops=10**9)
    network = Network.load(SHIPPED_CHECKPOINT)
    accelerator = load_accelerator("edge-npu")
    print(_load())
    rows = []
    for workload in workloads:
        graph = load_model(catalog.load_model(workload)).graph
        for scope_name in args.scopes:
            base = Problem(graph, accelerator, Scope(scope_name))
            rows += _instances(workload, base, network, args)
    _summary(rows, args)


def _instances(
    workload: str, base: Problem, network: Network, args: argparse.Namespace
) -> list[dict[str, object]]:
    """One row per budget and order of ``base``'s graph and scope where greedy spills."""
    graph, rows = base.graph, []
    for spec in args.budgets:
        problem = base.with_capacity(resolve_budget(spec, base).capacity_bytes)
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        for name in args.orders:
            if name == "searched":
                start = named_order(graph, "min-peak", sizes, scope)
                limit = Budget(time_limit_s=args.search_s)
                order = search_order(problem, start, seed=0, should_stop=limit.should_stop)
                instance = make_instance(problem, order.order, alloc_time_limit_s=2.0)
            else:
                instance = make_instance(problem, name, alloc_time_limit_s=2.0)
            if not instance.baseline_bytes:
                continue
            row = {
                "workload": workload,
                "scope": base.scope.value,
                "budget": spec,
                "order": name,
                "reference": instance.baseline_bytes,
                "network": _pass(instance, network, args.alternatives, args.pass_s),
                "uniform": [
                    _pass(instance, None, args.alternatives, args.pass_s, seed)
                    for seed in range(args.uniform_seeds)
                ],
            }
            rows.append(row)
            if args.json:
                with open(args.json, "a") as out:
                    out.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return rows


def _summary(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    """The instances any pass improved, and network against the random passes' median."""
    better = equal = worse = 0
    print("\n| workload | scope | budget | order | reference | network pass | random passes |")
    print("|---|---|---|---|---:|---:|---|")
    for row in rows:
        net = int(row["network"]["bytes"])  # type: ignore[index]
        uniform = [int(u["bytes"]) for u in row["uniform"]]  # type: ignore[attr-defined]
        median = float(np.median(uniform))
        if min(net, *uniform) >= int(row["reference"]):  # type: ignore[call-overload]
            continue
        better += net < median
        equal += net == median
        worse += net > median
        print(
            f"| {row['workload']} | {str(row['scope'])[:3]} | {row['budget']} | {row['order']} "
            f"| {row['reference']:,} | {net:,} | {', '.join(f'{u:,}' for u in uniform)} |"
        )
    print(
        f"\ninstances: {len(rows)}; improved by any pass: {better + equal + worse}; network "
        f"better than the random passes' median {better}, equal {equal}, worse {worse} "
        f"({args.alternatives} alternative(s) per move, {args.uniform_seeds} random pass(es), "
        f"{args.pass_s:g} s cap per pass); {_load()}"
    )


if __name__ == "__main__":
    main()
