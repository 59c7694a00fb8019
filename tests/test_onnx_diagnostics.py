"""Bad ONNX input gets one line with the real reason: external data, unsupported ops and
types, old opsets and IR versions, MAC estimates, NonZero of a known value, odd graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_models import run_cli
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from memplan.cli import EXIT_BAD_INPUT
from memplan.errors import OnnxImportError
from memplan.onnx.importer import import_model
from memplan.onnx.macs import estimate_macs

F = TensorProto.FLOAT


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8, extra=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in extra)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir_version
    return model


# ----------------------------------------------------------------------- external data
def external_model(
    folder: Path, location: str, *, dtype=np.float32, offset=0, length=None, data_bytes=None
) -> Path:
    """x[4] + w[4] -> y with w's data in ``location`` (written to ``data_bytes`` if given)."""
    w = numpy_helper.from_array(np.arange(4, dtype=dtype), "w")
    raw = w.raw_data
    set_external_data(w, location, offset=offset, length=length)
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [vi("x", [4], elem)], [vi("y", [4], elem)], [w])
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    if data_bytes is not None:
        (folder / location).write_bytes(data_bytes if data_bytes != b"full" else raw)
    return path


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_external_data_absolute_path_is_refused(tmp_path, dtype):
    outside = tmp_path / "elsewhere.data"
    outside.write_bytes(b"\0" * 64)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    path = external_model(model_dir, str(outside), dtype=dtype)
    with pytest.raises(OnnxImportError, match=r"m\.onnx: initializer 'w' .*absolute path"):
        import_model(path)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_external_data_outside_the_folder_is_refused(tmp_path, dtype):
    (tmp_path / "escape.data").write_bytes(b"\0" * 64)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    path = external_model(model_dir, "../escape.data", dtype=dtype)
    with pytest.raises(OnnxImportError, match=r"'w' .*'\.\./escape\.data', outside"):
        import_model(path)


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_truncated_external_data_is_refused(tmp_path, dtype):
    path = external_model(tmp_path, "w.data", dtype=dtype, data_bytes=b"\0" * 5)
    with pytest.raises(OnnxImportError, match=r"'w' needs bytes 0\.\.\d+ of 'w\.data'.*only 5"):
        import_model(path)


def test_external_data_offset_past_the_end_is_refused(tmp_path):
    path = external_model(tmp_path, "w.data", offset=16, length=16, data_bytes=b"\0" * 24)
    with pytest.raises(OnnxImportError, match=r"bytes 16\.\.32 .*only 24"):
        import_model(path)


def test_good_external_data_still_imports(tmp_path):
    path = external_model(tmp_path, "w.data", data_bytes=b"full")
    assert import_model(path).graph.tensor_by_name("w").size_bytes == 16


def test_cli_external_data_outside_is_one_line(tmp_path, capsys):
    path = external_model(tmp_path, "/etc/passwd")
    code, _, err = run_cli(capsys, "inspect", path)
    assert code == EXIT_BAD_INPUT
    assert len(err.strip().splitlines()) == 1
    assert "'w'" in err and "/etc/passwd" in err and "Traceback" not in err


# ----------------------------------------------------------------------- real reasons
def test_unknown_default_domain_op_is_named():
    nodes = [
        helper.make_node("FrobnicateXYZ", ["x"], ["a"]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [1, 4])], [vi("y", None)])
    with pytest.raises(OnnxImportError, match="not an ONNX op at the model's opset 17") as info:
        import_model(model)
    assert "graph input data" not in str(info.value)


def test_op_newer_than_the_opset_says_when_it_exists():
    model = make_model([helper.make_node("Gelu", ["x"], ["y"])], [vi("x", [1, 4])],
                       [vi("y", None)])  # fmt: skip
    with pytest.raises(OnnxImportError, match="exists from opset 20"):
        import_model(model)


def test_too_old_opset_suggests_version_converter():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [vi("x", [1, 4])], [vi("y", None)], opset=1, ir_version=3)
    with pytest.raises(OnnxImportError, match=r"Relu-1 .*opset 1 is too old.*version_converter"):
        import_model(model)


def test_ir3_initializer_not_listed_as_input_says_so():
    w = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], [w], opset=7,
                       ir_version=3)  # fmt: skip
    with pytest.raises(OnnxImportError, match="'w' in initializer but not in graph input"):
        import_model(model)


def test_sequence_op_is_not_supported():
    nodes = [
        helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
        helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0),
    ]
    model = make_model(nodes, [vi("x", [2, 4])], [vi("y", None)])
    with pytest.raises(OnnxImportError, match="SequenceConstruct; sequence and optional types"):
        import_model(model)


@pytest.mark.parametrize("kind", ["sequence", "optional"])
def test_sequence_or_optional_graph_input_is_not_supported(kind):
    tensor = helper.make_tensor_type_proto(F, [2, 4])
    if kind == "sequence":
        type_proto = helper.make_sequence_type_proto(tensor)
        node = helper.make_node("ConcatFromSequence", ["i"], ["y"], axis=0)
    else:
        type_proto = helper.make_optional_type_proto(tensor)
        node = helper.make_node("OptionalGetElement", ["i"], ["y"])
    model = make_model([node], [helper.make_value_info("i", type_proto)], [vi("y", None)],
                       opset=18)  # fmt: skip
    with pytest.raises(OnnxImportError, match=f"'i' has an? {kind} type.*not supported"):
        import_model(model)


# ----------------------------------------------------------------------- MACs
def test_fused_conv_counts_like_conv():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    macs = {}
    for op, domain in (("Conv", ""), ("FusedConv", "com.microsoft")):
        node = helper.make_node(op, ["x", "w"], ["y"], domain=domain)
        if domain:
            node.attribute.append(helper.make_attribute("activation", "Relu"))
        model = make_model([node], [vi("x", [1, 3, 8, 8])], [vi("y", [1, 4, 6, 6])], [w],
                           extra=[domain] if domain else [])  # fmt: skip
        result = import_model(model)
        macs[op] = result.graph.ops[0].macs
        assert not any("estimated" in w for w in result.report.warnings)
    assert macs["FusedConv"] == macs["Conv"] == 4 * 36 * 27


def test_contrib_matmul_variants_count_like_matmul():
    from memplan.onnx.macs import macs_estimated

    assert estimate_macs("FusedMatMul", [(8, 16), (16, 4)], [(8, 4)]) == 8 * 4 * 16
    assert estimate_macs("FusedMatMul", [(16, 8), (16, 4)], [(8, 4)], {"transA": 1}) == 512
    assert estimate_macs("FusedGemm", [(8, 16), (16, 4)], [(8, 4)]) == 512
    assert estimate_macs("MatMulNBits", [(8, 16), (4, 1, 8)], [(8, 4)], {"K": 16}) == 512
    assert not macs_estimated("FusedConv", "com.microsoft")
    assert not macs_estimated("Relu")
    assert macs_estimated("Frob", "my.ops")
    assert macs_estimated("Einsum")


def test_recurrent_ops_count_their_matrix_products():
    """LSTM, GRU and RNN were one MAC per output element with an 'only estimated' warning:
    a 2-layer LSTM, bidirectional GRU model (batch 2, 20 steps) had its latency from
    47,760 MACs instead of 3.6 million."""
    from memplan.onnx.macs import macs_estimated

    rows = 20 * 2  # steps x batch, for layout 0 ([steps, batch, I]) and 1 alike
    lstm = estimate_macs("LSTM", [(20, 2, 32), (1, 256, 32), (1, 256, 64)], [(20, 1, 2, 64)])
    assert lstm == rows * (256 * 32 + 256 * 64)
    gru = estimate_macs("GRU", [(2, 20, 64), (2, 144, 64), (2, 144, 48)], [(2, 20, 2, 48)])
    assert gru == rows * (2 * 144 * 64 + 2 * 144 * 48)
    assert estimate_macs("RNN", [(20, 2, 8), (1, 16, 8), (1, 16, 16)], [(20, 1, 2, 16)]) == (
        rows * (16 * 8 + 16 * 16)
    )
    assert not any(macs_estimated(op) for op in ("LSTM", "GRU", "RNN"))
    nodes = [helper.make_node("LSTM", ["x", "w", "r"], ["y"], name="lstm", hidden_size=4)]
    inits = [
        numpy_helper.from_array(np.zeros((1, 16, 3), np.float32), "w"),
        numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "r"),
    ]
    result = import_model(make_model(nodes, [vi("x", [5, 2, 3])], [vi("y", None)], inits))
    assert result.graph.op_by_name("lstm").macs == 10 * (16 * 3 + 16 * 4)
    assert not result.report.warnings


def test_attention_counts_its_two_matrix_products():
    """torch.onnx.export(..., dynamo=True, opset_version=23) writes scaled_dot_product_attention
    as one Attention op, which was one MAC per output element with an 'only estimated'
    warning (a 3-layer GPT: 12,288 MACs for the attention instead of 393,216)."""
    from memplan.onnx.macs import macs_estimated

    q = (2, 4, 16, 32)  # [B, H, S, E]
    assert estimate_macs("Attention", [q, q, q], [q]) == 2 * (2 * 4 * 16 * 16 * 32)
    three_d = (2, 16, 128)  # [B, S, H x E], q_num_heads=4
    assert estimate_macs("Attention", [three_d, three_d, three_d], [three_d]) == 2 * 4096 * 16
    past = (2, 4, 10, 32)  # 10 cached positions: the keys are 26 long
    assert estimate_macs("Attention", [q, q, q, None, past, past], [q]) == 2 * 4096 * 26
    assert not macs_estimated("Attention")


def test_custom_op_mac_estimate_is_warned_once():
    nodes = [
        helper.make_node("Frob", ["x"], ["a"], domain="my.ops"),
        helper.make_node("Frob", ["a"], ["y"], domain="my.ops"),
    ]
    model = make_model(nodes, [vi("x", [1, 4])], [vi("y", [1, 4])], extra=["my.ops"])
    model.graph.value_info.append(vi("a", [1, 4]))
    warnings = [w for w in import_model(model).report.warnings if "estimated" in w]
    assert len(warnings) == 1 and "my.ops::Frob" in warnings[0]


# ----------------------------------------------------------------------- NonZero
def test_nonzero_of_an_input_value_is_folded():
    nodes = [
        helper.make_node("NonZero", ["m"], ["idx"]),
        helper.make_node("Transpose", ["idx"], ["it"]),
        helper.make_node("GatherND", ["x", "it"], ["y"]),
    ]
    model = make_model(nodes, [vi("x", [2, 4]), vi("m", [2, 4], TensorProto.BOOL)],
                       [vi("y", None)])  # fmt: skip
    with pytest.raises(OnnxImportError, match="--input-value m:VALUE"):
        import_model(model)
    values = {"m": (1, 0, 1, 0, 1, 0, 1, 0)}
    graph = import_model(model, input_values=values).graph
    assert [op.op_type for op in graph.ops] == ["GatherND"]
    assert graph.tensor_by_name("y").size_bytes == 4 * 4


# ----------------------------------------------------------------------- odd graphs
def test_graph_without_ops_says_so():
    model = make_model([], [vi("x", [1, 4])], [vi("x", [1, 4])])
    with pytest.raises(OnnxImportError, match=r"has no ops.*nothing to plan") as info:
        import_model(model)
    assert "not an ONNX model" not in str(info.value)


def test_duplicate_graph_input_names_the_file(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])],
                       [vi("x", [1, 4]), vi("x", [1, 4])], [vi("y", None)])  # fmt: skip
    path = tmp_path / "dup.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(OnnxImportError, match=r"dup\.onnx: graph input 'x' is listed twice"):
        import_model(path)


def test_initializer_shadowing_an_input_of_another_shape_is_named():
    w = numpy_helper.from_array(np.zeros((1, 16), np.float32), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    model = make_model(nodes, [vi("x", [1, 16]), vi("w", [4, 16])], [vi("y", None)], [w],
                       opset=7, ir_version=3)  # fmt: skip
    with pytest.raises(OnnxImportError, match=r"initializer 'w' .*1,16.* 4,16") as info:
        import_model(model)
    assert "--input-shape" not in str(info.value)


def test_a_graph_output_that_names_no_tensor_is_refused(tmp_path, capsys) -> None:
    """A renamed (or truncated) output was a warning ('is a graph input or unused') and
    the model's real result was planned as dropped after its last read."""
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [vi("x", [1, 8])], [vi("renamed_out", [1, 8])])
    with pytest.raises(OnnxImportError) as info:
        import_model(model)
    message = str(info.value)
    assert "graph output 'renamed_out'" in message and "no node produces" in message
    path = tmp_path / "renamed.onnx"
    path.write_bytes(model.SerializeToString())
    code, _, err = run_cli(capsys, "inspect", path)
    assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1
    assert "renamed.onnx" in err and "'renamed_out'" in err


def test_graph_outputs_that_are_inputs_or_initializers_still_import() -> None:
    w = numpy_helper.from_array(np.ones((1, 8), np.float32), "w")
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    model = make_model(nodes, [vi("x", [1, 8])], [vi("y", [1, 8]), vi("x", [1, 8]),
                                                  vi("w", [1, 8])], [w])  # fmt: skip
    warnings = import_model(model).report.warnings
    assert any("'x' is a graph input" in line for line in warnings)
    assert any("'w' is a weight" in line for line in warnings)


@pytest.mark.parametrize("second_shape", [(4, 8), (1,)])
def test_an_initializer_defined_twice_is_named(tmp_path, second_shape) -> None:
    """Same shape: silently accepted; another shape: a shape-inference error naming no
    tensor and suggesting --input-shape. Either way the model is corrupt."""
    first = numpy_helper.from_array(np.ones((4, 8), np.float32), "c1.weight")
    second = numpy_helper.from_array(np.zeros(second_shape, np.float32), "c1.weight")
    nodes = [helper.make_node("Add", ["x", "c1.weight"], ["y"], name="add")]
    model = make_model(nodes, [vi("x", [4, 8])], [vi("y", None)], [first, second])
    path = tmp_path / "dup_init.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(OnnxImportError) as info:
        import_model(path)
    message = str(info.value)
    assert "dup_init.onnx: initializer 'c1.weight' is defined twice" in message
    assert "unique" in message and "--input-shape" not in message
    assert len(message.splitlines()) == 1


def test_a_tensor_made_twice_is_named() -> None:
    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    over_init = [helper.make_node("Relu", ["x"], ["w"], name="relu")]
    model = make_model(over_init, [vi("x", [4])], [vi("w", None)], [w])
    with pytest.raises(OnnxImportError, match=r"'w' is produced by node 'relu' but is also an "
                                              r"initializer"):  # fmt: skip
        import_model(model)
    over_input = [helper.make_node("Relu", ["y"], ["x"], name="relu")]
    model = make_model(over_input, [vi("x", [4]), vi("y", [4])], [vi("x", None)])
    with pytest.raises(OnnxImportError, match=r"'x' is produced by node 'relu' but is also a "
                                              r"graph input"):  # fmt: skip
        import_model(model)
    twice = [helper.make_node("Split", ["x"], ["a", "a"], name="split", num_outputs=2)]
    model = make_model(twice, [vi("x", [4])], [vi("a", None)], opset=18)
    with pytest.raises(OnnxImportError, match=r"node 'split' \(Split\) lists output 'a' twice"):
        import_model(model)
    two_nodes = [helper.make_node("Relu", ["x"], ["a"], name="n1"),
                 helper.make_node("Neg", ["x"], ["a"], name="n2")]  # fmt: skip
    model = make_model(two_nodes, [vi("x", [4])], [vi("a", None)])
    with pytest.raises(OnnxImportError, match=r"'a' is produced by both 'n1' and 'n2'"):
        import_model(model)


def test_a_model_without_outputs_is_planned_with_a_warning() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["y"], ["z"])]
    model = make_model(nodes, [vi("x", [1, 8])], [])
    result = import_model(model)
    assert result.graph.num_ops == 2
    assert any("declares no graph output" in w for w in result.report.warnings)
    with_output = make_model(nodes, [vi("x", [1, 8])], [vi("z", [1, 8])])
    assert not any("no graph output" in w for w in import_model(with_output).report.warnings)


def test_a_resize_whose_float_scales_are_external_data_imports(tmp_path: Path) -> None:
    """Small external tensors of any numeric type are read: a Resize's output shape
    depends on its float scales (it was refused as a 'too large computation')."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "sc")
    raw = scales.raw_data
    set_external_data(scales, "sc.data")
    scales.ClearField("raw_data")
    scales.data_location = TensorProto.EXTERNAL
    (tmp_path / "sc.data").write_bytes(raw)
    nodes = [helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest")]
    model = make_model(nodes, [vi("x", [1, 2, 4, 4])], [vi("y", [1, 2, 8, 8])], [scales])
    path = tmp_path / "resize.onnx"
    path.write_bytes(model.SerializeToString())
    graph = import_model(path).graph
    sizes = {t.name: t.size_bytes for t in graph.tensors}
    assert sizes["y"] == 1 * 2 * 8 * 8 * 4


# ----------------------------------------------------------------------- QDQ weights
def qdq_conv_model():
    """x -> Conv(DequantizeLinear(int8 w[8,4,3,3], per-channel scale)) -> y: a QDQ weight."""
    inits = [
        numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "wq"),
        numpy_helper.from_array(np.full(8, 0.01, np.float32), "ws"),
        numpy_helper.from_array(np.zeros(8, np.int8), "wz"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq", axis=0),
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    return make_model(nodes, [vi("x", [1, 4, 8, 8])], [vi("y", None)], inits, opset=13)


def test_dequantized_weights_are_said_with_the_fix():
    """The int8 weight folds into a float32 weight 4x its stored bytes; the import said
    nothing, so weight bytes and traffic were 4x the file's without a word."""
    result = import_model(qdq_conv_model())
    w = result.graph.tensor_by_name("w")
    assert (w.dtype, w.size_bytes) == ("float32", 8 * 4 * 3 * 3 * 4)
    (warning,) = [w for w in result.report.warnings if "dequantized" in w]
    assert "1,152 B, 4.0x the 288 B stored" in warning and "--dtype-bytes 1" in warning
    one_byte = import_model(qdq_conv_model(), dtype_bytes=1)
    assert one_byte.graph.tensor_by_name("w").size_bytes == 288
    assert not [w for w in one_byte.report.warnings if "dequantized" in w]
