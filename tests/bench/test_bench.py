"""Tests of the benchmark harness: cells, keys, results file, resume, kill -9, reports, CLI."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memplan.accelerator import load_accelerator
from memplan.bench.cells import TIMING_FIELDS
from memplan.bench.harness import (
    BenchConfig,
    ResultsWriter,
    build_cells,
    execute_bench,
    load_results,
    load_workloads,
    prepare_bench,
    read_rows,
)
from memplan.budgets import heuristic_min_peak
from memplan.cli import main
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.ir import Graph, GraphBuilder, TensorKind, graph_from_json, graph_to_json
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.validate import validate

TESTS_DIR = Path(__file__).resolve().parent
SPILL = "fake_solvers:SpillAllSolver"
KEEP = "fake_solvers:KeepAllSolver"
SLEEP = "fake_solvers:SleepForeverSolver"
RAISE = "fake_solvers:RaisingSolver"
CRASH = "fake_solvers:CrashingSolver"
CHEAT = "fake_solvers:CheatingSolver"


@pytest.fixture(autouse=True)
def solvers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``fake_solvers`` importable here and (through sys.path) in worker processes."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))


def skip_graph(name: str, num_ops: int, seed: int) -> Graph:
    """A chain whose ops also read an earlier tensor (long skips): M_R < M_P, spills needed."""
    rng = random.Random(seed)
    g = GraphBuilder(name)
    x = g.tensor("x", 1024 * rng.randint(1, 4), TensorKind.INPUT)
    produced = [x]
    for i in range(num_ops):
        out = g.tensor(f"t{i}", 512 * rng.randint(1, 8), is_output=i == num_ops - 1)
        inputs = [produced[-1]]
        if len(produced) > 2 and rng.random() < 0.6:
            inputs.append(produced[rng.randrange(0, len(produced) - 2)])
        weight = g.tensor(f"w{i}", 256 * rng.randint(1, 4), TensorKind.WEIGHT)
        g.op(f"op{i}", "Conv", [*inputs, weight], [out], macs=1000 * (i + 1))
        produced.append(out)
    return g.build()


def write_suite(folder: Path, count: int = 3) -> Path:
    """Write ``count`` small graph JSON files into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        graph = skip_graph(f"skip{i}", 6 + 2 * i, seed=i)
        (folder / f"skip{i}.json").write_text(graph_to_json(graph))
    return folder


def config(suite: Path, out: Path, solvers: tuple[str, ...], **kwargs: Any) -> BenchConfig:
    values: dict[str, Any] = {
        "suite": (str(suite),),
        "solvers": solvers,
        "budgets": ("MR", "MH", "MP"),
        "scopes": (Scope.ACTIVATIONS,),
        "out_dir": out,
        "accelerator": load_accelerator("edge-npu"),
        "time_limit_s": 10.0,
        "grace_s": 10.0,
    }
    values.update(kwargs)
    return BenchConfig(**values)


def strip_timing(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}


# --------------------------------------------------------------------------- keys and cells
def test_budgets_are_resolved_once_per_workload_and_scope(tmp_path: Path) -> None:
    workloads, failures = load_workloads([str(write_suite(tmp_path / "g", 2))])
    assert not failures and [w.name for w in workloads] == ["skip0", "skip1"]
    acc = load_accelerator("edge-npu")
    cells = build_cells(
        workloads,
        scopes=[Scope.ACTIVATIONS, Scope.ALL],
        budgets=["MR", "MH", "MP", "8KiB"],
        solvers=[SPILL, KEEP],
        options={},
        time_limit_s=5,
        accelerator=acc,
    )
    assert len(cells) == 2 * 2 * 4 * 2
    assert len({c.key for c in cells}) == len(cells)
    for workload in workloads:
        for scope in (Scope.ACTIVATIONS, Scope.ALL):
            problem = Problem(workload.graph, acc, scope)
            mr, mp = problem.min_resident_bytes, heuristic_min_peak(problem).value_bytes
            mine = [c for c in cells if c.workload == workload.name and c.scope == scope.value]
            by_budget: dict[str, set[int]] = {}
            for cell in mine:
                by_budget.setdefault(cell.budget, set()).add(cell.capacity_bytes)
                assert (cell.mr_bytes, cell.mp_bytes) == (mr, mp)
                assert cell.graph_ops == workload.graph.num_ops
            assert all(len(caps) == 1 for caps in by_budget.values())  # same for each solver
            assert by_budget["MR"] == {mr}
            assert by_budget["MP"] == {mp // 64 * 64}
            assert by_budget["MH"] == {int((mr + mp) / 2) // 64 * 64}
            assert by_budget["8KiB"] == {8192}
    assert graph_from_json(cells[0].graph_json).num_ops == workloads[0].graph.num_ops


def test_unknown_suite_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a model file"):
        load_workloads(["no-such-suite-or-file"])


@pytest.mark.parametrize("entry", ["", "  "])
def test_an_empty_suite_entry_is_a_config_error(entry: str) -> None:
    """Path('') is the current folder: --suite '' loaded every model file there."""
    with pytest.raises(ConfigError, match="empty entry"):
        load_workloads(["light_squeezenet", entry])


# --------------------------------------------------------------------------- results file
def test_results_file_skips_a_line_cut_short_and_appends_after_it(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.append({"key": "a", "status": "feasible"})
    with open(path, "a") as handle:
        handle.write('{"key": "b", "sta')  # a crash in the middle of a line
    rows, bad = read_rows(path)
    assert [r["key"] for r in rows] == ["a"] and bad == 1
    with ResultsWriter(path) as writer:
        writer.append({"key": "c", "status": "error"})
    rows, bad = read_rows(path)
    assert [r["key"] for r in rows] == ["a", "c"] and bad == 1


# --------------------------------------------------------------------------- running cells
def test_hung_raising_crashing_and_cheating_solvers_are_recorded(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 1)
    cfg = config(
        suite,
        tmp_path / "out",
        (SPILL, SLEEP, RAISE, CRASH, CHEAT),
        budgets=("MR",),
        time_limit_s=0.5,
        grace_s=1.5,
        jobs=2,
        save_plans=True,
    )
    run = prepare_bench(cfg)
    assert len(run.pending) == 5
    started = time.monotonic()
    assert execute_bench(run) == 5
    assert time.monotonic() - started < 30
    rows = {r["solver"]: r for r in load_results(tmp_path / "out")}
    assert set(rows) == {SPILL, SLEEP, RAISE, CRASH, CHEAT}
    sleep = rows[SLEEP]
    assert sleep["status"] == "timeout" and sleep["killed"] is True
    assert "killed after 2 s" in sleep["message"]
    assert 2.0 <= sleep["cell_wall_s"] < 6.0
    assert rows[RAISE]["status"] == "error"
    assert "RuntimeError: deliberate failure on skip0" in rows[RAISE]["message"]
    assert rows[CRASH]["status"] == "error" and "SIGKILL" in rows[CRASH]["message"]
    assert rows[CHEAT]["status"] == "error" and rows[CHEAT]["valid"] is False
    assert "invalid plan" in rows[CHEAT]["message"]
    good = rows[SPILL]
    assert good["status"] == "feasible" and good["valid"] is True and not good["killed"]
    assert good["worker_maxrss_bytes"] > 1 << 20
    # the plan written beside the results re-validates and scores the same
    graph = graph_from_json((suite / "skip0.json").read_text())
    problem = Problem(graph, load_accelerator("edge-npu").with_capacity(good["capacity_bytes"]))
    saved = json.loads((tmp_path / "out" / good["plan_file"]).read_text())
    assert saved["format"] == "memplan.plan"  # a plan file, as memplan optimize -o writes
    plan = Plan.from_dict(saved["plan"], graph)
    assert validate(problem, plan) == []
    cost = evaluate(problem, plan)
    assert cost.non_compulsory_bytes == good["non_compulsory_bytes"] > 0
    assert cost.peak_bytes == good["peak_bytes"] <= good["capacity_bytes"]
    assert good["capacity_bytes"] == good["mr_bytes"]
    for row in rows.values():
        assert (row["graph_ops"], row["graph_tensors"]) == (graph.num_ops, graph.num_tensors)


def test_rerun_skips_finished_cells_and_retry_failed_reruns_errors(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 2)
    cfg = config(suite, tmp_path / "out", (SPILL, RAISE), budgets=("MR", "MP"), jobs=2)
    run = prepare_bench(cfg)
    assert len(run.cells) == len(run.pending) == 8
    assert execute_bench(run) == 8
    again = prepare_bench(cfg)
    assert again.pending == [] and execute_bench(again) == 0
    retry = prepare_bench(
        config(suite, tmp_path / "out", (SPILL, RAISE), budgets=("MR", "MP"), retry_failed=True)
    )
    assert {c.solver for c in retry.pending} == {RAISE} and len(retry.pending) == 4
    # a changed option is a different cell
    other = prepare_bench(
        config(suite, tmp_path / "out", (SPILL,), budgets=("MR",), options={SPILL: {"seed": "1"}})
    )
    assert len(other.pending) == 2


def _bench_argv(suite: Path, out: Path) -> list[str]:
    return [
        "bench", "--suite", str(suite), "--solvers", f"{SPILL},{KEEP}",
        "--option", f"{SPILL}.delay_s=0.3", "--budgets", "MR,MH,MP", "--time-limit", "20",
        "--baseline", SPILL, "-o", str(out), "--quiet", "--no-figures",
    ]  # fmt: skip


def test_kill_minus_9_midway_then_rerun_gives_the_uninterrupted_results(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 3)
    out = tmp_path / "killed"
    code = "import sys; from memplan.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *_bench_argv(suite, out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 4:
            break
        assert proc.poll() is None, "the bench ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial, _ = read_rows(results)
    assert 4 <= len(partial) < 18
    assert main(_bench_argv(suite, out)) == 0
    resumed = load_results(out)
    rows, _ = read_rows(results)
    assert len(rows) == len(resumed) == 18  # nothing ran twice
    assert main(_bench_argv(suite, tmp_path / "clean")) == 0
    clean = load_results(tmp_path / "clean")
    assert {r["key"]: strip_timing(r) for r in resumed} == {
        r["key"]: strip_timing(r) for r in clean
    }


# --------------------------------------------------------------------------- CLI
def test_cli_bench_runs_resumes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    suite = write_suite(tmp_path / "g", 2)
    out = tmp_path / "out"
    argv = [
        "bench", "--suite", str(suite), "--solvers", f"{SPILL},{KEEP}", "--budgets", "MR,MP",
        "--scope", "both", "--baseline", SPILL, "-o", str(out), "--quiet", "-j", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    assert len(load_results(out)) == 2 * 2 * 2 * 2
    assert (out / "figures" / "traffic_all_MP.png").exists()
    captured = capsys.readouterr()
    assert "16 to run" in captured.err and KEEP in captured.out
    # summary.md, summary.csv, cells.csv and the first of 5 figures named, then the rest
    assert "and 4 more figures" in " ".join(captured.err.split())  # was "and 4 figures"
    assert main(argv) == 0
    assert "0 to run" in capsys.readouterr().err
    (out / "summary.md").unlink()
    assert main(["bench", "report", str(out), "--baseline", SPILL, "--no-figures"]) == 0
    assert (out / "summary.md").exists()
    (out / "cells.csv").unlink()
    assert main(["bench", "-o", str(out), "--report-only", "--no-figures"]) == 0
    assert (out / "cells.csv").read_text().count("\n") == 17
    capsys.readouterr()
    # A baseline that did not run was taken, and every change showed "–".
    assert main(["bench", "report", str(out), "--baseline", "nosuch", "--no-figures"]) == 2
    assert f"--baseline 'nosuch' is none of the solvers in {out} (" in capsys.readouterr().err


def test_cli_bench_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    suite = write_suite(tmp_path / "g", 1)
    assert main(["bench", "--suite", str(suite), "--solvers", "nope", "-o", str(tmp_path)]) == 2
    assert "unknown solver 'nope'" in capsys.readouterr().err
    argv = ["bench", "--suite", str(suite), "--solvers", SPILL, "--budgets", "huge", "-o"]
    assert main([*argv, str(tmp_path / "o")]) == 2
    assert "not a budget" in capsys.readouterr().err
    # A repeated solver or budget was merged silently; rl evaluate refused it.
    for flag, value, repeated in [
        ("--solvers", f"{SPILL},{SPILL}", SPILL),
        ("--budgets", "MR,MR", "MR"),
    ]:
        argv = ["bench", "--suite", str(suite), flag, value, "-o"]
        if flag != "--solvers":
            argv[3:3] = ["--solvers", SPILL]
        assert main([*argv, str(tmp_path / "o")]) == 2
        assert f"{flag} '{value}': '{repeated}' is given twice" in capsys.readouterr().err
    # Given in two flags, the lists join, and a repeat across them is refused the same way.
    argv = ["bench", "--suite", str(suite), "--solvers", SPILL, "--solvers", SPILL, "-o"]
    assert main([*argv, str(tmp_path / "o")]) == 2
    assert f"'{SPILL}' is given twice" in capsys.readouterr().err
    assert main(["bench", "report", str(tmp_path / "missing")]) == 2
    capsys.readouterr()
    # NaN passes "<= 0" checks and would never time out: every duration flag refuses it.
    for flag, value in [
        ("--time-limit", "nan"),
        ("--grace", "nan"),
        ("--warmup-limit", "inf"),
        ("--exact-mp", "nan"),
    ]:
        out = tmp_path / f"o{flag}"
        assert (
            main(["bench", "--suite", str(suite), "--solvers", SPILL, flag, value, "-o", str(out)])
            == 2
        )
        assert f"{flag} must be a finite number of seconds" in capsys.readouterr().err
        assert not out.exists()
    # Each of these made the results folder (or ran every cell) before it was refused.
    for flags, message in [
        (["-j", "0"], "--jobs must be at least 1, got 0"),
        (["--dask", "tcp://127.0.0.1"], "--dask 'tcp://127.0.0.1': not an address"),
        (["--dask", "bogus"], "give local or a scheduler address with its port"),
        (["--baseline", "nosuch"], "--baseline 'nosuch' is not one of --solvers"),
        (["--suite", str(suite), str(suite)], f"'{suite}' is given twice; give each once"),
    ]:
        out = tmp_path / "o-early"
        assert (
            main(["bench", "--suite", str(suite), "--solvers", SPILL, *flags, "-o", str(out)]) == 2
        )
        assert message in capsys.readouterr().err
        assert not out.exists()
    out = tmp_path / "o-read-only-report"
    out.mkdir()
    (out / "summary.md").write_text("")
    (out / "summary.md").chmod(0o444)
    assert main(["bench", "--suite", str(suite), "--solvers", SPILL, "-o", str(out)]) == 2
    assert "summary.md: is read-only (mode 0444)" in capsys.readouterr().err
    assert not (out / "results.jsonl").exists()
    out = tmp_path / "o-huge"
    assert main(["bench", "--suite", str(suite), "--time-limit", "1e300", "-o", str(out)]) == 2
    assert "at most 31536000 seconds (a year)" in capsys.readouterr().err
    assert not out.exists()


def test_greedy_cells_are_valid(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 1)
    run = prepare_bench(config(suite, tmp_path / "out", ("greedy", SPILL), budgets=("MR", "MP")))
    execute_bench(run)
    rows = load_results(tmp_path / "out")
    greedy = [r for r in rows if r["solver"] == "greedy"]
    assert len(greedy) == 2 and all(r["valid"] and r["status"] != "error" for r in greedy)
    assert all(r["peak_bytes"] <= r["capacity_bytes"] for r in greedy)


def _start_bench(
    suite: Path, out: Path, solver: str, time_limit: str, scratch: Path | None = None
) -> subprocess.Popen:
    """``memplan bench`` in a process of its own; ``scratch``: its temp folder (TMPDIR)."""
    code = "import sys; from memplan.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), *sys.path])}
    if scratch is not None:
        env["TMPDIR"] = str(scratch)
    argv = [
        "bench", "--suite", str(suite), "--solvers", solver, "--budgets", "MR",
        "--time-limit", time_limit, "-o", str(out), "--quiet", "--no-figures",
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for_worker(proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = _children(proc.pid)
        if workers:
            time.sleep(0.5)  # let it start solving
            return workers[0]
        time.sleep(0.05)
    raise AssertionError("no worker process started")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_ctrl_c_kills_running_workers_and_exits_130(tmp_path: Path, signum: int) -> None:
    """SIGTERM ended the bench at once, silently, leaving the cell's scratch folder."""
    suite = write_suite(tmp_path / "g", 1)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = _start_bench(suite, tmp_path / "out", SLEEP, "60", scratch)
    worker = _wait_for_worker(proc)
    assert list(scratch.glob("memplan-cell-*"))
    started = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 10  # did not wait for the 60 s time limit
    assert b"run the same command again to resume" in err
    assert not _alive(worker)
    assert read_rows(tmp_path / "out" / "results.jsonl")[0] == []  # unfinished: not recorded
    assert not list(scratch.glob("memplan-cell-*"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_worker_ends_itself_when_the_bench_is_killed(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 1)
    proc = _start_bench(suite, tmp_path / "out", SLEEP, "60")
    worker = _wait_for_worker(proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "an orphaned worker kept running after kill -9 of the bench"


def test_bench_suite_help_names_every_catalog_suite(capsys: pytest.CaptureFixture) -> None:
    from memplan.graphs.catalog import suite_names

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    listed = text.partition("a catalog suite (")[2].partition(")")[0].split(", ")
    assert set(listed) == set(suite_names())  # 'large' was missing
