"""Rows you can trust: warm-up timed apart, versions checked, a proven M_P reruns its cells."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from test_bench import KEEP, SPILL, config, write_suite

from memplan.accelerator import load_accelerator
from memplan.bench import worker
from memplan.bench.cells import CellSpec
from memplan.bench.harness import (
    build_cells,
    execute_bench,
    load_results,
    load_workloads,
    prepare_bench,
)
from memplan.bench.worker import run_cell, solve_spec
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


LIE = "fake_solvers:LyingSolver"


def _cells(tmp_path: Path, solver: str, time_limit_s: float = 5) -> list[CellSpec]:
    """The MR cell of a one-workload suite for ``solver``."""
    workloads, _ = load_workloads([str(write_suite(tmp_path / "g", 1))])
    return build_cells(
        workloads,
        scopes=[Scope.ACTIVATIONS],
        budgets=["MR"],
        solvers=[solver],
        options={},
        time_limit_s=time_limit_s,
        accelerator=load_accelerator("edge-npu"),
    )


def _one_cell(tmp_path: Path, solver: str, time_limit_s: float = 5) -> dict[str, Any]:
    """The spec of one MR cell of a small suite for ``solver``."""
    (cell,) = _cells(tmp_path, solver, time_limit_s)
    return cell.to_dict()


@pytest.mark.parametrize(
    ("lie", "says"),
    [
        ("optimal", "claims OPTIMAL, but its lower bound is none"),
        ("bound", "is above its own plan's"),
        ("infeasible", "claims INFEASIBLE, yet returned a plan"),
        ("none", "returned None, not a SolveResult"),
    ],
)
def test_a_claim_the_plan_does_not_back_is_an_error_not_a_result(
    tmp_path: Path, lie: str, says: str
) -> None:
    # A plug-in that bypasses make_result: its OPTIMAL without a bound was counted as
    # proven, its bound above its plan went into the gaps, its INFEASIBLE with a plan
    # was counted as infeasible, and a None was a worker traceback.
    outcome = solve_spec({**_one_cell(tmp_path, f"{LIE}[lie={lie}]"), "save_plan": True})
    assert outcome["status"] == "error", outcome
    assert says in outcome["message"]
    assert outcome["lower_bound_bytes"] is None and outcome["gap"] is None
    assert outcome["solve_wall_s"] is not None  # it did solve: its time is kept
    if lie != "none":  # nor does its saved plan file carry the claim
        plan = outcome["plan"]
        assert plan["status"] == "feasible" and plan["lower_bound_bytes"] is None
        assert says in plan["message"]


def test_the_solve_time_is_the_harness_clock_not_the_solver_report(tmp_path: Path) -> None:
    # The solver's own wall_s stopped before it slept 0.6 s: the row said ~0.01 s.
    outcome = solve_spec(_one_cell(tmp_path, f"{LIE}[lie=clock,sleep_s=0.6]"))
    assert outcome["status"] == "feasible" and outcome["valid"] is True
    assert outcome["solve_wall_s"] >= 0.6
    assert outcome["solver_wall_s"] < 0.6  # what the solver reported, kept beside it


def test_a_solve_that_returns_after_its_time_limit_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.6 s against a 0.3 s limit and (here) 0.1 s to stop, within the process's grace:
    # the plan is kept, and its time and a note say that it overran (its own report
    # said ~0.01 s).
    monkeypatch.setattr(worker, "RETURN_GRACE_S", 0.1)
    late = solve_spec(_one_cell(tmp_path, f"{LIE}[lie=clock,sleep_s=0.6]", time_limit_s=0.3))
    assert late["has_plan"] is True and late["solve_wall_s"] >= 0.6
    assert late["over_time_limit"] is True and late["status"] == "feasible"
    assert "past its time limit of 0.3 s and the 0.1 s" in late["message"]
    # within the limit and the time to stop: nothing said
    on_time = solve_spec(_one_cell(tmp_path, f"{LIE}[lie=clock,sleep_s=0.2]", time_limit_s=0.3))
    assert on_time["over_time_limit"] is False and "time limit" not in on_time["message"]


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


def test_odd_stats_are_kept_as_text_and_a_dying_worker_says_its_last_word(
    tmp_path: Path,
) -> None:
    # Stats with a tuple key crashed the worker when it wrote its result (the plan was
    # lost); a worker that died showed the head of its output, cut when displayed.
    (cell,) = _cells(tmp_path, f"{LIE}[lie=stats]")
    row = run_cell(cell, grace_s=5)
    assert row is not None and row["status"] == "feasible" and row["has_plan"]
    assert row["stats"]["kept"] == 7 and row["stats"]["(1, 2)"].startswith("<object")
    (dying,) = _cells(tmp_path, f"{LIE}[lie=exit]")
    row = run_cell(dying, grace_s=5)
    assert row is not None and row["status"] == "error"
    assert row["message"].startswith(
        "worker exited with code 5 without a result: fatal: the licence server is gone; output:"
    )
