"""memplan optimize's outputs: checked before solving, written all together or not at all."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import onnx
import pytest
from cli_models import ctrl_c_while_staging, run_cli, small_model

import memplan.registry
from memplan.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from memplan.io.files import sha256_of_file
from memplan.io.loading import load_model
from memplan.io.planfile import read_plan_file
from memplan.problem import Problem
from memplan.registry import PluginKind
from memplan.solver import Budget, make_solver

SOLVES: list[str] = []


@dataclass(frozen=True)
class CountingSolver:
    """The greedy solver, counting its solves (an output error must prevent them)."""

    name: ClassVar[str] = "counting-test"
    seed: int = field(default=0, metadata={"help": "unused"})

    def solve(self, problem: Problem, budget: Budget):
        SOLVES.append(problem.graph.name)
        return make_solver("greedy").solve(problem, budget)


@pytest.fixture(autouse=True)
def counting_solver(monkeypatch):
    monkeypatch.setitem(
        memplan.registry._registered[PluginKind.SOLVER], CountingSolver.name, CountingSolver
    )
    SOLVES.clear()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "small.onnx"
    onnx.save(small_model(), path)
    return path


def optimize(capsys, model_path, *argv) -> tuple[int, str, str]:
    return run_cli(
        capsys, "optimize", model_path, "--solver", "counting-test", "--scratchpad", "MR", *argv
    )


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _read_only(path: Path) -> Path:
    path.write_text("keep")
    path.chmod(0o444)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("flag", "make", "expected"),
    [
        ("--plot", lambda d: d / "no" / "such" / "p.png", "folder no does not exist"),
        ("-o", lambda d: _folder(d / "out"), "is a folder; give a file name"),
        ("-o", lambda d: _fifo(d / "fifo"), "is a FIFO (named pipe)"),
        ("-o", lambda d: _read_only(d / "ro.json"), "is read-only (mode 0444)"),
        ("--csv", lambda d: Path("/dev/full"), "is a character device"),
        ("--csv", lambda d: Path("/proc/self/status"), "is read-only"),
    ],
    ids=["missing-folder", "folder", "fifo", "read-only", "dev-full", "proc"],
)
def test_bad_output_fails_before_solving(
    tmp_path, model_path, capsys, monkeypatch, flag, make, expected
):
    monkeypatch.chdir(tmp_path)
    target = make(tmp_path)
    inside = tmp_path in target.parents
    if not inside and not target.exists():
        pytest.skip(f"{target} does not exist on this system")
    before = sorted(p.name for p in tmp_path.iterdir())
    given = os.path.relpath(target, tmp_path) if inside else str(target)
    other = "--csv" if flag != "--csv" else "-o"
    code, out, err = optimize(capsys, model_path, flag, given, other, "other.out")
    assert code == EXIT_BAD_INPUT
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err
    assert SOLVES == [] and out == ""  # nothing solved, not even the header printed
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_symlink_target_is_written_and_keeps_its_mode(tmp_path, model_path, capsys):
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "plan.json"
    link.symlink_to(real.name)
    code, _, err = optimize(capsys, model_path, "-o", link)
    assert code == EXIT_OK, err
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    graph = load_model(model_path).graph
    assert read_plan_file(link, graph, sha256_of_file(model_path)).plan is not None


def test_plan_to_stdout_moves_the_summary_to_stderr(model_path, capsys):
    code, out, err = optimize(capsys, model_path, "-o", "-")
    assert code == EXIT_OK
    assert json.loads(out)["format"] == "memplan.plan"
    assert "status       feasible" in err and "model        small" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-o", "-", "--json"], "-o and --json would all write to standard output"),
        (["-o", "-", "--csv", "-"], "-o and --csv would all write to standard output"),
        (["-o", "same.txt", "--csv", "same.txt"], "-o and --csv name the same file"),
        (["--plot", "-"], "--plot '-': use a .png, .svg or .pdf file name"),
        (["--plot", "p.png", "-o", "p.png"], "name the same file"),
        (["--timeline", "-o", "plan.json"], "no --plot is given; add --plot PLAN.png"),
    ],
)
def test_conflicting_outputs(tmp_path, model_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    code, _, err = optimize(capsys, model_path, *args)
    assert code == EXIT_BAD_INPUT and expected in err and SOLVES == []


def test_ctrl_c_while_writing_writes_nothing(tmp_path, model_path, capsys, monkeypatch):
    plan, buffers = tmp_path / "plan.json", tmp_path / "b.csv"
    plan.write_text("old")
    ctrl_c_while_staging(monkeypatch)
    code, _, err = optimize(capsys, model_path, "-o", plan, "--csv", buffers)
    assert code == EXIT_INTERRUPTED and "interrupted" in err
    assert plan.read_text() == "old" and not buffers.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def _documented_fields(command: str) -> set[str]:
    """Top-level JSON fields docs/cli.md lists for ``command`` (outside (), {} and [])."""
    import re

    docs = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    row = next(line for line in docs.splitlines() if line.startswith(f"| `{command}` |"))
    text = row.split("|")[2]
    for _ in range(3):  # nested groups
        text = re.sub(r"\([^()]*\)|\{[^{}]*\}|\[[^\[\]]*\]", "", text)
    return set(re.findall(r"`([a-z0-9_]+)`", text))


def test_json_outputs_have_the_fields_docs_cli_md_lists(capsys, model_path, tmp_path) -> None:
    plan = tmp_path / "plan.json"
    csv = tmp_path / "buffers.csv"
    outputs = {
        "optimize": optimize(capsys, model_path, "--json", "-o", plan, "--csv", csv),
        "validate": run_cli(capsys, "validate", model_path, plan, "--json"),
        "score": run_cli(capsys, "score", model_path, plan, "--json"),
        "inspect": run_cli(capsys, "inspect", model_path, "--json"),
        "allocate": run_cli(capsys, "allocate", csv, "--json"),
    }
    for command, (code, out, _) in outputs.items():
        assert code == EXIT_OK, command
        fields = set(json.loads(out))  # stdout holds the JSON document and nothing else
        documented = _documented_fields(command)
        if command == "inspect":  # the exact_min_peak_* fields come with --exact-mp only
            documented = {f for f in documented if not f.startswith("exact_min_peak")}
        assert fields == documented, command


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--json"], "standard output is closed, and this command prints its result there"),
        (["-o", "-"], "-o -: standard output is closed; give a file name"),
    ],
    ids=["json", "plan-to-stdout"],
)
def test_closed_standard_output_is_one_line_before_solving(model_path, argv, expected):
    """Started with standard output closed (``>&-``), --json and -o - ended in an
    AttributeError traceback on sys.stdout (None) after the whole solve."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"]
    done = subprocess.run(
        [*command, "optimize", str(model_path), "--scratchpad", "MR", *argv],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.close(1),
        check=False,
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.count("\n") == 1 and expected in done.stderr
    assert "solving" not in done.stderr  # refused before the solve


LONG_NAME = "x" * 300  # over the 255 bytes a file name may have on Linux file systems


@pytest.mark.parametrize(
    ("flag", "name"),
    [("-o", f"{LONG_NAME}.json"), ("--csv", f"{LONG_NAME}.csv"), ("--plot", f"{LONG_NAME}.png")],
)
def test_a_file_name_too_long_is_one_line_before_solving(
    tmp_path, model_path, capsys, monkeypatch, flag, name
):
    """A 300-character name ended in an OSError traceback (exit 1) from Path.is_symlink."""
    monkeypatch.chdir(tmp_path)
    code, out, err = optimize(capsys, model_path, flag, name)
    assert code == EXIT_BAD_INPUT and out == "" and SOLVES == []
    assert err.count("\n") == 1 and f"{flag} {name}: " in err and "too long" in err
    assert list(tmp_path.iterdir()) == []


def test_graphs_export_and_write_plan_file_refuse_a_name_too_long(
    tmp_path, model_path, capsys, monkeypatch
):
    from memplan.accelerator import load_accelerator
    from memplan.errors import OutputFileError
    from memplan.io.planfile import write_plan_file
    from memplan.problem import Scope

    monkeypatch.chdir(tmp_path)
    name = f"{LONG_NAME}.onnx"
    code, _, err = run_cli(capsys, "graphs", "export", "darts_v2_cifar_small", "-o", name)
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and "too long" in err
    problem = Problem(load_model(model_path).graph, load_accelerator("edge-npu"), Scope.ACTIVATIONS)
    result = make_solver("greedy").solve(problem, Budget(time_limit_s=10))
    with pytest.raises(OutputFileError, match="too long"):
        write_plan_file(f"{LONG_NAME}.json", result, problem, model_sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_a_name_the_file_system_accepts_is_written(tmp_path, model_path, capsys, monkeypatch):
    """A 250-character name passed the check, then the temporary file beside it (the
    name and a suffix, over 255 characters) failed after the whole solve."""
    monkeypatch.chdir(tmp_path)
    name = "x" * 250 + ".json"
    code, _, err = optimize(capsys, model_path, "-o", name, "--csv", "y" * 251 + ".csv")
    assert code == EXIT_OK, err
    assert json.loads((tmp_path / name).read_text())["format"] == "memplan.plan"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "y" * 251 + ".csv"]


def test_graphs_export_writes_a_name_the_file_system_accepts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "x" * 250 + ".onnx"
    code, _, err = run_cli(capsys, "graphs", "export", "darts_v2_cifar_small", "-o", name)
    assert code == EXIT_OK, err
    assert onnx.load(tmp_path / name).graph.node


def test_a_write_that_fails_after_the_solve_still_prints_the_result(
    tmp_path, model_path, capsys, monkeypatch
):
    """The status and cost of a long solve were lost when the write then failed."""
    import errno

    import memplan.io.files as files

    def disk_full(target, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_stage", disk_full)
    code, out, err = optimize(capsys, model_path, "-o", tmp_path / "plan.json")
    assert code == EXIT_BAD_INPUT and SOLVES == ["small"]
    assert "status       feasible" in out and "traffic" in out and "wrote" not in out
    assert err.count("\n") == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def _memplan_with_columns(columns: str, *argv: object) -> tuple[int, str]:
    """Run ``memplan ARGV`` in a new process with COLUMNS set (read at import)."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"]
    done = subprocess.run(
        [*command, *map(str, argv)],
        env={**os.environ, "COLUMNS": columns},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout


@pytest.mark.parametrize("columns", ["0", "1", "abc", "-5"])
def test_any_columns_value_prints_the_result(tmp_path, model_path, columns):
    """COLUMNS=0 made rich's console 0 wide: optimize printed nothing, exit 0, and
    COLUMNS=1 printed one character a line."""
    plan = tmp_path / "plan.json"
    code, out = _memplan_with_columns(columns, "optimize", model_path, "-o", plan)
    assert code == EXIT_OK and plan.exists()
    assert "status       feasible" in out and f"wrote plan   {plan}" in out
    code, out = _memplan_with_columns(columns, "inspect", model_path)
    assert code == EXIT_OK and "memplan inspect: " in out and "sha256" in out
