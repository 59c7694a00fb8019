"""Reports of `memplan bench`: merging rows, bounds and gaps, summaries, 80-column tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from memplan.bench import figures
from memplan.bench.report import (
    cell_matrix,
    change_text,
    markdown_report,
    percent_change,
    write_reports,
)
from memplan.bench.rows import best_bound, merge_rows
from memplan.bench.summary import summarize
from memplan.bench.terminal import bench_summary, compare_table
from memplan.cli import main
from memplan.errors import ConfigError


def _row(workload: str, budget: str, solver: str, value: int | None, **extra: Any) -> dict:
    row = {
        "key": f"{workload}/{budget}/{solver}",
        "workload": workload,
        "scope": "activations",
        "budget": budget,
        "solver": solver,
        "status": "feasible" if value is not None else "timeout",
        "non_compulsory_bytes": value,
        "lower_bound_bytes": None,
        "solve_wall_s": 0.5,
        "graph_ops": 10,
        "capacity_bytes": 4096,
    }
    row.update(extra)
    return row


def _render(renderable: Any, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get().splitlines()


def test_summary_reductions_leave_trivial_cells_out() -> None:
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "ilp", 250, lower_bound_bytes=200, status="feasible"),
        _row("b", "MR", "greedy", 3000),
        _row("b", "MR", "ilp", 3000, lower_bound_bytes=0),
        _row("c", "MR", "greedy", 0, status="optimal"),  # trivial: the baseline does not spill
        _row("c", "MR", "ilp", 0, status="optimal", lower_bound_bytes=0),
        _row("d", "MR", "greedy", 500),
        _row("d", "MR", "ilp", None),  # no plan where the baseline has one
    ]
    by_solver = {s.solver: s for s in summarize(rows, "greedy") if s.scope == "activations"}
    ilp = by_solver["ilp"]
    assert (ilp.compared, ilp.trivial, ilp.missing) == (2, 1, 1)
    assert ilp.mean_reduction == pytest.approx((0.75 + 0.0) / 2)
    assert ilp.total_reduction == pytest.approx(1 - 3250 / 4000)
    assert ilp.non_compulsory_bytes == 3250 and ilp.plans == 3 and ilp.timeouts == 1
    assert ilp.optimal == 1 and ilp.best == 3
    # gaps to the best bound of each cell: a: (250-200)/250, b: 3000/3000, c: 0
    assert ilp.mean_gap == pytest.approx((0.2 + 1.0 + 0.0) / 3)
    greedy = by_solver["greedy"]
    assert greedy.mean_reduction is None and greedy.total_reduction is None
    assert greedy.best == 3  # b (a tie), c, and d (ilp has no plan there)
    # greedy's plans in a, b and c are measured against the cells' bounds; d has none
    assert (greedy.bounded, greedy.plans) == (3, 4)
    overall = [s for s in summarize(rows, "greedy") if s.scope == "*"]
    assert {s.solver for s in overall} == {"greedy", "ilp"}


def test_only_global_bounds_count() -> None:
    rows = [
        _row("a", "MR", "greedy", 1000),
        # optimal for its order only: its value is no bound over all plans
        _row(
            "a",
            "MR",
            "ilp",
            800,
            options={"mode": "fixed"},
            lower_bound_bytes=800,
            stats={"optimal_for_order": True},
        ),
        _row("a", "MR", "bad", None, status="error", lower_bound_bytes=900),
    ]
    assert best_bound(rows) == (None, [])
    summaries = {s.solver: s for s in summarize(rows, "greedy") if s.scope == "activations"}
    assert summaries["greedy"].mean_gap is None and summaries["greedy"].bounded == 0
    assert summaries["ilp[mode=fixed]"].optimal == 0
    _, body = cell_matrix(rows)
    assert "800 B (optimal for order)" in body[0] and body[0][7] == "–"
    # an OPTIMAL status is not a bound by itself either: only lower_bound_bytes is
    assert best_bound([_row("b", "MR", "x", 10, status="optimal")]) == (None, [])


def test_a_bound_above_a_valid_plan_is_reported_and_ignored() -> None:
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "ilp", 1200, lower_bound_bytes=1100),  # contradicts greedy's plan
        _row("a", "MR", "lb", None, lower_bound_bytes=600),
    ]
    bound, problems = best_bound(rows)
    assert bound == 600
    assert problems == ["a / activations / MR / ilp: lower bound 1100 B is above a valid plan's "
                        "1000 B; ignored"]  # fmt: skip
    assert "lower bound 1100 B is above" in markdown_report(rows, "greedy")


def test_rows_are_merged_only_at_one_capacity() -> None:
    old = _row("a", "MP", "greedy", 1000, key="k1", capacity_bytes=8192)
    new = _row("a", "MP", "greedy", 900, key="k2", capacity_bytes=7680)
    other = _row("a", "MP", "ilp", 500, key="k3", capacity_bytes=7680)
    # a later row of the same cell and solver replaces the earlier one
    assert merge_rows([old, new, other]) == [new, other]
    stale = [new, other, _row("a", "MP", "spill", 2000, key="k4", capacity_bytes=8192)]
    with pytest.raises(ConfigError) as error:
        summarize(stale, "greedy")
    message = str(error.value)
    assert "\n" not in message
    assert "cell a / activations / MP has rows at capacities 7.50 KiB (greedy)" in message
    assert "8.00 KiB (spill)" in message


def test_reports_are_written(tmp_path: Path) -> None:
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "ilp", 250),
        _row("a", "MP", "greedy", 0),
        _row("a", "MP", "ilp", None, status="error", message="boom"),
    ]
    written = write_reports(tmp_path, rows, "greedy")
    names = {p.name for p in written}
    assert {"summary.md", "summary.csv", "cells.csv", "solve_time.png"} <= names
    assert {"traffic_activations_MR.png", "traffic_activations_MP.png"} <= names
    markdown = (tmp_path / "summary.md").read_text()
    assert "-75.0%" in markdown and "boom" in markdown
    assert (tmp_path / "cells.csv").read_text().count("\n") == 5


def test_terminal_summary_fits_80_columns_without_cutting_names() -> None:
    long_label = "ilp[backend=milp,mode=fixed,order=min-peak]"
    rows = []
    for workload in ("light_inception_v2", "light_densenet121"):
        for scope in ("activations", "all"):
            for budget in ("MR", "0.5*MP", "512KiB"):
                rows += [
                    _row(workload, budget, "greedy", 987_654_321, scope=scope),
                    _row(
                        workload, budget, "ilp", 123_456_789, scope=scope, status="optimal",
                        lower_bound_bytes=123_456_789, solve_wall_s=59.9,
                    ),
                    _row(
                        workload, budget, "ilp", 200_000_000, scope=scope,
                        options={"mode": "fixed", "backend": "milp", "order": "min-peak"},
                        status="feasible", stats={"optimal_for_order": True},
                    ),
                ]  # fmt: skip
    lines = _render(bench_summary(summarize(rows, "greedy"), "greedy"))
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "…" not in text and "S1 = " + long_label in text
    assert "scope activations" in text and "all scopes and budgets" in text
    first = {tuple(line.split()[:2]): line.split() for line in lines if line.strip()}
    # gaps to ilp's proven optimum; the fixed-order optimum is no bound and gets a gap too
    assert first["MR", "greedy"][-3] == "88%" and first["MR", "S1"][-3] == "38%"
    assert first["MR", "ilp"][3:5] == ["2/0/0/0", "235.48"]


def test_compare_table_fits_80_columns() -> None:
    common = {"graph_ops": 250, "mr_bytes": 1 << 20, "mp_bytes": 3 << 20, "mp_proven": False}
    rows = [
        _row("light_densenet121", "MR", "greedy", 5_619_712, **common,
             message="greedy fell back to the min-peak order after 3 retries " * 3),
        _row("light_densenet121", "MR", "fake_solvers:KeepAllSolver", None, status="timeout",
             killed=True, **common),
        _row("light_densenet121", "MR", "ilp", 5_017_600, lower_bound_bytes=4_915_200,
             gap=0.0204, status="timeout", **common),
    ]  # fmt: skip
    lines = _render(compare_table(rows, "greedy"))
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    assert "S1 = fake_solvers:KeepAllSolver" in text and "capacity: MR = 4.00 KiB" in text
    keep = next(line for line in lines if " S1 " in line)
    assert "killed" in keep and keep.count("–") >= 4  # no plan, bound, gap or time shown as 0
    ilp = next(line for line in lines if " ilp " in line)
    assert "2.0%" in ilp and "-10.7%" in ilp


def test_compare_baseline_is_matched_on_the_full_label() -> None:
    """greedy and greedy[order=model] are two solvers: the baseline row is the one named.

    The baseline was matched on the solver name alone, so the last greedy row won and the
    table compared greedy against greedy[order=model] under the legend "against greedy".
    """
    common = {"graph_ops": 63, "mr_bytes": 1 << 17, "mp_bytes": 7 << 15, "mp_proven": True}
    rows = [
        _row("rw", "MR", "greedy", 480 << 10, options={}, **common),
        _row("rw", "MR", "greedy", 544 << 10, options={"order": "model"}, **common),
    ]

    def versus(baseline: str) -> dict[str, str]:
        lines = _render(compare_table(rows, baseline))
        return {line.split()[1]: line.split()[5] for line in lines if line.startswith(" MR ")}

    assert versus("greedy") == {"greedy": "–", "S1": "+13.3%"}
    assert versus("greedy[order=model]") == {"greedy": "-11.8%", "S1": "–"}
    legend = "\n".join(_render(compare_table(rows, "greedy[order=model]")))
    assert "against S1" in legend


def test_totals_are_over_the_cells_both_solvers_have_a_plan_and_none_without_plans() -> None:
    """A solver that errors everywhere had "0 B" of traffic (which reads as perfect), and
    one with plans in fewer cells than the baseline had a total over fewer cells (which
    reads as a saving); no change printed as -0.0%."""
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "flaky", 1000),
        _row("a", "MR", "broken", None, status="error"),
        _row("b", "MR", "greedy", 3000),
        _row("b", "MR", "flaky", None, status="error"),
        _row("b", "MR", "broken", None, status="error"),
    ]
    summaries = [s for s in summarize(rows, "greedy") if s.scope == "activations"]
    greedy, flaky, broken = summaries
    assert broken.non_compulsory_bytes is None and broken.common_bytes is None
    assert not broken.partial and not greedy.partial
    assert (flaky.common, flaky.common_bytes, flaky.baseline_common_bytes) == (1, 1000, 1000)
    assert flaky.partial and flaky.mean_reduction == 0.0
    text = "\n".join(_render(bench_summary(summaries, "greedy")))
    cols = {line.split()[1]: line.split()[4:7] for line in text.splitlines()[:8] if " MR " in line}
    assert cols["greedy"] == ["3.91", "KiB", "–"]
    assert cols["flaky"] == ["1000", "B*", "0.0%"]
    assert cols["broken"][:2] == ["–", "–"]
    legend = " ".join(text.split())
    assert (
        "* flaky (activations / MR): over 1 cell where it and greedy both have a plan, of its "
        "1 and greedy's 2; greedy there: 1000 B"
    ) in legend
    report = markdown_report(rows, "greedy")
    table = report.split("## Per cell")[0]
    assert "| 1000 B* | 0.0% | 0.0% |" in table and "| 0 B |" not in table and "-0.0%" not in table
    assert "| broken | 2 | 0 | 0 | 0 | 0 | 2 | 0 | – |" in table
    assert "- \\* flaky (activations / MR): over 1 cell" in table


def test_no_change_prints_the_same_in_compare_and_bench() -> None:
    assert percent_change(0.0) == percent_change(-0.0) == change_text(0.0) == "0.0%"
    assert change_text(-0.0004) == "-0.04%" and change_text(0.133) == "+13.3%"
    common = {"mr_bytes": 512, "mp_bytes": 4096}
    rows = [_row("a", "MR", "greedy", 1000, **common), _row("a", "MR", "ilp", 1000, **common)]
    ilp = next(line for line in _render(compare_table(rows, "greedy")) if " ilp " in line)
    assert ilp.split()[5] == "0.0%"


def test_summary_gives_medians_beside_means() -> None:
    """The summary had means only, while a skewed set of cells (one large saving, the
    rest small) is better told by its median; both are now given."""
    cells = (("a", 100, 0.1), ("b", 900, 0.2), ("c", 800, 9.0))  # dnc's bytes and time
    rows = [
        _row(w, "MR", s, v, solve_wall_s=t)
        for w, value, t in cells
        for s, v in (("greedy", 1000), ("dnc", value))
    ]
    dnc = next(s for s in summarize(rows, "greedy") if s.solver == "dnc" and s.scope != "*")
    assert dnc.mean_reduction == pytest.approx((0.9 + 0.1 + 0.2) / 3)
    assert dnc.median_reduction == pytest.approx(0.2)
    assert dnc.median_solve_s == pytest.approx(0.2) and dnc.mean_solve_s == pytest.approx(3.1)
    greedy = next(s for s in summarize(rows, "greedy") if s.solver == "greedy")
    assert greedy.median_reduction is None
    text = markdown_report(rows, "greedy")
    assert "vs baseline (median)" in text and "median time" in text and "-20.0%" in text


def test_cells_below_mr_are_infeasible_and_not_timed(tmp_path: Path) -> None:
    common = {"mr_bytes": 4096, "graph_ops": 10}
    rows = [
        _row("a", "512B", "greedy", None, status="infeasible", capacity_bytes=512,
             solve_wall_s=3e-5, **common),
        _row("b", "512B", "greedy", 300, capacity_bytes=8192, solve_wall_s=0.06, **common),
        _row("c", "512B", "greedy", None, status="infeasible", capacity_bytes=512,
             solve_wall_s=2e-5, **common),
    ]  # fmt: skip
    (greedy,) = [s for s in summarize(rows, "greedy") if s.scope == "activations"]
    assert (greedy.cells, greedy.plans, greedy.infeasible) == (3, 1, 2)
    assert greedy.mean_solve_s == pytest.approx(0.06) and greedy.max_solve_s == 0.06
    # no solve time at all when every cell is below M_R
    only = [s for s in summarize(rows[::2], "greedy") if s.scope == "activations"]
    assert only[0].mean_solve_s is None and only[0].infeasible == 2
    times: list[list[float]] = []

    def save(fig: Any, path: Path) -> None:  # what the figure plots, before it is closed
        times.extend([float(y) for _, y in c.get_offsets()] for c in fig.axes[0].collections)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "_save", save)
        assert figures.time_figure(tmp_path / "t.png", rows) is not None
        assert figures.time_figure(tmp_path / "none.png", rows[::2]) is None
    assert times == [[0.06]]


def test_solve_time_axes_label_plain_numbers_that_do_not_collide(tmp_path: Path) -> None:
    # Graph sizes 21 .. 668 ops and times 0.03 .. 0.25 s (the light suite): matplotlib's
    # default labelled the minor ticks there ("2x10^1 3x10^1 4x10^1 ..."), run together.
    sizes = (21, 21, 43, 65, 141, 170, 175, 370, 668)
    times = (0.033, 0.035, 0.049, 0.045, 0.072, 0.17, 0.098, 0.16, 0.24)
    rows = [
        _row(f"w{i}", "MR", "greedy", 0, graph_ops=ops, solve_wall_s=seconds)
        for i, (ops, seconds) in enumerate(zip(sizes, times, strict=True))
    ]
    labels: dict[str, list[str]] = {}

    def save(fig: Any, path: Path) -> None:  # the tick labels as drawn
        fig.canvas.draw()
        ax = fig.axes[0]
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            ticks = [t for t in axis.get_major_ticks() + axis.get_minor_ticks()]
            low, high = axis.get_view_interval()
            labels[name] = [
                t.label1.get_text()
                for t in ticks
                if t.label1.get_visible() and t.label1.get_text() and low <= t.get_loc() <= high
            ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(figures, "_save", save)
        figures.time_figure(tmp_path / "t.png", rows)
    assert labels["x"] == ["20", "50", "100", "200", "500"]
    assert labels["y"] == ["0.05", "0.1", "0.2"]


def test_the_default_baseline_is_greedy_as_written_else_the_only_greedy() -> None:
    """One rule for a run's specs and a report's labels: the one written ``greedy``, else
    the only one of solver greedy, else None (the first solver)."""
    from memplan.bench.summary import default_baseline

    assert default_baseline({"dnc": "dnc", "greedy[order=rpo]": "greedy", "greedy": "greedy"}) == (
        "greedy"
    )
    assert default_baseline({"ilp": "ilp", "greedy[order=rpo]": "greedy"}) == "greedy[order=rpo]"
    assert default_baseline({"greedy[order=rpo]": "greedy", "greedy[order=dfs]": "greedy"}) is None
    assert default_baseline({"ilp": "ilp", "dnc": "dnc"}) is None
    assert default_baseline({}) is None


def test_compare_shows_latency_when_a_run_asks_for_it() -> None:
    """greedy and greedy[objective=latency] showed the same row (equal traffic) and no
    latency anywhere: the objective's effect was invisible in the comparison."""
    common = {"graph_ops": 9, "mr_bytes": 1 << 17, "mp_bytes": 5 << 15, "mp_proven": True}
    accelerator = {"timing_model": "overlap"}
    rows = [
        _row("c", "MR", "greedy", 65536, options={}, latency_s=2.0742e-5,
             accelerator=accelerator, **common),
        _row("c", "MR", "greedy", 65536, options={"objective": "latency"}, latency_s=1.8432e-5,
             accelerator=accelerator, **common),
        _row("c", "MH", "greedy", None, options={}, accelerator=accelerator, **common),
    ]  # fmt: skip
    lines = _render(compare_table(rows, "greedy"))
    assert "latency (overlap) MR: greedy 20.74 us, S1 18.43 us" in lines
    assert "latency (overlap) MH: greedy –" in lines
    assert max(len(line) for line in lines) <= 80
    plain = [dict(row, options={}) for row in rows[:1]]
    assert not any("latency" in line for line in _render(compare_table(plain, "greedy")))


def test_report_leaves_out_and_names_lines_that_are_not_result_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A row without its cell fields was a KeyError traceback; a size that is not a
    # number, a ValueError; lines of garbage were skipped without a word.
    good = [_row("a", "MR", "greedy", 1000), _row("a", "MR", "ilp", 500)]
    lines = [json.dumps(r) for r in good] + [
        '{"key": "x"}',
        json.dumps({**_row("b", "MR", "greedy", 0), "non_compulsory_bytes": "12"}),
        "[1, 2]",
        "garbage",
    ]
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["bench", "report", str(tmp_path), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert "4 unreadable line(s)" in err
    assert "line 3: not a result row (no 'workload' text)" in " ".join(err.split())
    assert "'non_compulsory_bytes' is '12'" in err
    assert "2 results" in err
    summary = (tmp_path / "summary.csv").read_text()
    assert ",b," not in summary and "activations,MR,ilp" in summary


def test_report_of_a_file_says_it_needs_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"x")
    assert main(["bench", "report", str(model)]) == 2
    err = capsys.readouterr().err
    assert "is a file; give the folder of a `memplan bench` run" in err


def test_terminal_summary_counts_infeasible_cells() -> None:
    # "0/2 plans, 0/0/0" said neither optimal, timed out nor failed: no reason at all.
    rows = [
        _row(w, "512B", "greedy", None, status="infeasible", capacity_bytes=512, mr_bytes=4096)
        for w in "ab"
    ]
    lines = _render(bench_summary(summarize(rows, "greedy"), "greedy"))
    (line,) = [line for line in lines if line.split()[:2] == ["512B", "greedy"]][:1]
    assert line.split()[2:4] == ["0/2", "0/0/0/2"]
    legend = " ".join(" ".join(lines).split())
    assert "o/t/e/i: proven optimal / timed out / errors / infeasible" in legend


def test_reports_list_solvers_in_the_order_asked_not_the_order_finished(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # With --jobs 2 the workers finish out of order: --solvers greedy,ilp,dnc was
    # reported as greedy, dnc, ilp in one run and greedy, ilp, dnc in the next.
    asked = ["greedy", "ilp", "dnc"]
    planned = [["a", "activations", "MR", s] for s in asked]
    (tmp_path / "run.json").write_text(json.dumps({"planned_cells": planned}))
    finished = [_row("a", "MR", s, 100 * (i + 1)) for i, s in enumerate(asked)][::-1]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in finished))
    assert main(["bench", "report", str(tmp_path), "--no-figures"]) == 0
    summary = (tmp_path / "summary.csv").read_text().splitlines()[1:]
    assert [line.split(",")[2] for line in summary] == asked * 2  # MR, then overall
    cells = (tmp_path / "cells.csv").read_text().splitlines()[1:]
    assert [line.split(",")[3] for line in cells] == asked


def test_a_late_return_is_listed_with_the_failures() -> None:
    late = "returned after 7.2 s, past its time limit of 2 s and the 2 s a solver may take"
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "ilp", 500, over_time_limit=True, message=late),
    ]
    text = markdown_report(rows, "greedy")
    assert "## Errors, killed timeouts, late returns and contradicted bounds" in text
    assert f"- a / activations / MR / ilp: feasible: {late}" in text
