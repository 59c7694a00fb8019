"""Plan files remember how the model was imported; validate and score reuse it."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from cli_models import dynamic_model, run_cli, small_model
from onnx_patterns import torch_reshape_model

from memplan.cli import EXIT_BAD_INPUT, EXIT_OK
from memplan.io.loading import load_model
from memplan.ir import graph_to_json


@pytest.fixture(scope="module")
def dynamic_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "dynamic.onnx"
    onnx.save(dynamic_model(), path)
    return path


@pytest.fixture
def plan_640(tmp_path, dynamic_path, capsys) -> Path:
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(
        capsys, "optimize", dynamic_path, "--input-shape", "X:1,3,64,64", "--scratchpad", "MP",
        "-o", plan,
    )  # fmt: skip
    assert code == EXIT_OK, err
    return plan


def test_plan_records_the_import_options(plan_640, dynamic_path):
    data = json.loads(plan_640.read_text())
    assert data["version"] == 2
    assert data["import"] == {
        "input_shapes": {"X": [1, 3, 64, 64]},
        "dims": {},
        "input_values": {},
        "dtype_bytes": None,
        "aliases": True,
    }
    graph = load_model(dynamic_path, input_shapes={"X": (1, 3, 64, 64)}).graph
    assert (data["model"]["ops"], data["model"]["tensors"]) == (graph.num_ops, graph.num_tensors)


@pytest.mark.parametrize("command", ["validate", "score"])
def test_validate_and_score_reuse_the_recorded_options(plan_640, dynamic_path, capsys, command):
    # Without the flag, the model (whose input is symbolic) imports as the plan records.
    code, out, err = run_cli(capsys, command, dynamic_path, plan_640)
    assert code == EXIT_OK, err
    assert "valid" in out
    # Giving the same flags again is fine.
    code, _, err = run_cli(capsys, command, dynamic_path, plan_640, "--input-shape", "X:1,3,64,64")
    assert code == EXIT_OK, err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--input-shape", "X:1,3,32,32"],
            "was made with --input-shape X:1,3,64,64, but this command gives "
            "--input-shape X:1,3,32,32",
        ),
        (["--no-aliases"], "was made with --aliases, but this command gives --no-aliases"),
        (["--dim", "batch=1"], "was made with no --dim, but this command gives --dim batch=1"),
        (["--dtype-bytes", "1"], "no --dtype-bytes, but this command gives --dtype-bytes 1"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "score"])
def test_contradicting_import_flags_are_one_line(
    plan_640, dynamic_path, capsys, command, flags, expected
):
    code, out, err = run_cli(capsys, command, dynamic_path, plan_640, *flags)
    assert code == EXIT_BAD_INPUT
    assert expected in err and "leave the import flags out" in err
    assert err.count("\n") == 1 and "valid" not in out


@pytest.mark.parametrize("command", ["validate", "score"])
def test_some_of_the_recorded_dims_again_is_no_contradiction(
    tmp_path, dynamic_path, capsys, command
):
    """A plan made with three --dim sizes, checked with one of them: that agrees with
    the plan (it was refused: "made with --dim batch=1 --dim height=16 --dim width=16,
    but this command gives --dim height=16"); another size for it is still refused."""
    plan = tmp_path / "plan.json"
    dims = ["--dim", "batch=1", "height=16", "width=16"]
    code, _, err = run_cli(
        capsys, "optimize", dynamic_path, *dims, "--scratchpad", "MP", "-o", plan
    )
    assert code == EXIT_OK, err
    code, out, err = run_cli(capsys, command, dynamic_path, plan, "--dim", "height=16")
    assert code == EXIT_OK, err
    assert "valid" in out
    code, out, err = run_cli(capsys, command, dynamic_path, plan, "--dim", "height=8")
    assert code == EXIT_BAD_INPUT
    assert "but this command gives --dim height=8" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, command, dynamic_path, plan, "--dim", "batch=1", "depth=2")
    assert code == EXIT_BAD_INPUT
    assert "but this command gives --dim batch=1 --dim depth=2" in err


def test_a_changed_import_is_caught_by_the_graph_fingerprint(plan_640, dynamic_path, capsys):
    """Even when the recorded options are edited to agree, another graph is rejected."""
    data = json.loads(plan_640.read_text())
    data["import"]["input_shapes"]["X"] = [1, 3, 32, 32]
    plan_640.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "validate", dynamic_path, plan_640)
    assert code == EXIT_BAD_INPUT
    assert "same counts but other tensor sizes or shapes" in err and err.count("\n") == 1


def test_version_1_plan_uses_the_flags_and_says_so(plan_640, dynamic_path, capsys):
    data = json.loads(plan_640.read_text())
    data["version"] = 1
    data.pop("import")
    for key in ("graph_sha256", "ops", "tensors"):
        data["model"].pop(key)
    plan_640.write_text(json.dumps(data))
    code, out, err = run_cli(
        capsys, "validate", dynamic_path, plan_640, "--input-shape", "X:1,3,64,64"
    )
    assert code == EXIT_OK and "valid" in out
    assert "version 1 plan file, which does not record how the model was imported" in err


def test_import_flags_with_a_graph_json_model_are_refused(tmp_path, capsys):
    path = tmp_path / "small.json"
    path.write_text(graph_to_json(load_model(small_model()).graph))
    code, _, err = run_cli(capsys, "optimize", path, "--dtype-bytes", "1")
    assert code == EXIT_BAD_INPUT
    assert "is a memplan graph JSON file" in err and "--dtype-bytes 1" in err
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(capsys, "optimize", path, "--scratchpad", "MP", "-o", plan)
    assert code == EXIT_OK, err
    assert json.loads(plan.read_text())["import"] is None
    code, out, _ = run_cli(capsys, "validate", path, plan)
    assert code == EXIT_OK and "valid" in out


@pytest.mark.parametrize("command", ["validate", "score"])
def test_an_import_field_of_the_other_kind_of_model_is_refused(tmp_path, capsys, command):
    """`import` null marks a graph JSON model, an object an ONNX import: a plan file that
    says the other kind than its own model (same file hash) was accepted as valid."""
    onnx_path, json_path = tmp_path / "small.onnx", tmp_path / "small.json"
    onnx.save(small_model(), onnx_path)
    json_path.write_text(graph_to_json(load_model(small_model()).graph))
    for model, wrong, expected in (
        (onnx_path, None, "field 'import' is null, which marks a plan for a memplan graph JSON "
         f"model, but {onnx_path} is an ONNX model"),
        (json_path, {}, f"field 'import' holds ONNX import options, but {json_path} is a "
         "memplan graph JSON model"),
    ):  # fmt: skip
        plan = tmp_path / f"{model.suffix[1:]}.plan.json"
        code, _, err = run_cli(capsys, "optimize", model, "--scratchpad", "MP", "-o", plan)
        assert code == EXIT_OK, err
        data = json.loads(plan.read_text())
        data["import"] = wrong
        plan.write_text(json.dumps(data))
        code, out, err = run_cli(capsys, command, model, plan)
        assert code == EXIT_BAD_INPUT and out == ""
        assert err.startswith(f"memplan {command}: error: {plan}: ") and expected in err
        assert err.count("\n") == 1


def test_plan_for_another_model_says_so_even_when_its_import_fails(plan_640, tmp_path, capsys):
    """The recorded --input-shape names an input the other model lacks: the hash decides."""
    other = tmp_path / "small.onnx"
    onnx.save(small_model(), other)
    code, _, err = run_cli(capsys, "validate", other, plan_640)
    assert code == EXIT_BAD_INPUT
    assert "was made for model 'dynamic (dynamic.onnx)'" in err and err.count("\n") == 1


SPEECH = Path(__file__).parent / "data" / "onnx" / "lstm_speech.onnx"


def test_input_value_is_recorded_and_reused(tmp_path, capsys):
    """--input-value picks an If branch: another value is another graph, and is refused."""
    plan = tmp_path / "plan.json"
    flags = ["--dim", "batch=1", "samples=16000", "--input-value", "sr:16000"]
    code, _, err = run_cli(capsys, "optimize", SPEECH, *flags, "--scratchpad", "MP", "-o", plan)
    assert code == EXIT_OK, err
    recorded = json.loads(plan.read_text())["import"]
    assert recorded["input_values"] == {"sr": [16000]}
    assert recorded["dims"] == {"batch": 1, "samples": 16000}
    code, out, err = run_cli(capsys, "score", SPEECH, plan)
    assert code == EXIT_OK and "recorded cost: matches" in out, err
    code, _, err = run_cli(capsys, "validate", SPEECH, plan, "--input-value", "sr:8000")
    assert code == EXIT_BAD_INPUT
    assert "made with --input-value sr:16000, but this command gives --input-value sr:8000" in err


def test_a_stay_of_an_aliased_view_names_the_buffer_to_use(tmp_path, capsys):
    """A hand-edited plan naming a Reshape's output (aliased to its input at import) is
    told which tensor holds that buffer, not asked whether it is for another model."""
    model = tmp_path / "reshape.onnx"
    onnx.save(torch_reshape_model(), model)
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(
        capsys, "optimize", model, "--dim", "batch=1", "height=8", "width=8", "-o", plan
    )
    assert code == EXIT_OK, err
    data = json.loads(plan.read_text())
    stays = [stay for stay in data["plan"]["residencies"] if stay["tensor"] == "c"]
    assert stays, "the conv's output c should stay on chip"
    stays[0]["tensor"] = "r"  # the Reshape's output, which shares c's buffer
    plan.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "validate", model, plan)
    assert code == EXIT_BAD_INPUT
    assert "'r'" in err and "aliased to tensor 'c'" in err and "name 'c' instead" in err
    assert "another model" not in err and err.count("\n") == 1
