"""A reader that leaves early (``memplan optimize m.onnx | head -1``) ends the output,
not the work: the plan is still written and the exit code is the command's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from cli_models import small_model

from memplan.cli import EXIT_BAD_INPUT, EXIT_NO_PLAN, EXIT_OK

COMMAND = [sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"]


def _read_one_line_then_leave(*argv: object) -> tuple[int, str, str]:
    """Run ``memplan ARGV``, read its first line of stdout, close the pipe, wait."""
    process = subprocess.Popen(
        [*COMMAND, *map(str, argv)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # the reader leaves: every later write hits a closed pipe
    err = process.stderr.read()
    return process.wait(timeout=300), first, err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "small.onnx"
    onnx.save(small_model(), path)
    return path


@pytest.mark.parametrize("json_output", [False, True])
def test_optimize_writes_its_plan_when_the_reader_leaves(
    tmp_path: Path, model_path: Path, json_output: bool
) -> None:
    """rich exited 1 ("no plan") at the first write to the closed pipe, before the plan
    file was written."""
    plan = tmp_path / "plan.json"
    extra = ["--json"] if json_output else []
    code, first, err = _read_one_line_then_leave("optimize", model_path, "-o", plan, *extra)
    assert first  # it did print before the reader left
    assert code == EXIT_OK, err
    assert plan.exists()
    assert "Traceback" not in err and "Exception ignored" not in err, err
    code, _, err = _read_one_line_then_leave("validate", model_path, plan)
    assert code == EXIT_OK and "Traceback" not in err, err


def test_inspect_exits_zero_when_the_reader_leaves(model_path: Path) -> None:
    code, first, err = _read_one_line_then_leave("inspect", model_path)
    assert first and code == EXIT_OK, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.fixture(scope="module")
def plan_pair(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> tuple[Path, Path]:
    """A valid plan of the small model, and an invalid one: its residencies 300 times
    over, so that --per-kind all lists far more than a pipe holds."""
    folder = tmp_path_factory.mktemp("plans")
    valid, invalid = folder / "valid.json", folder / "invalid.json"
    code = subprocess.run(
        [*COMMAND, "optimize", str(model_path), "-o", str(valid)], capture_output=True
    ).returncode
    assert code == EXIT_OK
    data = json.loads(valid.read_text())
    data["plan"]["residencies"] *= 300
    invalid.write_text(json.dumps(data))
    return valid, invalid


@pytest.mark.parametrize("json_output", [False, True])
@pytest.mark.parametrize("command", ["validate", "score"])
def test_validate_and_score_keep_their_verdict_when_the_reader_leaves(
    model_path: Path, plan_pair: tuple[Path, Path], command: str, json_output: bool
) -> None:
    """`memplan validate m invalid.json --per-kind all | head -1` exited 0 ("valid"): the
    closed pipe was answered with 0, whatever the verdict."""
    valid, invalid = plan_pair
    extra = ["--json"] if json_output else []
    if command == "validate":
        extra.append("--per-kind=all")
    code, first, err = _read_one_line_then_leave(command, model_path, invalid, *extra)
    assert code == EXIT_NO_PLAN, err
    assert first or (command, extra) == ("score", [])  # score's verdict alone: on stderr
    assert "Traceback" not in err and "Exception ignored" not in err, err
    code, first, err = _read_one_line_then_leave(command, model_path, valid, *extra)
    assert first and code == EXIT_OK and "Traceback" not in err, err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("json_output", [False, True])
@pytest.mark.parametrize("command", ["validate", "score", "inspect", "graphs list"])
def test_a_full_standard_output_is_one_line(
    model_path: Path, plan_pair: tuple[Path, Path], command: str, json_output: bool
) -> None:
    """Printing to a full disk (> /dev/full) was an OSError traceback and exit 1."""
    valid, _ = plan_pair
    extra = ["--json"] if json_output else []
    argv = {
        "validate": ["validate", model_path, valid],
        "score": ["score", model_path, valid],
        "inspect": ["inspect", model_path],  # rich tables: the same traceback
        "graphs list": ["graphs", "list", "--no-stats"],
    }[command]
    with open("/dev/full", "w") as full:
        process = subprocess.run(
            [*COMMAND, *map(str, argv), *extra],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert process.returncode == EXIT_BAD_INPUT
    assert process.stderr == (
        f"memplan {command}: error: standard output: cannot write the result (No space left "
        "on device); free some space or redirect it to another file\n"
    )
