"""memplan optimize talks during long work: header first, a live line, honest gaps."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import onnx
import pytest
from cli_models import run_cli, small_model
from rich.console import Console

import memplan.cli.progress as progress
import memplan.registry
from memplan.cli import EXIT_BAD_INPUT, EXIT_OK
from memplan.cli.optimize import DEFAULT_TIME_LIMIT_S, SEED_MAX
from memplan.cli.progress import LiveLine, progress_text
from memplan.problem import Problem
from memplan.registry import PluginKind
from memplan.solver import Budget, Progress, Status, make_result, make_solver


@dataclass(frozen=True)
class SlowReportingSolver:
    """Reports an incumbent and a bound, works for a while, returns the greedy's plan."""

    name: ClassVar[str] = "reporting-test"
    seed: int = field(default=0, metadata={"help": "unused"})
    work_s: float = field(default=0.6, metadata={"help": "seconds to pretend to work"})

    def solve(self, problem: Problem, budget: Budget):
        greedy = make_solver("greedy").solve(problem, Budget())
        assert greedy.plan is not None and greedy.cost is not None
        budget.report_progress(message="warm start")
        budget.report_progress(greedy.cost.non_compulsory_bytes, 4096, "search")
        deadline = time.monotonic() + self.work_s
        while time.monotonic() < deadline and not budget.should_stop():
            time.sleep(0.01)
        return make_result(self, problem, Status.FEASIBLE, greedy.plan, budget)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "small.onnx"
    onnx.save(small_model(), path)
    return path


def test_progress_text_never_shows_a_gap_without_a_bound():
    assert progress_text(None, 1.25, 60) == "solving 1.2 s of 60 s: no plan yet, bound –, gap –"
    no_bound = Progress(2.0, 16384, None, "warm start")
    assert progress_text(no_bound, 2.0, None) == (
        "solving 2.0 s: best plan 16.00 KiB non-compulsory, bound –, gap – (warm start)"
    )
    both = Progress(3.0, 16384, 4096, "")
    assert progress_text(both, 3.0, 10) == (
        "solving 3.0 s of 10 s: best plan 16.00 KiB non-compulsory, bound 4.00 KiB, gap 75.0%"
    )
    assert "gap 0.0%" in progress_text(Progress(1.0, 4096, 4096, ""), 1.0, None)


def test_budget_reports_progress_to_its_callback():
    seen: list[Progress] = []
    budget = Budget(time_limit_s=5, on_progress=seen.append)
    budget.report_progress(100, 50, "phase")
    assert len(seen) == 1 and seen[0].incumbent_bytes == 100 and seen[0].bound_bytes == 50
    assert seen[0].message == "phase" and 0 <= seen[0].elapsed_s < 5
    Budget().report_progress(1, 1)  # without a callback: nothing happens


def test_live_line_shows_after_the_delay_on_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with LiveLine(console, 5.0, delay_s=0.05, refresh_s=0.02) as live:
        live(Progress(0.1, 2048, None, ""))
        time.sleep(0.3)
    assert "best plan 2.00 KiB non-compulsory, bound –, gap –" in buffer.getvalue()
    quiet = io.StringIO()
    with LiveLine(Console(file=quiet, force_terminal=True), 5.0, delay_s=1.0):
        pass  # a solve shorter than the delay shows nothing
    assert quiet.getvalue() == ""


def test_optimize_prints_header_then_live_lines_in_a_log(model_path, capsys, monkeypatch):
    monkeypatch.setitem(
        memplan.registry._registered[PluginKind.SOLVER], "reporting-test", SlowReportingSolver
    )
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.2)
    code, out, err = run_cli(
        capsys, "optimize", model_path, "--solver", "reporting-test", "--scratchpad", "MR"
    )
    assert code == EXIT_OK
    header, _, result = out.partition("status")
    for words in (
        "model        small: 7 ops",
        "scratchpad   32.00 KiB",
        "solver       reporting-test",
    ):
        assert words in header
    assert f"time limit   {DEFAULT_TIME_LIMIT_S:g} s" in header
    assert (
        "solving" in err and "best plan 16.00 KiB non-compulsory, bound 4.00 KiB, gap 75.0%" in err
    )
    assert (
        "lower bound             – (none proven)" in result
        and "gap                     –" in result
    )
    assert "None" not in out + err and "heuristic" not in out


def test_optimize_text_fits_80_columns_and_map_has_a_legend(model_path, capsys):
    code, out, _ = run_cli(capsys, "optimize", model_path, "--scratchpad", "MR", "--map")
    assert code == EXIT_OK
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "legend: one row per residency" in out and "'L' loaded from DRAM" in out
    assert "'S' stored to DRAM" in out


def test_default_time_limit_and_none(model_path, capsys):
    code, out, _ = run_cli(capsys, "optimize", model_path, "--json")
    assert code == EXIT_OK and json.loads(out)["time_limit_s"] == DEFAULT_TIME_LIMIT_S
    code, out, _ = run_cli(capsys, "optimize", model_path, "--json", "--time-limit", "none")
    assert code == EXIT_OK and json.loads(out)["time_limit_s"] is None
    code, _, err = run_cli(capsys, "optimize", model_path, "--time-limit", "soon")
    assert code == EXIT_BAD_INPUT and "not a number of seconds" in err


@pytest.mark.parametrize("solver", ["greedy", "ilp"])
@pytest.mark.parametrize(
    ("seed", "ok"), [("0", True), (str(SEED_MAX), True), (str(SEED_MAX + 1), False), ("-1", False)]
)
def test_seed_range_is_the_same_for_every_solver(model_path, capsys, solver, seed, ok):
    if solver == "ilp":
        pytest.importorskip("ortools")
    argv = ["optimize", model_path, "--solver", solver, "--scratchpad", "MP", "--json"]
    code, _, err = run_cli(capsys, *argv, "--option", f"seed={seed}")
    if ok:
        assert code == EXIT_OK, err
    else:
        assert code == EXIT_BAD_INPUT and f"from 0 to {SEED_MAX}" in err
