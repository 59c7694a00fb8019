"""`memplan compare`: several solvers on one model at several budgets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_bench import KEEP, RAISE, SLEEP, SPILL, TESTS_DIR, skip_graph

from memplan.accelerator import load_accelerator
from memplan.cli import main
from memplan.ir import graph_to_json
from memplan.problem import Problem


@pytest.fixture(autouse=True)
def solvers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TESTS_DIR))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "skip.json"
    path.write_text(graph_to_json(skip_graph("skip", 8, seed=4)))
    return path


def test_compare_json_rows(model: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "compare", str(model), "--solvers", f"{SPILL},{KEEP},{SLEEP},{RAISE}",
        "--scratchpad", "MR,MP", "--time-limit", "0.5", "--grace", "1", "-j", "2", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["budget"], r["solver"]) for r in rows] == [
        (b, s) for b in ("MR", "MP") for s in (SPILL, KEEP, SLEEP, RAISE)
    ]
    problem = Problem(skip_graph("skip", 8, seed=4), load_accelerator("edge-npu"))
    by = {(r["budget"], r["solver"]): r for r in rows}
    assert by["MR", SPILL]["capacity_bytes"] == problem.min_resident_bytes
    assert by["MR", SPILL]["status"] == "feasible" and by["MR", SPILL]["valid"] is True
    assert all(by[b, SLEEP]["status"] == "timeout" and by[b, SLEEP]["killed"] for b in ("MR", "MP"))
    assert "deliberate failure" in by["MP", RAISE]["message"]
    # every solver saw the same capacity for one budget
    assert len({r["capacity_bytes"] for r in rows if r["budget"] == "MP"}) == 1


def test_compare_table(model: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["compare", str(model), "--solvers", f"{SPILL},{KEEP}", "--scratchpad", "MR,2MiB"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert KEEP in out and "2MiB" in out and "MR" in out
    # at 2 MiB everything fits: keep_all has no non-compulsory traffic, 100% less than spill_all
    assert "-100.0%" in out


def test_compare_bad_input(model: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(model), "--scratchpad", "lots"]) == 2
    assert "not a budget" in capsys.readouterr().err
    assert main(["compare", str(model), "--solvers", "missing_solver"]) == 2
    assert "unknown solver" in capsys.readouterr().err
    assert main(["compare", str(model.with_name("absent.onnx"))]) == 2
    assert main(["compare", str(model), "--time-limit", "nan"]) == 2
    assert "--time-limit must be a finite number of seconds" in capsys.readouterr().err
    # 1e300 s passed, and every cell ended in an OverflowError in the worker's watchdog.
    assert main(["compare", str(model), "--time-limit", "1e300"]) == 2
    assert "--time-limit 1e+300: at most 31536000 seconds" in capsys.readouterr().err


def test_compare_no_plan_exits_1(model: Path) -> None:
    argv = ["compare", str(model), "--solvers", RAISE, "--scratchpad", "MR"]
    assert main(argv) == 1


def test_compare_two_variants_of_one_solver(model: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [
        "compare", str(model), "--solvers", f"{SPILL},{SPILL}[delay_s=0.2]", "--scratchpad",
        "MR", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["options"] for r in rows] == [{}, {"delay_s": "0.2"}]
    assert rows[0]["non_compulsory_bytes"] == rows[1]["non_compulsory_bytes"]
    assert rows[1]["solve_wall_s"] >= 0.2 and rows[1]["warmup_wall_s"] >= 0.4


def test_compare_refuses_bad_grace_and_baseline(model: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(model), "--grace", "-1"]) == 2
    assert "--grace must be a finite number of seconds >= 0" in capsys.readouterr().err
    assert main(["compare", str(model), "--solvers", SPILL, "--baseline", KEEP]) == 2
    err = capsys.readouterr().err
    assert f"--baseline {KEEP!r} is not one of --solvers" in err and "Traceback" not in err
    # A solver name that two variants share names no one baseline.
    variants = f"{SPILL}[delay_s=0.1],{SPILL}[delay_s=0.2]"
    assert main(["compare", str(model), "--solvers", variants, "--baseline", SPILL]) == 2
    err = capsys.readouterr().err
    assert f"--baseline {SPILL!r} names 2 of --solvers" in err and "Traceback" not in err


@pytest.mark.parametrize("as_json", [False, True])
def test_compare_ctrl_c_shows_the_finished_rows(
    model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, as_json: bool
) -> None:
    """Ctrl-C after the first run: its row is printed (table or JSON), exit 130."""
    import memplan.bench.harness as harness

    real = harness.run_cells_local

    def first_then_interrupt(cells, on_row, **kwargs):  # type: ignore[no-untyped-def]
        real(cells[:1], on_row, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "run_cells_local", first_then_interrupt)
    argv = ["compare", str(model), "--solvers", f"{SPILL},{KEEP}", "--scratchpad", "MR,MP"]
    assert main(argv + (["--json"] if as_json else [])) == 130
    captured = capsys.readouterr()
    assert "interrupted; 1 of 4 runs finished" in captured.err
    if as_json:
        rows = json.loads(captured.out)
        assert [(r["budget"], r["solver"]) for r in rows] == [("MR", SPILL)]
    else:
        assert SPILL in captured.out and KEEP not in captured.out.split("capacity")[0]


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--solvers", f"{SPILL}[delay_s=0.1,delay_s=0.2]"], "option 'delay_s' is given twice"),
        (["--solvers", f"{SPILL},,{KEEP}"], "has an empty item"),
        (["--scratchpad", "MR,,MP"], "--scratchpad 'MR,,MP' has an empty item"),
        # Repeats were merged silently, where rl evaluate refused them.
        (["--solvers", f"{SPILL}, {SPILL}"], f"'{SPILL}' is given twice; give each once"),
        (["--scratchpad", "MR,MP,MR"], "--scratchpad 'MR,MP,MR': 'MR' is given twice"),
        # One budget spelt twice ran every solver twice at it, as two budgets.
        (["--scratchpad", "MR,mr"], "'mr' is the same budget as 'MR'; give it once"),
        (["--scratchpad", "MP,1*MP"], "'1*MP' is the same budget as 'MP'"),
        (["--scratchpad", "512KiB,524288"], "'524288' is the same budget as '512KiB'"),
    ],
)
def test_compare_refuses_repeats_and_empty_items(
    model: Path, capsys: pytest.CaptureFixture, flags: list[str], fragment: str
) -> None:
    assert main(["compare", str(model), *flags]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_more_jobs_than_cpus_is_warned(
    model: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -j 2 on one CPU halved each solve's work within its wall-clock limit, silently.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    argv = ["compare", str(model), "--solvers", SPILL, "--scratchpad", "MR", "--json"]
    assert main([*argv, "--time-limit", "5", "-j", "2"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "--jobs 2 runs 2 solves at once on 1 CPU:" in err
    assert main([*argv, "--time-limit", "5", "-j", "1"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_compare_shows_its_progress_on_stderr_unless_quiet(
    model: Path, capsys: pytest.CaptureFixture
) -> None:
    # 4 solvers x 3 budgets at the default 60 s ran up to 12 minutes without a word.
    argv = ["compare", str(model), "--solvers", f"{SPILL},{KEEP}", "--scratchpad", "MR,MP"]
    argv += ["--time-limit", "5", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 4  # standard output holds the JSON alone
    assert "compare" in err and "4/4" in err
    assert main([*argv, "-q"]) == 0
    assert "4/4" not in capsys.readouterr().err
