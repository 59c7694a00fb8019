"""Interrupted runs: Dask workers leave Ctrl-C to the bench; partial reports say so."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_bench import KEEP, SPILL, TESTS_DIR, config, write_suite
from test_bench_report import _render, _row

from memplan.bench import dask_cluster
from memplan.bench.harness import execute_bench, prepare_bench
from memplan.bench.report import markdown_report, progress_line, write_reports
from memplan.bench.runrecord import PLANNED_KEY, planned_cells, run_record
from memplan.bench.summary import summarize
from memplan.bench.terminal import bench_summary
from memplan.cli import main


@pytest.fixture(autouse=True)
def solvers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``fake_solvers`` importable here and (through sys.path) in worker processes."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))


@pytest.fixture
def restore_sigint() -> Iterator[None]:
    """Put this process's SIGINT handler back after a test that changes it."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


# --------------------------------------------------------------------------- Dask and Ctrl-C
@pytest.mark.usefixtures("restore_sigint")
def test_the_dask_worker_preload_ignores_sigint() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    dask_cluster.dask_setup(object())
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.usefixtures("restore_sigint")
def test_local_cluster_workers_start_with_sigint_ignored_and_the_preload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cluster's processes are spawned while SIGINT is ignored (a spawned Python
    keeps it ignored) and get the preload; the parent's handler comes back after."""
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    class FakeCluster:
        def __init__(self, **kwargs: Any) -> None:
            seen["kwargs"] = kwargs
            seen["sigint"] = signal.getsignal(signal.SIGINT)

        def close(self) -> None:
            seen["closed"] = True

    def client(cluster: Any) -> Any:
        raise Stop

    fake = SimpleNamespace(LocalCluster=FakeCluster, Client=client)
    monkeypatch.setattr(dask_cluster, "_import_distributed", lambda: fake)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(Stop):
        dask_cluster.run_cells_dask([object()], lambda row: None, address="local")  # type: ignore[list-item]
    assert seen["sigint"] is signal.SIG_IGN
    assert seen["kwargs"]["preload"] == [dask_cluster.WORKER_PRELOAD]
    assert seen["closed"] is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_real_local_cluster_worker_ignores_sigint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preload module is importable by a Dask worker process and takes effect there."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            preload=[dask_cluster.WORKER_PRELOAD],
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        handlers = client.run(lambda: signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
    assert list(handlers.values()) == [True]


# --------------------------------------------------------------------------- partial reports
def test_run_json_records_the_planned_cells_and_keeps_them_on_resume(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 2)
    out = tmp_path / "out"
    run = prepare_bench(config(suite, out, (SPILL,), budgets=("MR",)))
    assert len(planned_cells(out) or []) == len(run.cells) == 2
    execute_bench(run)
    prepare_bench(config(suite, out, (SPILL, KEEP), budgets=("MR", "MP")))
    planned = planned_cells(out) or []
    assert len(planned) == 2 * 2 * 2
    assert ("skip0", "activations", "MR", SPILL) in planned
    # Earlier planned cells survive a resume that asks for fewer.
    record = run_record({"suite": []}, [], {PLANNED_KEY: [["w", "all", "MR", "x"]]}, [])
    assert record[PLANNED_KEY] == [["w", "all", "MR", "x"]]


def test_an_interrupted_run_is_reported_as_partial(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    planned = [
        [w, "activations", b, s] for w in "ab" for b in ("MR", "MP") for s in ("greedy", "ilp")
    ]
    (out / "run.json").write_text(json.dumps({PLANNED_KEY: planned}))
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "ilp", 0),
        _row("b", "MR", "greedy", 9000),  # ilp never ran this cell
    ]
    line = progress_line(out, rows)
    assert line is not None and "3 of 8 cells done" in line and "1 of 2" in line
    assert line in markdown_report(rows, "greedy", line)
    text = "\n".join(_render(bench_summary(summarize(rows, "greedy"), "greedy", line)))
    assert "3 of 8 cells done" in " ".join(text.split())
    write_reports(out, rows, "greedy", figures=False)
    assert "3 of 8 cells done" in (out / "summary.md").read_text()
    # A finished run (every planned cell has a row) says nothing.
    (out / "run.json").write_text(json.dumps({PLANNED_KEY: planned[:2]}))
    assert progress_line(out, rows) is None
    # No list (an older run.json): nothing to count against.
    (out / "run.json").write_text("{}")
    assert progress_line(out, rows) is None


def test_solvers_are_compared_over_the_cells_all_of_them_finished() -> None:
    rows = [
        _row("a", "MR", "greedy", 1000),
        _row("a", "MR", "ilp", 400),
        _row("b", "MR", "greedy", 9000),  # ilp has no row here: left out of both
        _row("a", "MP", "greedy", 0),
    ]
    by_key = {(s.budget, s.solver): s for s in summarize(rows, "greedy")}
    greedy, ilp = by_key[("MR", "greedy")], by_key[("MR", "ilp")]
    assert (greedy.cells, greedy.left_out, greedy.non_compulsory_bytes) == (1, 1, 1000)
    assert (ilp.cells, ilp.left_out, ilp.non_compulsory_bytes) == (1, 0, 400)
    assert ilp.total_reduction == pytest.approx(0.6)
    # MP only has greedy: its cell is common to every solver of that budget.
    assert (by_key[("MP", "greedy")].cells, by_key[("MP", "greedy")].left_out) == (1, 0)
    # Overall: every solver must have finished the cell, so only a/MR counts.
    overall = by_key[("*", "greedy")]
    assert (overall.cells, overall.left_out, overall.non_compulsory_bytes) == (1, 2, 1000)
    lines = _render(bench_summary(summarize(rows, "greedy"), "greedy"))
    assert any("1/1 +1" in line for line in lines)


def test_bench_report_command_says_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    run = prepare_bench(config(suite, out, (SPILL,), budgets=("MR",)))
    execute_bench(run)
    prepare_bench(config(suite, out, (SPILL,), budgets=("MR", "MP")))  # planned, not run
    assert main(["bench", "report", str(out), "--no-figures"]) == 0
    assert "1 of 2 cells done" in " ".join(capsys.readouterr().out.split())
