"""Benchmark figures (matplotlib, written as PNG files).

- ``traffic_<scope>_<budget>.png``: per workload, one bar per solver: non-compulsory
  traffic relative to the baseline (1.0 = the baseline; lower is better), as in COSMA's
  figures; workloads where the baseline has none are marked "trivial". Without a
  baseline the bars show MiB.
- ``solve_time.png``: solve time against graph size (ops), log-log, one series per solver.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memplan.bench.rows import Row, has_plan, solver_label
from memplan.io.files import atomic_write_bytes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Write a figure as PNG atomically (no half-written file on a crash)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue(), what="figure", create_folders=True)


def traffic_figure(
    path: Path, rows: Sequence[Row], scope: str, budget: str, baseline: str | None
) -> Path:
    """Grouped bars for one scope and budget; returns ``path``."""
    plt = _pyplot()
    solvers = list(dict.fromkeys(solver_label(r) for r in rows))
    workloads = list(dict.fromkeys(str(r["workload"]) for r in rows))
    table = {(str(r["workload"]), solver_label(r)): r for r in rows}
    base_rows = {w: table.get((w, baseline)) for w in workloads} if baseline else {}
    relative = bool(baseline) and any(
        r is not None and has_plan(r) and r["non_compulsory_bytes"] > 0 for r in base_rows.values()
    )
    width = 0.8 / max(1, len(solvers))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(workloads) * max(1, len(solvers)) / 2), 4))
    for i, solver in enumerate(solvers):
        xs, heights, labels = [], [], []
        for j, workload in enumerate(workloads):
            row = table.get((workload, solver))
            x = j + (i - (len(solvers) - 1) / 2) * width
            if row is None or not has_plan(row):
                labels.append((x, "x" if row is not None else ""))
                continue
            value = float(row["non_compulsory_bytes"])
            if relative:
                base = base_rows.get(workload)
                if base is None or not has_plan(base) or base["non_compulsory_bytes"] == 0:
                    labels.append((x, "t"))
                    continue
                value /= float(base["non_compulsory_bytes"])
            else:
                value /= 2**20
            xs.append(x)
            heights.append(value)
        ax.bar(xs, heights, width=width, label=solver)
        for x, text in labels:
            if text:
                ax.text(x, 0, text, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, rotation=45, ha="right", fontsize=8)
    if relative:
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_ylabel(f"non-compulsory traffic / {baseline}")
    else:
        ax.set_ylabel("non-compulsory traffic (MiB)")
    ax.set_title(f"scope {scope}, budget {budget}   (t = trivial for baseline, x = no plan)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def time_figure(path: Path, rows: Sequence[Row]) -> Path | None:
    """Solve time against graph size, log-log; None when no row has a time."""
    plt = _pyplot()
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        if row.get("solve_wall_s") is None or not row.get("graph_ops"):
            continue
        xs, ys = series.setdefault(solver_label(row), ([], []))
        xs.append(float(row["graph_ops"]))
        ys.append(max(float(row["solve_wall_s"]), 1e-4))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for solver, (xs, ys) in series.items():
        ax.scatter(xs, ys, label=solver, s=14, alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("graph size (ops)")
    ax.set_ylabel("solve time (s)")
    ax.set_title("solve time against graph size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def write_figures(folder: Path, rows: Sequence[Row], baseline: str | None) -> list[Path]:
    """Every figure for ``rows`` into ``folder``; returns the files written."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((str(row["scope"]), str(row["budget"])), []).append(row)
    written = [
        traffic_figure(
            folder / f"traffic_{_slug(scope)}_{_slug(budget)}.png", group, scope, budget, baseline
        )
        for (scope, budget), group in groups.items()
    ]
    timing = time_figure(folder / "solve_time.png", rows)
    if timing is not None:
        written.append(timing)
    return written
