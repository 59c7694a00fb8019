"""A reader that leaves early (``memplan optimize m.onnx | head -1``) ends the output,
not the work: the plan is still written and the exit code is the command's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from cli_models import small_model

from memplan.cli import EXIT_OK

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
