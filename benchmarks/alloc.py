"""Benchmarks of the scratchpad allocators (issue W1-4).

1. Exact search at capacity 2^20 on the 11 MiniMalloc ``challenging`` files: per-file
   wall time, search nodes and validation (MiniMalloc, C++: 45 s for all 11 here,
   0.86-8.5 s each; target: each within 60 s).
2. The greedy portfolio alone on the same files: height / max live per file and the
   geometric mean (target <= 1.30; best production greedy measured: 1.338), time per
   file (target < 1 s), and the geomean of each single named greedy for comparison.
3. The portfolio on 60,000 seeded random buffers with realistic lifetimes (target
   < 10 s), validated.
4. Height minimisation (``auto --minimize``) on D and J, the two files that no packing
   at max live is known for, with a time limit each (``--minimize-limit``; 0 skips).

JIT compilation (numba, cached on disk) is triggered once on a small input first (with
the compiled kernels forced; small inputs otherwise run in plain Python) and reported
apart. The machine's load average is printed, since timings on a shared
2-core machine are noisy.

Run: ``python benchmarks/alloc.py [--data ../shared/data] [--random 60000] [--json out]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from memplan.dsa import (
    Buffer,
    allocate,
    available_allocators,
    make_allocator,
    max_live_bytes,
    validate_packing,
)
from memplan.io.buffers_csv import read_buffers_csv
from memplan.io.files import atomic_write_text
from memplan.solver import Budget, Status

ROOT = Path(__file__).resolve().parent.parent
CAPACITY = 1 << 20
#: The single-pass greedy allocators: every registered one but the combinations.
NAMED = tuple(n for n in available_allocators() if n not in ("auto", "portfolio", "exact"))


def random_buffers(n: int, seed: int) -> list[Buffer]:
    """``n`` buffers shaped like a network's activations, seeded.

    Buffers are created in step order, about two per step; 70 % live 1-5 steps, 25 %
    5-50 steps (skip connections), 5 % 50-2000 steps (long-lived state); sizes are
    log-uniform between 1 KiB and 1 MiB, rounded up to 64 bytes.
    """
    rng = np.random.default_rng(seed)
    lower = np.sort(rng.integers(0, max(n // 2, 1), n))
    kind = rng.random(n)
    length = np.where(
        kind < 0.7,
        rng.integers(1, 6, n),
        np.where(kind < 0.95, rng.integers(5, 50, n), rng.integers(50, 2000, n)),
    )
    size = np.exp(rng.uniform(math.log(1024), math.log(1 << 20), n)).astype(np.int64)
    size = (size + 63) // 64 * 64
    return [Buffer(i, int(lower[i]), int(lower[i] + length[i]), int(size[i])) for i in range(n)]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def warm_up() -> float:
    """Compile (or load from the cache) every kernel; return the seconds it took."""
    start = time.perf_counter()
    buffers = random_buffers(200, seed=1)  # no greedy reaches max live: every kernel runs
    roomy = sum(b.size_bytes for b in buffers)
    for name in (*NAMED, "portfolio", "exact"):
        for capacity, minimize in ((roomy, False), (None, True)):
            options = {"kernels": "compiled", "minimize": minimize}
            make_allocator(name, options).allocate(buffers, capacity, Budget(time_limit_s=5))
    return time.perf_counter() - start


def bench_exact(files: list[Path], time_limit_s: float) -> list[dict[str, object]]:
    """Part 1: exact search at 2^20 on each file, validated."""
    rows: list[dict[str, object]] = []
    walls: list[float] = []
    print(f"\n## Exact search at capacity {CAPACITY} ({_load()})\n")
    print("| file | buffers | status | wall s | nodes | valid |")
    print("|---|---|---|---|---|---|")
    for path in files:
        buffers = read_buffers_csv(path)
        start = time.perf_counter()
        result = allocate(
            buffers, CAPACITY, algorithm="exact", budget=Budget(time_limit_s=time_limit_s)
        )
        wall = time.perf_counter() - start
        walls.append(wall)
        valid = result.offsets_bytes is not None and not validate_packing(
            buffers, result.offsets_bytes, CAPACITY
        )
        rows.append(
            {
                "file": path.name,
                "buffers": len(buffers),
                "status": result.status.value,
                "wall_s": wall,
                "valid": valid,
                "message": result.message,
            }
        )
        nodes = result.stats.get("nodes", "-")
        print(
            f"| {path.name} | {len(buffers)} | {result.status.value} | {wall:.2f} | "
            f"{nodes} | {'yes' if valid else 'NO'} |"
        )
    total = sum(walls)
    solved = sum(1 for r in rows if r["status"] in ("optimal", "feasible") and r["valid"])
    print(f"\nsolved and valid: {solved}/{len(rows)}; total {total:.2f} s; max {max(walls):.2f} s")
    return rows


def bench_portfolio(files: list[Path]) -> dict[str, object]:
    """Part 2: the portfolio and each named greedy, height / max live."""
    print(f"\n## Greedy portfolio, height / max live ({_load()})\n")
    print("| file | max live | portfolio height | ratio | wall s | best variant |")
    print("|---|---|---|---|---|---|")
    logs: list[float] = []
    named_logs: dict[str, list[float]] = {name: [] for name in NAMED}
    per_file = []
    file_walls: list[float] = []
    for path in files:
        buffers = read_buffers_csv(path)
        start = time.perf_counter()
        result = allocate(buffers, None, algorithm="portfolio", minimize=True)
        wall = time.perf_counter() - start
        assert result.offsets_bytes is not None and result.ratio is not None
        assert not validate_packing(buffers, result.offsets_bytes), path
        logs.append(math.log(result.ratio))
        file_walls.append(wall)
        per_file.append({"file": path.name, "ratio": result.ratio, "wall_s": wall})
        print(
            f"| {path.name} | {result.max_live_bytes} | {result.height_bytes} | "
            f"{result.ratio:.3f} | {wall:.3f} | {result.algorithm} |"
        )
        for name in NAMED:
            single = allocate(buffers, None, algorithm=name)
            assert single.offsets_bytes is not None and single.ratio is not None
            assert not validate_packing(buffers, single.offsets_bytes)
            named_logs[name].append(math.log(single.ratio))
    geomean = math.exp(sum(logs) / len(logs))
    print(
        f"\nportfolio geomean height / max live: {geomean:.4f} "
        f"(max per-file time {max(file_walls):.3f} s)"
    )
    singles = {name: math.exp(sum(v) / len(v)) for name, v in named_logs.items()}
    print("single greedy geomeans: " + ", ".join(f"{k} {v:.3f}" for k, v in singles.items()))
    return {"geomean": geomean, "files": per_file, "single_geomeans": singles}


def bench_random(n: int) -> dict[str, object]:
    """Part 3: the portfolio on ``n`` random buffers."""
    buffers = random_buffers(n, seed=0)
    print(f"\n## Portfolio on {n} random buffers ({_load()})\n")
    start = time.perf_counter()
    result = allocate(buffers, None, algorithm="portfolio", minimize=True)
    wall = time.perf_counter() - start
    assert result.offsets_bytes is not None
    errors = validate_packing(buffers, result.offsets_bytes)
    live = max_live_bytes(buffers)
    print(
        f"wall {wall:.2f} s; height / max live {result.ratio:.4f} "
        f"(max live {live} B); {result.algorithm}; valid: {not errors}"
    )
    fit = allocate(buffers, result.height_bytes, algorithm="portfolio")
    print(
        f"decision at that height (stops at the first fitting variant): "
        f"{fit.wall_s:.2f} s, {fit.status.value}"
    )
    return {
        "n": n,
        "wall_s": wall,
        "ratio": result.ratio,
        "valid": not errors,
        "decision_wall_s": fit.wall_s,
        "decision_ok": fit.fits,
    }


def bench_minimize(files: list[Path], time_limit_s: float) -> list[dict[str, object]]:
    """Part 4: lowest height found for D and J within the time limit."""
    print(f"\n## Height minimisation, {time_limit_s:g} s each ({_load()})\n")
    print("| file | max live | height | ratio | proven | wall s | valid |")
    print("|---|---|---|---|---|---|---|")
    rows: list[dict[str, object]] = []
    for path in files:
        if path.name.split(".")[0] not in ("D", "J"):
            continue
        buffers = read_buffers_csv(path)
        result = allocate(buffers, None, minimize=True, budget=Budget(time_limit_s=time_limit_s))
        assert result.offsets_bytes is not None and result.ratio is not None
        valid = not validate_packing(buffers, result.offsets_bytes)
        rows.append(
            {
                "file": path.name,
                "height_bytes": result.height_bytes,
                "max_live_bytes": result.max_live_bytes,
                "proven": result.status is Status.OPTIMAL,
                "lower_bound_bytes": result.lower_bound_bytes,
                "wall_s": result.wall_s,
                "valid": valid,
            }
        )
        print(
            f"| {path.name} | {result.max_live_bytes} | {result.height_bytes} | "
            f"{result.ratio:.4f} | {'yes' if result.status is Status.OPTIMAL else 'no'} | "
            f"{result.wall_s:.1f} | {'yes' if valid else 'NO'} |"
        )
    return rows


def main() -> None:
    """Run the three parts and optionally save the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="the shared data folder (default: <repo>/../shared/data)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        help="exact search limit per file, seconds (default 60)",
    )
    parser.add_argument(
        "--random",
        type=int,
        default=60_000,
        help="number of random buffers for part 3 (default 60000)",
    )
    parser.add_argument(
        "--minimize-limit",
        type=float,
        default=30.0,
        help="seconds of height minimisation for D and J (0 skips; default 30)",
    )
    parser.add_argument("--json", type=Path, default=None, help="save the figures here")
    args = parser.parse_args()
    print(f"JIT warm-up (compile or load cache): {warm_up():.2f} s")
    files = sorted((args.data / "minimalloc" / "challenging").glob(f"*.{CAPACITY}.csv"))
    report: dict[str, object] = {}
    if files:
        report["exact"] = bench_exact(files, args.time_limit)
        report["portfolio"] = bench_portfolio(files)
    else:
        print(f"no MiniMalloc files under {args.data}: parts 1 and 2 skipped")
    report["random"] = bench_random(args.random)
    if files and args.minimize_limit > 0:
        report["minimize"] = bench_minimize(files, args.minimize_limit)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
