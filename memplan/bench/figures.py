"""Benchmark figures (matplotlib, written as PNG files).

- ``traffic_<scope>_<budget>.png``: per workload, one bar per solver: non-compulsory
  traffic relative to the baseline (1.0 = the baseline; lower is better), as in COSMA's
  figures; workloads where the baseline has none are marked "trivial", and a solver
  without a plan "x". Without a baseline the bars show MiB.
- ``solve_time.png``: solve time against graph size (ops), log-log, one series per
  solver; cells below M_R (infeasible, nothing solved) are left out.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memplan.bench.rows import Row, below_mr, has_plan, solve_time, solver_label
from memplan.io.files import atomic_write_bytes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    """Write a figure as PNG atomically (no half-written file on a crash); the page is
    cut to what is drawn (titles, rotated labels, markers are never clipped)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", pad_inches=0.1)
    atomic_write_bytes(path, buffer.getvalue(), what="figure", create_folders=True)


#: Longest title line, in characters, before it wraps.
TITLE_WIDTH = 64


def _title(*lines: str) -> str:
    """Title lines wrapped to :data:`TITLE_WIDTH` characters."""
    return "\n".join(textwrap.fill(line, TITLE_WIDTH) for line in lines if line)


def traffic_figure(
    path: Path, rows: Sequence[Row], scope: str, budget: str, baseline: str | None
) -> Path:
    """Grouped bars for one scope and budget; returns ``path``.

    One group per workload, centred on its label; one bar per solver. Bars that cannot
    be drawn are marked inside the axes, at their place: ``x`` where a solver has no
    plan, and one note under a group whose ratios cannot be drawn: "trivial" (the
    baseline has no non-compulsory traffic: every ratio would be 0/0), "below M_R" (no
    plan exists) or "no <baseline> plan".
    """
    plt = _pyplot()
    solvers = list(dict.fromkeys(solver_label(r) for r in rows))
    workloads = list(dict.fromkeys(str(r["workload"]) for r in rows))
    table = {(str(r["workload"]), solver_label(r)): r for r in rows}
    base_rows = {w: table.get((w, baseline)) for w in workloads} if baseline else {}
    relative = bool(baseline) and any(
        r is not None and has_plan(r) and r["non_compulsory_bytes"] > 0 for r in base_rows.values()
    )
    width = 0.8 / max(1, len(solvers))
    size = (max(6.0, 0.35 * len(workloads) * max(1, len(solvers)) + 2.0), 4.2)
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    # x in data units, y as a fraction of the axes' height: marks sit just above the
    # bottom of the axes, whatever the bars' scale.
    marks = ax.get_xaxis_transform()
    group_notes: dict[int, str] = {}  # a mark for a whole group instead of its bars
    base_values: dict[str, float] = {}  # the baseline's traffic, the unit of a group
    for j, workload in enumerate(workloads):
        base = base_rows.get(workload)
        group = [r for r in rows if str(r["workload"]) == workload]
        if all(below_mr(r) and not has_plan(r) for r in group):
            group_notes[j] = "below M_R"  # no plan exists: every solver says infeasible
        elif not relative:
            continue
        elif base is None or not has_plan(base):
            group_notes[j] = f"no {baseline} plan"
        elif base["non_compulsory_bytes"] == 0:
            group_notes[j] = "trivial"
        else:
            base_values[workload] = float(base["non_compulsory_bytes"])
    for i, solver in enumerate(solvers):
        xs, heights = [], []
        for j, workload in enumerate(workloads):
            if j in group_notes:
                continue
            row = table.get((workload, solver))
            x = j + (i - (len(solvers) - 1) / 2) * width
            if row is None or not has_plan(row):
                if row is not None:
                    ax.text(x, 0.015, "x", transform=marks, ha="center", va="bottom", fontsize=8)
                continue
            value = float(row["non_compulsory_bytes"])
            value /= base_values[workload] if relative else 2**20
            if value == 0:  # a bar of height 0 would not show: say so
                ax.text(x, 0.015, "0", transform=marks, ha="center", va="bottom", fontsize=8)
            xs.append(x)
            heights.append(value)
        ax.bar(xs, heights, width=width, label=solver, color=f"C{i % 10}")
    for j, note in group_notes.items():
        ax.text(j, 0.015, note, transform=marks, ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-0.5, len(workloads) - 0.5)
    ax.set_ylim(bottom=0)
    ax.set_xticks(range(len(workloads)))
    # Rotated about the tick (anchor): each label ends under its group's centre.
    ax.set_xticklabels(workloads, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    if relative:
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_ylabel(f"non-compulsory traffic / {baseline}")
    else:
        ax.set_ylabel("non-compulsory traffic (MiB)")
    marks_note = "x = no plan, 0 = no spills" + (
        "; trivial = baseline has no spills" if relative else ""
    )
    ax.set_title(_title(f"scope {scope}, budget {budget}", marks_note), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _save(fig, path)
    plt.close(fig)
    return path


def _plain_log_ticks(axis: Any, values: Sequence[float]) -> None:
    """Label a log axis with plain numbers (20, 50, 100) at 1-2-5 steps when the data
    span at most two decades, else at powers of ten, and never label minor ticks.

    matplotlib's default labels the minor ticks of a log axis whose data span less
    than a decade or so ("2x10^1 3x10^1 4x10^1 ..."), and those labels run into each
    other.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = min(values), max(values)
    narrow = high <= 100 * low
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def time_figure(path: Path, rows: Sequence[Row]) -> Path | None:
    """Solve time against graph size, log-log; None when no row has a time."""
    plt = _pyplot()
    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        seconds = solve_time(row)  # None for cells below M_R, where nothing was solved
        if seconds is None or not row.get("graph_ops"):
            continue
        xs, ys = series.setdefault(solver_label(row), ([], []))
        xs.append(float(row["graph_ops"]))
        ys.append(max(seconds, 1e-4))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for solver, (xs, ys) in series.items():
        ax.scatter(xs, ys, label=solver, s=14, alpha=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis, [x for xs, _ in series.values() for x in xs])
    _plain_log_ticks(ax.yaxis, [y for _, ys in series.values() for y in ys])
    ax.set_xlabel("graph size (ops)")
    ax.set_ylabel("solve time (s)")
    ax.set_title(
        _title("solve time against graph size", "cells below M_R (nothing solved) left out"),
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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
