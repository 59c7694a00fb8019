"""Rows you can trust: warm-up timed apart, versions checked, a proven M_P reruns its cells."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_bench import KEEP, SPILL, config, write_suite

from memplan.accelerator import load_accelerator
from memplan.bench.harness import (
    build_cells,
    execute_bench,
    load_results,
    load_workloads,
    prepare_bench,
)
from memplan.bench.worker import solve_spec
from memplan.budgets import PeakEstimate, heuristic_min_peak
from memplan.cli import main
from memplan.min_peak import store
from memplan.problem import Problem, Scope

HANG = "fake_solvers:HangingWarmUpSolver"


def test_warm_up_is_timed_apart_from_the_solve(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 1)
    cfg = config(suite, tmp_path / "out", (f"{SPILL}[delay_s=0.4]", "greedy"), budgets=("MR",))
    assert execute_bench(prepare_bench(cfg)) == 2
    rows = {r["solver"]: r for r in load_results(tmp_path / "out")}
    spill, greedy = rows[SPILL], rows["greedy"]
    # two warm-up solves of 0.4 s each before the clock started, then one timed solve
    assert spill["warmup"] == greedy["warmup"] == "two solves of a 4-op problem"
    assert spill["warmup_wall_s"] >= 0.8 > spill["solve_wall_s"] >= 0.4
    for row in (spill, greedy):
        assert row["status"] != "error" and row["valid"] and row["import_wall_s"] > 0
        assert row["cell_wall_s"] > row["import_wall_s"] + row["warmup_wall_s"]


def test_a_solver_hanging_in_its_warm_up_is_killed_before_its_clock_starts(
    tmp_path: Path,
) -> None:
    suite = write_suite(tmp_path / "g", 1)
    cfg = config(
        suite, tmp_path / "out", (HANG,), budgets=("MR",), time_limit_s=60, warmup_limit_s=3
    )
    assert execute_bench(prepare_bench(cfg)) == 1
    (row,) = load_results(tmp_path / "out")
    assert row["status"] == "timeout" and row["killed"] is True
    assert "killed after 3 s of start-up and warm-up" in row["message"]
    assert 3.0 <= row["cell_wall_s"] < 10.0  # not the 60 s time limit


def test_a_worker_refuses_a_solver_of_another_version(tmp_path: Path) -> None:
    workloads, _ = load_workloads([str(write_suite(tmp_path / "g", 1))])
    (cell,) = build_cells(
        workloads,
        scopes=[Scope.ACTIVATIONS],
        budgets=["MR"],
        solvers=[SPILL],
        options={},
        time_limit_s=5,
        accelerator=load_accelerator("edge-npu"),
    )
    assert solve_spec(cell.to_dict())["status"] == "feasible"
    stale = dataclasses.replace(cell, solver_version="fake_solvers (not installed)+src.0")
    outcome = solve_spec(stale.to_dict())
    assert outcome["status"] == "error" and outcome["has_plan"] is False
    assert "its source changed during the run" in outcome["message"]


def _prove_smaller_mp(suite: Path) -> None:
    """Cache a "proven" M_P below the heuristic's for every workload of ``suite``."""
    workloads, _ = load_workloads([str(suite)])
    for workload in workloads:
        problem = Problem(workload.graph, load_accelerator("edge-npu"), Scope.ACTIVATIONS)
        value = heuristic_min_peak(problem).value_bytes - 1024
        store(problem, PeakEstimate(value, True, "test proof"))


def test_a_proven_mp_reruns_only_its_cells_and_stale_rows_are_not_merged(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    both = config(suite, out, (SPILL, KEEP), budgets=("MR", "MP"))
    assert execute_bench(prepare_bench(both)) == 4
    _prove_smaller_mp(suite)
    # greedy alone after the proof: only its MP cell is new (MR does not use M_P)
    spill_only = prepare_bench(config(suite, out, (SPILL,), budgets=("MR", "MP")))
    assert [(c.solver, c.budget, c.mp_proven) for c in spill_only.pending] == [(SPILL, "MP", True)]
    assert execute_bench(spill_only) == 1
    # KEEP's MP row is from the old capacity: the report refuses to put it beside SPILL's
    capsys.readouterr()
    assert main(["bench", "report", str(out), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot merge results: cell skip0" in err
    # the same command for both solvers reruns KEEP's MP cell, and the report merges
    rerun = prepare_bench(both)
    assert [(c.solver, c.budget) for c in rerun.pending] == [(KEEP, "MP")]
    assert execute_bench(rerun) == 1
    assert main(["bench", "report", str(out), "--no-figures"]) == 0
    summary = (out / "summary.md").read_text()
    assert "M_P proven for 1 of 1 (workload, scope) pairs" in summary
