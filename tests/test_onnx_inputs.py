"""Graph inputs at import: ``--input-value``, and symbolic dims reported all at once."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper
from onnx_patterns import BOOL, I64, make_model, vi

from memplan.cli import EXIT_BAD_INPUT, EXIT_OK, main
from memplan.errors import ConfigError, OnnxImportError
from memplan.onnx.flags import checked_arguments
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


def test_input_shapes_must_agree_on_a_shared_symbolic_dim():
    # images[batch, ...] and tokens[batch, seq] share 'batch': one run has one batch
    # size (images of batch 1 with tokens of batch 2 were planned without a word).
    shapes = {"images": (1, 3, 4, 4), "tokens": (2, 8)}
    with pytest.raises(ConfigError) as info:
        import_model(two_input_model(), input_shapes=shapes)
    message = str(info.value)
    assert "--input-shape tokens:2,8 gives the symbolic dim 'batch' the size 2" in message
    assert "but --input-shape images:1,3,4,4 gives it 1" in message
    assert "--dim batch=N" in message and "\n" not in message
    shapes["tokens"] = (1, 8)
    g = import_model(two_input_model(), input_shapes=shapes).graph
    assert g.tensor_by_name("a").shape == (1, 3, 4, 4) and g.tensor_by_name("b").shape == (1, 8)


def test_dim_recomputes_shapes_recorded_at_the_export_sizes():
    # torch.onnx's dynamo exporter recorded a GRU's output as [batch, 5, 32] for an
    # input [batch, seq, 16]; with --dim seq=10 those stale sizes were planned (a Relu
    # of 2x10x4 giving 2x5x4), where --input-shape x:2,10,4 recomputed them.
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu"),
             helper.make_node("Neg", ["a"], ["y"], name="neg")]  # fmt: skip
    model = make_model(nodes, [vi("x", ["batch", "seq", 4])], [vi("y", [2, 5, 4])])
    model.graph.value_info.append(vi("a", ["batch", 5, 4]))
    for options in ({"dims": {"batch": 2, "seq": 10}}, {"input_shapes": {"x": (2, 10, 4)}}):
        g = import_model(model, **options).graph
        assert g.tensor_by_name("a").shape == g.tensor_by_name("y").shape == (2, 10, 4)
    g = import_model(model, dims={"batch": 2, "seq": 5}).graph
    assert g.tensor_by_name("y").shape == (2, 5, 4)


def test_a_custom_op_keeps_its_recorded_shape_under_new_input_sizes():
    # Shape inference cannot recompute a custom op's output: its record, with the given
    # sizes filled in, is kept (with --input-shape it was dropped, and the import then
    # asked to record the shape that the model did record).
    nodes = [helper.make_node("Double", ["x"], ["a"], name="double", domain="com.acme"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]  # fmt: skip
    model = make_model(nodes, [vi("x", ["batch", "seq", 4])], [vi("y", ["batch", 5, 4])])
    model.opset_import.append(helper.make_opsetid("com.acme", 1))
    model.graph.value_info.append(vi("a", ["batch", "seq", 4]))
    for options in ({"dims": {"batch": 2, "seq": 10}}, {"input_shapes": {"x": (2, 10, 4)}}):
        g = import_model(model, **options).graph
        assert g.tensor_by_name("a").shape == g.tensor_by_name("y").shape == (2, 10, 4)


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
    for bad in (["sr"], ["sr:"], [":3"], ["sr:x"], ["sr:1", "sr:2"], ["t:nan"], ["t:inf"]):
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


# ----------------------------------------------------------------------- flags vs the model
def dyn_model():
    """x[batch,3,H,W] -> Conv(w 4x3x1x1) -> y: channels fixed at 3, the rest symbolic."""
    import numpy as np
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    return make_model(nodes, [vi("x", ["batch", 3, "H", "W"])], [vi("y", None)], [w])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--input-shape", "x:2,4,8,8"],
         "--input-shape x:2,4,8,8: dim 1 of input 'x' is fixed at 3 in the model (shape "
         "[batch,3,H,W]); only symbolic or unknown dims can be set"),
        (["--input-shape", "x:2,3,8"], "has rank 3, but input 'x' has rank 4"),
        (["--dim", "nosuch=3", "batch=1", "H=8", "W=8"],
         "--dim nosuch: the model has no symbolic dim 'nosuch'; its symbolic dims are "
         "batch, H, W"),
        (["--dim", "batch=2", "--input-shape", "x:1,3,8,8"],
         "dim 0 of input 'x' is the symbolic dim 'batch', which --dim sets to 2"),
    ],
)  # fmt: skip
def test_cli_flags_that_do_not_fit_the_model(tmp_path, capsys, flags, message):
    """One line naming the file, the flag and what is allowed; exit 2, no plan written."""
    path = tmp_path / "dyn.onnx"
    path.write_bytes(dyn_model().SerializeToString())
    plan = tmp_path / "plan.json"
    code = main(["optimize", str(path), *flags, "--time-limit", "1", "-o", str(plan)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"{path}: " in err and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not plan.exists()


def test_cli_dim_on_a_fixed_model_and_a_fixed_dim_repeated(tmp_path, capsys):
    path = tmp_path / "fixed.onnx"
    model = dyn_model()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, (1, 3, 8, 8), strict=True):
        dim.dim_value = size
    path.write_bytes(model.SerializeToString())
    assert main(["inspect", str(path), "--dim", "batch=4"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}: --dim batch: the model has no symbolic dims" in err
    assert main(["inspect", str(path), "--input-shape", "x:1,3,8,8", "--json"]) == EXIT_OK
    capsys.readouterr()


# ----------------------------------------------------------------------- API argument types
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": {"batch": "x"}}, r"dims\['batch'\] is 'x'; a dim size is a positive whole"),
        ({"dims": {"batch": 1.0}}, r"dims\['batch'\] is 1.0"),
        ({"dims": {"batch": True}}, r"dims\['batch'\] is True"),
        ({"dims": [("batch", 1)]}, r"dims must be a mapping of symbolic dim name to size.*list"),
        ({"dims": {3: 1}}, "dims has the key 3; the keys are names"),
        ({"dtype_bytes": "2"}, "dtype_bytes is '2'; give a positive whole number of bytes"),
        ({"dtype_bytes": 1.5}, "dtype_bytes is 1.5"),
        ({"dtype_bytes": 0}, "dtype_bytes is 0"),
        ({"input_shapes": {"x": [1, 3, 8.5, 8]}}, r"input_shapes\['x'\] is \[1, 3, 8.5, 8\]; a "
         "shape is a sequence of positive whole numbers"),
        ({"input_shapes": {"x": "1,3,8,8"}}, r"input_shapes\['x'\] is '1,3,8,8'"),
        ({"input_shapes": {"x": [1, 0, 8, 8]}}, r"input_shapes\['x'\]"),
        ({"input_shapes": [1, 3, 8, 8]}, "input_shapes must be a mapping"),
        ({"input_values": {"k": 3}}, r"input_values\['k'\] is 3; the values are a non-empty"),
        ({"input_values": {"k": []}}, r"input_values\['k'\] is \[\]"),
        ({"input_values": {"k": ["3"]}}, r"input_values\['k'\]"),
        ({"input_values": {"k": [float("nan")]}}, r"input_values\['k'\]"),
        ({"aliases": "no"}, "aliases is 'no'; give True or False"),
        ({"aliases": 0}, "aliases is 0"),
    ],
)  # fmt: skip
def test_import_model_checks_argument_types(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        import_model(dyn_model(), **kwargs)


def test_numpy_arguments_become_plain_values():
    import numpy as np

    checked = checked_arguments(
        input_shapes={"x": np.array([1, 3, 8, 8])},
        dims={"batch": np.int64(2)},
        input_values={"k": np.array([1, 0], bool)},
        dtype_bytes=np.int32(1),
    )
    assert checked.input_shapes == {"x": (1, 3, 8, 8)} and checked.dims == {"batch": 2}
    assert checked.input_values == {"k": (True, False)} and checked.dtype_bytes == 1
    assert all(type(d) is int for d in (*checked.input_shapes["x"], checked.dims["batch"]))
    assert all(type(v) is bool for v in checked.input_values["k"])
