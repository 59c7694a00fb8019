"""What `memplan bench` writes: whole result rows on a full disk, one folder per set of
result-changing settings (run.json), and saved plans that `memplan validate` reads."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_bench import RAISE, SPILL, config, write_suite

from memplan.bench.harness import ResultsWriter, execute_bench, prepare_bench, read_rows
from memplan.cli import main
from memplan.errors import ConfigError, OutputFileError


def _full_disk_after(monkeypatch: pytest.MonkeyPatch, path: Path, allowed: int) -> list[int]:
    """Make writes to ``path`` fail with ENOSPC once ``allowed`` more bytes are written.

    The write that crosses the limit is taken in part (as a real full disk does), and the
    next one raises. Returns a list holding the bytes written so far.
    """
    real_write = os.write
    written = [0]

    def write(fd: int, data: Any) -> int:
        try:
            ours = path.exists() and os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            ours = False
        if not ours:
            return real_write(fd, data)
        room = allowed - written[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = real_write(fd, bytes(data)[:room])
        written[0] += count
        return count

    monkeypatch.setattr(os, "write", write)
    return written


# --------------------------------------------------------------------------- full disk
def test_a_full_disk_leaves_no_partial_row_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.append({"key": "a", "status": "feasible"})
    before = path.read_bytes()
    _full_disk_after(monkeypatch, path, allowed=10)  # part of the next line, then full
    with ResultsWriter(path) as writer, pytest.raises(OutputFileError) as error:
        writer.append({"key": "b", "status": "feasible", "padding": "x" * 200})
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert os.strerror(errno.ENOSPC) in message and "run the same command again" in message
    assert path.read_bytes() == before  # cut back: no partial record
    monkeypatch.undo()
    with ResultsWriter(path) as writer:  # space again: the next row is whole
        writer.append({"key": "c", "status": "error"})
    rows, bad = read_rows(path)
    assert [r["key"] for r in rows] == ["a", "c"] and bad == 0


def test_cli_bench_on_a_full_disk_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    out.mkdir()
    results = out / "results.jsonl"
    results.touch()
    # room for about one and a half rows: the first row is kept, the second cut off
    _full_disk_after(monkeypatch, results, allowed=1500)
    argv = [
        "bench", "--suite", str(suite), "--solvers", SPILL, "--budgets", "MR,MH,MP",
        "--time-limit", "5", "-o", str(out), "-q", "--no-figures",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err and "During handling" not in err
    assert str(results) in lines[0] and os.strerror(errno.ENOSPC) in lines[0]
    monkeypatch.undo()
    text = results.read_text()
    assert text == "" or text.endswith("\n")
    rows, bad = read_rows(results)
    assert bad == 0 and len(rows) == len(text.splitlines()) < 3
    assert all(json.loads(line)["status"] == "feasible" for line in text.splitlines())


def test_a_full_temporary_folder_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = prepare_bench(config(write_suite(tmp_path / "g", 1), tmp_path / "out", (SPILL,)))
    real_write_text = Path.write_text

    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.name == "spec.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(OutputFileError, match="cannot write a cell's temporary files in"):
        execute_bench(run)
    assert read_rows(tmp_path / "out" / "results.jsonl") == ([], 0)


# --------------------------------------------------------------------------- run.json
def test_resuming_with_other_result_settings_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    base = ["bench", "--suite", str(suite), "--solvers", SPILL, "--budgets", "MR",
            "-o", str(out), "-q", "--no-figures", "--time-limit", "5"]  # fmt: skip
    assert main(base) == 0
    results = (out / "results.jsonl").read_bytes()
    run_json = (out / "run.json").read_bytes()
    capsys.readouterr()
    for extra, named in [
        (["--time-limit", "7"], "--time-limit was 5, now 7"),
        (["--dtype-bytes", "1"], "--dtype-bytes was none, now 1"),
        (["--accelerator", "unaligned"], "--accelerator was edge-npu, now unaligned"),
        (["--exact-mp", "3"], "--exact-mp was none, now 3"),
    ]:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err and "new -o folder" in err
        # nothing ran and nothing was written
        assert (out / "results.jsonl").read_bytes() == results
        assert (out / "run.json").read_bytes() == run_json
    # both differences at once are named together
    assert main([*base, "--time-limit", "7", "--dtype-bytes", "2"]) == 2
    err = capsys.readouterr().err
    assert "--time-limit was 5, now 7" in err and "--dtype-bytes was none, now 2" in err
    assert main(["bench", "report", str(out), "--no-figures"]) == 0


def test_settings_that_only_add_cells_resume_into_the_same_folder(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 2)
    out = tmp_path / "out"
    first = prepare_bench(config(suite, out, (SPILL,), budgets=("MR",), jobs=2))
    assert execute_bench(first) == 2
    # more budgets, another solver variant, other harness settings: added cells only
    more = config(
        suite,
        out,
        (SPILL, f"{SPILL}[seed=3]"),
        budgets=("MR", "MP"),
        grace_s=3.0,
        jobs=1,
    )
    run = prepare_bench(more)
    assert len(run.pending) == 2 * 2 * 2 - 2
    recorded = json.loads((out / "run.json").read_text())
    assert recorded["budgets"] == ["MR", "MP"]
    assert recorded["solvers"] == [SPILL, f"{SPILL}[seed=3]"]
    # a later run with fewer cells keeps the earlier ones in run.json
    prepare_bench(config(suite, out, (SPILL,), budgets=("MR",)))
    assert json.loads((out / "run.json").read_text())["budgets"] == ["MR", "MP"]


def test_a_folder_without_run_json_is_checked_against_its_rows(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    assert execute_bench(prepare_bench(config(suite, out, (SPILL,), budgets=("MR",)))) == 1
    (out / "run.json").unlink()
    with pytest.raises(ConfigError, match="--time-limit was 10, now 3"):
        prepare_bench(config(suite, out, (SPILL,), budgets=("MR",), time_limit_s=3.0))
    assert prepare_bench(config(suite, out, (SPILL,), budgets=("MR",))).pending == []


# --------------------------------------------------------------------------- saved plans
def test_saved_plans_are_plan_files_that_validate_and_score_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    argv = ["bench", "--suite", str(suite), "--solvers", f"{SPILL},greedy", "--budgets",
            "MR,MH", "-o", str(out), "-q", "--no-figures", "--save-plans"]  # fmt: skip
    assert main(argv) == 0
    rows, _ = read_rows(out / "results.jsonl")
    assert len(rows) == 4 and all(r.get("plan_file") for r in rows)
    model = suite / "skip0.json"
    for row in rows:
        plan = out / row["plan_file"]
        data = json.loads(plan.read_text())
        assert data["format"] == "memplan.plan" and data["budget"]["spec"] == row["budget"]
        assert data["accelerator"]["capacity_bytes"] == row["capacity_bytes"]
        capsys.readouterr()
        code = main(["validate", str(model), str(plan)])
        assert code == 0, capsys.readouterr().err
        assert "valid" in capsys.readouterr().out
        assert main(["score", str(model), str(plan), "--json"]) == 0
        scored = json.loads(capsys.readouterr().out)
        assert scored["matches_recorded"] is True and scored["recorded_differs_in"] == []
        assert scored["cost"]["non_compulsory_bytes"] == row["non_compulsory_bytes"]


def test_a_run_where_no_cell_has_a_plan_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Every solve raised, and memplan bench exited 0, as if it had measured something.
    suite = write_suite(tmp_path / "g", 1)
    argv = ["bench", "--suite", str(suite), "--budgets", "MR", "--time-limit", "5", "-q"]
    argv += ["--no-figures", "--solvers"]
    assert main([*argv, RAISE, "-o", str(tmp_path / "bad")]) == 1
    assert "none of the 1 cells has a plan" in " ".join(capsys.readouterr().err.split())
    assert main([*argv, f"{RAISE},{SPILL}", "-o", str(tmp_path / "good")]) == 0


def test_a_figures_path_that_cannot_be_written_is_refused_before_any_cell_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A file named figures in the folder: every cell ran, then the run ended on it.
    suite = write_suite(tmp_path / "g", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").write_text("not a folder")
    argv = ["bench", "--suite", str(suite), "--solvers", SPILL, "--budgets", "MR"]
    argv += ["--time-limit", "5", "-q", "-o", str(out)]
    assert main(argv) == 2
    assert "figures/solve_time.png: a part of the path is a file" in capsys.readouterr().err
    assert not (out / "results.jsonl").exists()
    assert main([*argv, "--no-figures"]) == 0  # no figures: nothing to refuse
