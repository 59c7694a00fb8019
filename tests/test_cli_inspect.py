"""Tests of ``memplan inspect``: JSON content, tables, flags and exit codes on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import LIGHT_MODELS, light_model_path, random_graph
from onnx import TensorProto, helper, numpy_helper

from memplan.accelerator import load_accelerator
from memplan.analysis import co_resident_pairs, model_order
from memplan.cli import EXIT_BAD_INPUT, EXIT_OK, main
from memplan.ir import graph_to_json
from memplan.problem import Problem


def run_json(capsys, *argv):
    code = main(["inspect", *map(str, argv), "--json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    return json.loads(out)


def symbolic_model(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes,
        "sym",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "sym.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_inspect_json_matches_the_analyses(capsys, name):
    path = light_model_path(name)
    data = run_json(capsys, path, "--accelerator", "unaligned")
    from memplan.io.loading import load_model

    graph = load_model(path).graph
    problem = Problem(graph, load_accelerator("unaligned"))
    assert data["ops"] == graph.num_ops and data["tensors"] == graph.num_tensors
    assert data["min_resident_bytes"] == problem.min_resident_bytes
    assert data["heuristic_min_peak_bytes"] <= data["model_order_peak_bytes"]
    assert data["min_resident_bytes"] <= data["heuristic_min_peak_bytes"]
    assert data["co_resident_pairs_model_order"] == co_resident_pairs(
        graph, model_order(graph), problem.in_scope
    )
    assert sum(data["op_types"].values()) == data["ops"]
    assert "ConstantOfShape" not in data["op_types"]
    assert data["import"]["folded_by_type"]["ConstantOfShape"] > 0
    sizes = [t["size_bytes"] for t in data["largest_tensors"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 10


def test_densenet_anchor_figures_and_pair_count(capsys):
    path = light_model_path("densenet121")
    data = run_json(capsys, path, "--accelerator", "unaligned", "--no-aliases")
    assert data["min_resident_bytes"] == 6_422_528
    assert data["model_order_peak_bytes"] == 8_429_568
    assert 500 <= data["co_resident_pairs_model_order"] <= 5000
    aligned = run_json(capsys, path)
    assert aligned["accelerator"] == "edge-npu" and aligned["alignment_bytes"] == 64
    assert aligned["min_resident_bytes"] >= data["min_resident_bytes"]


def test_flags_change_the_summary(capsys, tmp_path):
    path = symbolic_model(tmp_path)
    a = run_json(capsys, path, "--dim", "batch=2")
    assert a["tensors_by_kind"] == {"activation": 1, "input": 1, "weight": 0}
    assert a["min_resident_bytes"] == 2 * (2 * 16 * 4)
    b = run_json(capsys, path, "--input-shape", "x:4,16", "--dtype-bytes", "1")
    assert b["import"]["input_shapes"] == {"x": [4, 16]}
    assert b["min_resident_bytes"] == 2 * 64  # 64 B each, aligned to 64
    c = run_json(capsys, path, "--dim", "batch=1", "--scope", "all", "--top", "1")
    assert c["scope"] == "all" and len(c["largest_tensors"]) == 1


def test_several_input_shapes_after_one_flag(capsys, tmp_path):
    nodes = [helper.make_node("Add", ["x", "z"], ["y"], name="add")]
    graph = helper.make_graph(
        nodes,
        "two",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["m", 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "two.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    data = run_json(capsys, path, "--input-shape", "x:2,8", "z:2,8")
    assert data["import"]["input_shapes"] == {"x": [2, 8], "z": [2, 8]}
    data = run_json(capsys, path, "--input-shape", "x:2,8", "--input-shape", "z:1,8")
    assert data["import"]["input_shapes"] == {"x": [2, 8], "z": [1, 8]}


def test_graph_json_input(capsys, tmp_path):
    graph = random_graph(7, 25)
    path = tmp_path / "g.json"
    path.write_text(graph_to_json(graph))
    data = run_json(capsys, path)
    assert data["format"] == "memplan.graph" and data["ops"] == 25
    assert "import" not in data


def test_table_output(capsys):
    code = main(["inspect", str(light_model_path("shufflenet"))])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    for text in ("M_R", "peak, model order", "op types", "largest tensors", "aliases", "Conv"):
        assert text in out
    # Every table fits 80 columns, sizes whole ("1.34 MiB", never split across lines).
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "1.34 MiB" in out and "…" not in out


def test_initializer_only_weights_reported(capsys, tmp_path):
    w = numpy_helper.from_array(np.zeros((8, 8), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    graph = helper.make_graph(
        nodes,
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[w],
    )
    path = tmp_path / "mm.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    data = run_json(capsys, path)
    assert data["weight_bytes"] == 256 and data["macs"] == 64


def test_each_warning_is_one_line(capsys, tmp_path):
    # The text report wrapped a warning at 80 columns: grep found half of it.
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    unused = "attention_mask_of_the_tokenizer_that_no_op_reads"
    graph = helper.make_graph(
        nodes,
        "unused",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 16]) for n in ("x", unused)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "unused.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    assert main(["inspect", str(path)]) == EXIT_OK
    lines = [line for line in capsys.readouterr().out.splitlines() if "no op" in line]
    assert lines == [f"warning: graph input {unused!r} is read by no op; it is left out"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["{tmp}/missing.onnx"], "no such file"),
        (["{tmp}/junk.onnx"], "junk.onnx"),
        (["{tmp}/junk.json"], "junk.json: line 1: invalid JSON"),  # JSON by name, not ONNX
        (["{tmp}/cut.onnx"], "cut.onnx"),
        (["{tmp}/sym.onnx"], "--dim batch=1"),
        (["{tmp}/sym.onnx", "--input-shape", "nope:1,16"], "not a graph input"),
        (["{tmp}/sym.onnx", "--input-shape", "x:1,16,1"], "rank"),
        (["{tmp}/sym.onnx", "--input-shape", "x=1"], "NAME:D1,D2"),
        (["{tmp}/sym.onnx", "--dim", "batch"], "NAME=VALUE"),
        (["{tmp}/sym.onnx", "--dim", "batch=1", "--dtype-bytes", "0"], "--dtype-bytes"),
        (["{tmp}/sym.onnx", "--dim", "batch=1", "--accelerator", "nope"], "preset"),
        (["{tmp}/sym.onnx", "--dim", "batch=1", "--top", "-1"], "--top"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, needle):
    symbolic_model(tmp_path)
    (tmp_path / "junk.onnx").write_text("definitely not onnx")
    (tmp_path / "junk.json").write_text("definitely not json")
    data = light_model_path("squeezenet").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 3])
    code = main(["inspect", *(a.format(tmp=tmp_path) for a in argv)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path):
    from memplan.errors import OnnxImportError

    with pytest.raises(OnnxImportError):
        main(["--debug", "inspect", str(tmp_path / "missing.onnx")])


def test_a_graph_without_ops_says_so(tmp_path, capsys):
    """M_R of a graph with no ops is 0 B; the table said 'at op None (None)'."""
    from memplan.ir import GraphBuilder, TensorKind

    builder = GraphBuilder("noops")
    builder.tensor("x", 64, TensorKind.INPUT)
    path = tmp_path / "noops.json"
    path.write_text(graph_to_json(builder.build()))
    assert main(["inspect", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "(the graph has no ops)" in out and "None" not in out
