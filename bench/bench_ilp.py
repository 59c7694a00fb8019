"""``greedy`` and ``ilp`` side by side at M_R, M_H and M_P, both scopes (COSMA's table).

Workloads: the nine light ONNX models and the small NAS networks of the catalog. Per
workload and scope, M_P is computed once by the exact peak model (``--mp-limit`` s;
when not proven, the better of the heuristic and the search's best value is used and
the row says so). Each (workload, scope, budget) then runs ``greedy`` and ``ilp``
(CP-SAT, free order) with ``--limit`` s per cell, and, for workloads with at most
``--milp-max-ops`` ops, the fixed-order model (min-peak order) with both backends as a
cross-check (``ilp-fixed`` = CP-SAT, ``ilp-fixed-milp`` = PuLP + HiGHS).

Rows are appended to a JSON-lines file as cells finish; a re-run skips cells already
in the file, so the run can be interrupted and resumed. ``--report`` prints the
summary (share proven optimal, gaps, solve times, traffic reduction against greedy at
M_R, zero traffic at M_P, milp against cpsat).

Run: ``python bench/bench_ilp.py --out bench/results/ilp.jsonl [--limit 60]``, then
``python bench/bench_ilp.py --out bench/results/ilp.jsonl --report``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from memplan.accelerator import Accelerator
from memplan.budgets import PeakEstimate, resolve_budget
from memplan.errors import MemplanError
from memplan.ir import Graph
from memplan.problem import Problem, Scope
from memplan.solver import Budget, make_solver

LIGHT = (
    "light_bvlc_alexnet",
    "light_zfnet512",
    "light_vgg19",
    "light_squeezenet",
    "light_inception_v1",
    "light_resnet50",
    "light_shufflenet",
    "light_inception_v2",
    "light_densenet121",
)
NAS_SMALL = (
    "darts_v2_cifar_small",
    "amoebanet_a_cifar_small",
    "nasnet_a_cifar_small",
    "pnasnet5_cifar_small",
)
BUDGETS = ("MR", "MH", "MP")
SCOPES = (Scope.ACTIVATIONS, Scope.ALL)


def load_graph(name: str) -> Graph:
    """A catalog workload (light models and NAS networks) as a memplan graph."""
    from memplan.graphs import catalog
    from memplan.onnx.importer import import_model

    return import_model(catalog.load_model(name)).graph


def cell_id(row: dict[str, Any]) -> str:
    return f"{row['workload']}|{row['scope']}|{row['budget']}|{row['solver']}"


def done_cells(path: Path) -> set[str]:
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text().splitlines():
        if line.strip():
            ids.add(cell_id(json.loads(line)))
    return ids


def append(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()


def run_cell(
    problem: Problem, label: str, solver_name: str, options: dict[str, str], limit_s: float
) -> dict[str, Any]:
    solver = make_solver(solver_name, options)
    started = time.perf_counter()
    try:
        result = solver.solve(problem, Budget(time_limit_s=limit_s))
    except MemplanError as error:
        return {"solver": label, "status": "error", "message": str(error)[:300]}
    wall = time.perf_counter() - started
    cost = result.cost
    return {
        "solver": label,
        "status": result.status.value,
        "non_compulsory_bytes": cost.non_compulsory_bytes if cost else None,
        "peak_bytes": cost.peak_bytes if cost else None,
        "lower_bound_bytes": result.lower_bound_bytes,
        "gap": result.gap,
        "wall_s": round(wall, 3),
        "message": result.message[:300],
        "source": result.stats.get("source"),
        "incumbent_bytes": result.stats.get("incumbent_bytes"),
    }


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = done_cells(out)
    names = [*LIGHT, *NAS_SMALL] if not args.only else args.only.split(",")
    from memplan.solvers.ilp import IlpSolver

    for name in names:
        graph = load_graph(name)
        for scope in SCOPES:
            if args.scope and scope.value != args.scope:
                continue
            pending = [
                (b, s)
                for b in BUDGETS
                for s in ("greedy", "ilp", "ilp-fixed", "ilp-fixed-milp")
                if f"{name}|{scope.value}|{b}|{s}" not in done
            ]
            if not pending:
                continue
            base = Problem(graph, Accelerator("bench", 1 << 40, args.alignment), scope)
            started = time.perf_counter()
            peak = IlpSolver.exact_min_peak(base, Budget(time_limit_s=args.mp_limit))
            mp_wall = time.perf_counter() - started

            def provider(_: Problem, peak: PeakEstimate = peak) -> PeakEstimate:
                return peak

            print(
                f"{name} {scope.value}: {graph.num_ops} ops, M_R {base.min_resident_bytes}, "
                f"M_P {peak.value_bytes} ({peak.source}, {mp_wall:.1f} s)",
                flush=True,
            )
            for budget_spec, solver in pending:
                if solver.startswith("ilp-fixed") and graph.num_ops > args.milp_max_ops:
                    continue
                resolved = resolve_budget(budget_spec, base, provider)
                problem = base.with_capacity(resolved.capacity_bytes)
                if solver == "greedy":
                    row = run_cell(problem, solver, "greedy", {}, args.limit)
                elif solver == "ilp":
                    row = run_cell(problem, solver, "ilp", {"seed": "0"}, args.limit)
                else:
                    backend = "milp" if solver.endswith("milp") else "cpsat"
                    opts = {"mode": "fixed", "order": "min-peak", "backend": backend}
                    row = run_cell(problem, solver, "ilp", opts, args.limit)
                row.update(
                    workload=name,
                    ops=graph.num_ops,
                    scope=scope.value,
                    budget=budget_spec,
                    capacity_bytes=resolved.capacity_bytes,
                    mr_bytes=base.min_resident_bytes,
                    mp_bytes=peak.value_bytes,
                    mp_proven=peak.proven,
                    mp_source=peak.source,
                    mp_wall_s=round(mp_wall, 3),
                    limit_s=args.limit,
                )
                append(out, row)
                print(
                    f"  {budget_spec:2} {solver:8} {row['status']:9} "
                    f"nc={row.get('non_compulsory_bytes')} gap={row.get('gap')} "
                    f"{row.get('wall_s')} s",
                    flush=True,
                )


def report(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by = {cell_id(r): r for r in rows}
    ilp = [r for r in by.values() if r["solver"] == "ilp"]
    print(f"cells: {len(ilp)} ilp cells over {len({r['workload'] for r in ilp})} workloads")
    optimal = [r for r in ilp if r["status"] == "optimal"]
    print(
        f"proven optimal: {len(optimal)}/{len(ilp)} ({100 * len(optimal) / max(len(ilp), 1):.0f}%)"
    )
    rest = [r for r in ilp if r["status"] != "optimal"]
    for r in sorted(rest, key=lambda r: (r["workload"], r["scope"], r["budget"])):
        print(
            f"  not proven: {r['workload']} {r['scope']} {r['budget']}: {r['status']}, "
            f"nc {r.get('non_compulsory_bytes')} B, bound {r.get('lower_bound_bytes')}, "
            f"gap {r.get('gap')}"
        )
    times = [r["wall_s"] for r in ilp if "wall_s" in r]
    if times:
        print(
            f"ilp solve time: median {statistics.median(times):.2f} s, mean "
            f"{statistics.mean(times):.2f} s, worst {max(times):.1f} s; optimal cells: median "
            f"{statistics.median([r['wall_s'] for r in optimal] or [0]):.2f} s"
        )
    hard = [
        r
        for r in ilp
        if (by.get(f"{r['workload']}|{r['scope']}|{r['budget']}|greedy") or {}).get(
            "non_compulsory_bytes"
        )
    ]
    if hard:
        hard_times = [r["wall_s"] for r in hard]
        hard_opt = [r for r in hard if r["status"] == "optimal"]
        print(
            f"cells where greedy spills: {len(hard)}; ilp proven optimal on {len(hard_opt)}; "
            f"time median {statistics.median(hard_times):.1f} s, worst {max(hard_times):.1f} s"
        )
    # Reduction of non-compulsory traffic against greedy at M_R (cells where greedy spills).
    reductions, trivial = [], 0
    for r in ilp:
        g = by.get(f"{r['workload']}|{r['scope']}|{r['budget']}|greedy")
        if r["budget"] != "MR" or g is None or g.get("non_compulsory_bytes") is None:
            continue
        if r.get("non_compulsory_bytes") is None:
            continue
        if g["non_compulsory_bytes"] == 0:
            trivial += 1
            continue
        red = 1 - r["non_compulsory_bytes"] / g["non_compulsory_bytes"]
        reductions.append(red)
        print(
            f"  MR {r['workload']} {r['scope']}: greedy {g['non_compulsory_bytes']} B -> ilp "
            f"{r['non_compulsory_bytes']} B ({100 * red:.1f}% less, ilp {r['status']})"
        )
    if reductions:
        print(
            f"reduction vs greedy at MR: mean {100 * statistics.mean(reductions):.1f}% over "
            f"{len(reductions)} cells where greedy spills "
            f"({trivial} cells with zero greedy traffic)"
        )
    at_mp = [r for r in ilp if r["budget"] == "MP" and r.get("non_compulsory_bytes") is not None]
    zero = [r for r in at_mp if r["non_compulsory_bytes"] == 0]
    print(f"zero non-compulsory traffic at MP: {len(zero)}/{len(at_mp)} ilp cells")
    for r in at_mp:
        if r["non_compulsory_bytes"]:
            print(
                f"  MP nonzero: {r['workload']} {r['scope']} "
                f"{r['non_compulsory_bytes']} B ({r['message']})"
            )
    gmp = [r for r in by.values() if r["solver"] == "greedy" and r["budget"] == "MP"]
    print(
        f"greedy at MP: zero traffic in {sum(1 for r in gmp if r.get('non_compulsory_bytes') == 0)}"
        f"/{len(gmp)} cells"
    )
    # MILP against CP-SAT on the cells both finish.
    pairs = []
    shortcut = 0
    for r in by.values():
        if r["solver"] != "ilp-fixed-milp":
            continue
        c = by.get(f"{r['workload']}|{r['scope']}|{r['budget']}|ilp-fixed")
        if c is None:
            continue
        if "moves no non-compulsory" in r.get("message", "") + c.get("message", ""):
            shortcut += 1  # a zero-traffic incumbent: neither backend had to search
            continue
        both = r["status"] == "optimal" and c["status"] == "optimal"
        print(
            f"  milp vs cpsat {r['workload']} {r['scope']} {r['budget']}: milp {r['status']} "
            f"{r.get('non_compulsory_bytes')} B {r.get('wall_s')} s | cpsat {c['status']} "
            f"{c.get('non_compulsory_bytes')} B {c.get('wall_s')} s"
        )
        if both:
            pairs.append((r, c))
    if pairs:
        equal = sum(1 for m, c in pairs if m["non_compulsory_bytes"] == c["non_compulsory_bytes"])
        ratios = [m["wall_s"] / max(c["wall_s"], 1e-3) for m, c in pairs]
        print(
            f"milp vs cpsat, both optimal on {len(pairs)} cells: equal objectives on {equal}; "
            f"time ratio milp/cpsat median {statistics.median(ratios):.2f}, "
            f"geomean {statistics.geometric_mean(ratios):.2f} ({shortcut} cells with a "
            "zero-traffic incumbent left out)"
        )
    mp = {(r["workload"], r["scope"]): (r["mp_proven"], r["mp_wall_s"]) for r in by.values()}
    proven = sum(1 for p, _ in mp.values() if p)
    print(f"M_P proven by the peak model: {proven}/{len(mp)} (workload, scope) pairs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/results/ilp.jsonl")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per cell")
    parser.add_argument("--mp-limit", type=float, default=30.0, help="seconds for exact M_P")
    parser.add_argument("--milp-max-ops", type=int, default=110)
    parser.add_argument("--alignment", type=int, default=64)
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--scope", default="", help="activations or all (default both)")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args(argv)
    if args.report:
        report(Path(args.out))
    else:
        run(args)


if __name__ == "__main__":
    sys.exit(main())
