"""Graph inputs at import: ``--input-value``, and symbolic dims reported all at once."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper
from onnx_patterns import BOOL, I64, make_model, vi

from memplan.cli import EXIT_BAD_INPUT, EXIT_OK, main
from memplan.errors import ConfigError, OnnxImportError
from memplan.onnx.importer import import_model, parse_input_values
from memplan.onnx.inputs import example_dim_size


def two_input_model():
    """images[batch,3,height,width] and tokens[batch,seq] feeding two Relus."""
    nodes = [helper.make_node("Relu", ["images"], ["a"], name="relu_a"),
             helper.make_node("Relu", ["tokens"], ["b"], name="relu_b")]  # fmt: skip
    inputs = [vi("images", ["batch", 3, "height", "width"]), vi("tokens", ["batch", "seq"])]
    return make_model(nodes, inputs, [vi("a", None), vi("b", None)])


# ----------------------------------------------------------------------- symbolic dims
def test_every_symbolic_dim_is_reported_at_once_with_its_own_name():
    with pytest.raises(OnnxImportError) as info:
        import_model(two_input_model())
    message = str(info.value)
    assert "symbolic dims 'batch' (images[0], tokens[0]), 'height' (images[2])" in message
    assert "'width' (images[3]), 'seq' (tokens[1])" in message
    assert "--dim batch=1 --dim height=640 --dim width=640 --dim seq=128" in message
    assert "--input-shape images:1,3,640,640" in message
    assert "\n" not in message


def test_remaining_dims_are_reported_after_some_are_given():
    with pytest.raises(OnnxImportError) as info:
        import_model(two_input_model(), dims={"batch": 1, "seq": 8})
    message = str(info.value)
    assert "'height' (images[2]), 'width' (images[3])" in message
    assert "batch" not in message and "seq" not in message
    g = import_model(two_input_model(), dims={"batch": 1, "seq": 8, "height": 4, "width": 5}).graph
    assert g.tensor_by_name("a").shape == (1, 3, 4, 5) and g.tensor_by_name("b").shape == (1, 8)


def test_nameless_and_rankless_inputs_need_input_shape():
    nodes = [helper.make_node("Add", ["x", "z"], ["y"], name="add")]
    model = make_model(nodes, [vi("x", [None, 4]), vi("z", None)], [vi("y", None)])
    with pytest.raises(OnnxImportError) as info:
        import_model(model)
    message = str(info.value)
    assert "input 'x' has unknown dim(s) 0 with no name" in message
    assert "--input-shape x:1,4" in message
    assert "input 'z' has no shape at all" in message
    g = import_model(model, input_shapes={"x": (2, 4), "z": (2, 4)}).graph
    assert g.tensor_by_name("y").shape == (2, 4)


@pytest.mark.parametrize(
    ("name", "size"),
    [("batch", 1), ("N", 1), ("batch_size", 1), ("height", 640), ("img_w", 640),
     ("samples", 16000), ("seq_len", 128), ("frames", 128), ("unk__3", 64)],
)  # fmt: skip
def test_example_sizes_follow_the_dim_names(name, size):
    assert example_dim_size(name) == size


# ----------------------------------------------------------------------- input values
def scaled_model(elem=I64, shape=()):
    """y = x * Cast(k): k is a setting input that becomes a weight once fixed."""
    nodes = [helper.make_node("Cast", ["k"], ["kf"], name="cast", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "kf"], ["y"], name="mul")]  # fmt: skip
    return make_model(nodes, [vi("x", [4]), vi("k", list(shape), elem)], [vi("y", None)])


def test_parse_input_values():
    parsed = parse_input_values(["sr:16000", "ns:a:1,2", "t:1.5", "f:true", "g:False"])
    assert parsed == {"sr": (16000,), "ns:a": (1, 2), "t": (1.5,), "f": (True,), "g": (False,)}
    for bad in (["sr"], ["sr:"], [":3"], ["sr:x"], ["sr:1", "sr:2"]):
        with pytest.raises(ConfigError, match="--input-value"):
            parse_input_values(bad)


def test_fixed_value_becomes_a_weight_and_folds():
    result = import_model(scaled_model(), input_values={"k": (3,)})
    g = result.graph
    assert [op.op_type for op in g.ops] == ["Mul"]
    assert g.tensor_by_name("kf").kind.value == "weight"
    assert "k" not in {t.name for t in g.tensors}
    assert result.report.input_values == (("k", "3"),)
    assert [name for name, _ in result.report.input_shapes] == ["x"]


@pytest.mark.parametrize(
    ("model", "values", "message"),
    [
        (scaled_model(), {"q": (1,)}, r"names 'q', which is not a graph input; .*'x', 'k'"),
        (scaled_model(), {"k": (1.5,)}, "holds whole numbers"),
        (scaled_model(), {"k": (1, 2)}, r"gives 2 value\(s\), but input 'k' has shape \[\]"),
        (scaled_model(shape=["n", "m"]), {"k": (1, 2)}, "with --input-shape as well"),
        (scaled_model(TensorProto.INT8), {"k": (300,)}, "does not fit in int8"),
        (scaled_model(TensorProto.STRING), {"k": (1,)}, "only numbers and booleans"),
    ],
)
def test_bad_input_values_are_config_errors(model, values, message):
    with pytest.raises(ConfigError, match=message):
        import_model(model, input_values=values)


def test_input_values_fill_vectors_and_shaped_inputs():
    one_d = import_model(scaled_model(shape=["n"]), input_values={"k": (1, 2, 3, 4)})
    assert one_d.graph.tensor_by_name("kf").shape == (4,)
    shaped = import_model(scaled_model(BOOL, shape=[1, 4]), input_values={"k": (1, 0, 0, 1)})
    assert shaped.graph.tensor_by_name("kf").shape == (1, 4)
    assert shaped.report.input_values == (("k", "True,False,False,True"),)


def test_old_models_keep_a_fixed_input_listed():
    model = scaled_model()
    model.ir_version = 3
    model.opset_import[0].version = 8
    g = import_model(model, input_values={"k": (2,)}).graph
    assert [t.name for t in g.tensors if t.kind.value == "input"] == ["x"]


def test_cli_input_value_flag(tmp_path, capsys):
    path = tmp_path / "scaled.onnx"
    path.write_bytes(scaled_model().SerializeToString())
    assert main(["inspect", str(path), "--input-value", "k:3", "--json"]) == EXIT_OK
    assert '"ops": 1' in capsys.readouterr().out
    assert main(["inspect", str(path), "--input-value", "k:1.5"]) == EXIT_BAD_INPUT
    assert "holds whole numbers" in capsys.readouterr().err
    assert main(["inspect", str(path), "--input-value", "k"]) == EXIT_BAD_INPUT
    assert "NAME:VALUE" in capsys.readouterr().err
