"""Tests of the ONNX importer on small hand-built models and on the onnx wheel's light models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from helpers import LIGHT_MODELS, light_model_path
from onnx import TensorProto, helper, numpy_helper

from memplan.accelerator import load_accelerator
from memplan.analysis import model_order, peak_live_bytes
from memplan.errors import ConfigError, OnnxImportError
from memplan.ir import TensorKind
from memplan.onnx.importer import import_model, parse_dims, parse_input_shapes
from memplan.onnx.macs import estimate_macs
from memplan.problem import Problem

F = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8, name="m"):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def conv_model(batch="N"):
    """x[batch,3,8,8] -> Conv(w 4x3x3x3, pad 1) -> c -> Relu -> y."""
    w = init("w", np.zeros((4, 3, 3, 3), np.float32))
    b = init("b", np.zeros((4,), np.float32))
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    return make_model(nodes, [vi("x", [batch, 3, 8, 8])], [vi("y", None)], [w, b])


# ----------------------------------------------------------------------- basics
def test_conv_relu_kinds_sizes_and_macs():
    result = import_model(conv_model(batch=1))
    g = result.graph
    assert [op.op_type for op in g.ops] == ["Conv", "Relu"]
    kinds = {t.name: t.kind for t in g.tensors}
    assert kinds == {
        "x": TensorKind.INPUT,
        "w": TensorKind.WEIGHT,
        "b": TensorKind.WEIGHT,
        "c": TensorKind.ACTIVATION,
        "y": TensorKind.ACTIVATION,
    }
    assert g.tensor_by_name("x").size_bytes == 3 * 8 * 8 * 4
    assert g.tensor_by_name("w").size_bytes == 4 * 3 * 3 * 3 * 4
    assert g.tensor_by_name("y").is_output and not g.tensor_by_name("c").is_output
    assert g.tensor_by_name("c").shape == (1, 4, 8, 8)
    assert g.tensor_by_name("c").dtype == "float32"
    assert g.op_by_name("conv").macs == 4 * 8 * 8 * 3 * 3 * 3
    assert g.op_by_name("relu").macs == 4 * 8 * 8
    assert result.report.weight_tensors == 2


def test_model_proto_is_not_modified_and_dtype_override():
    model = conv_model()
    before = model.SerializeToString()
    g = import_model(model, dims={"N": 2}, dtype_bytes=1).graph
    assert model.SerializeToString() == before
    assert g.tensor_by_name("x").size_bytes == 2 * 3 * 8 * 8
    assert g.tensor_by_name("y").size_bytes == 2 * 4 * 8 * 8


# ----------------------------------------------------------------------- symbolic dims
def test_symbolic_dim_error_names_tensor_and_both_flags():
    with pytest.raises(OnnxImportError) as info:
        import_model(conv_model())
    message = str(info.value)
    assert "symbolic dim 'N'" in message
    assert "--dim N=1" in message and "--input-shape x:1,3,8,8" in message


def test_input_shape_flag_fixes_shapes():
    g = import_model(conv_model(), input_shapes={"x": (3, 3, 8, 8)}).graph
    assert g.tensor_by_name("y").shape == (3, 4, 8, 8)


def test_input_shape_naming_no_input_or_wrong_rank():
    with pytest.raises(ConfigError, match=r"not a graph input.*'x'"):
        import_model(conv_model(), input_shapes={"w": (1,)})
    with pytest.raises(ConfigError, match=r"rank 3.*rank 4"):
        import_model(conv_model(), input_shapes={"x": (1, 3, 8)})


@pytest.mark.parametrize(
    ("batch", "shape", "message"),
    [
        ("N", (1, 4, 8, 8), r"--input-shape x:1,4,8,8: dim 1 of input 'x' is fixed at 3 in the "
         r"model \(shape \[N,3,8,8\]\); only symbolic or unknown dims can be set"),
        (1, (2, 3, 8, 8), "dim 0 of input 'x' is fixed at 1"),
        (1, (1, 3, 8, 9), "dim 3 of input 'x' is fixed at 8"),
        (1, (1, 3, 64), r"rank 3, but input 'x' has rank 4 \(shape \[1,3,8,8\]\); give 4 dims"),
    ],
)  # fmt: skip
def test_input_shape_may_not_change_a_fixed_dim(batch, shape, message):
    """The first Conv's weight has 3 input channels: an input of 4 would be a silent lie."""
    with pytest.raises(ConfigError, match=message) as info:
        import_model(conv_model(batch), input_shapes={"x": shape})
    assert str(info.value).startswith("m: --input-shape x:") and "\n" not in str(info.value)


def test_input_shape_may_repeat_fixed_dims_and_set_free_ones():
    g = import_model(conv_model(batch=1), input_shapes={"x": (1, 3, 8, 8)}).graph
    assert g.tensor_by_name("y").shape == (1, 4, 8, 8)
    free = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [vi("x", [None, 0, "n"])], [vi("y", None)])  # fmt: skip
    g = import_model(free, input_shapes={"x": (2, 5, 7)}).graph  # a 0 dim counts as unknown
    assert g.tensor_by_name("y").shape == (2, 5, 7)


def test_input_shape_and_dim_must_agree():
    with pytest.raises(ConfigError, match=r"dim 0 of input 'x' is the symbolic dim 'N', which "
                       r"--dim sets to 2; give the same size in both"):  # fmt: skip
        import_model(conv_model(), input_shapes={"x": (1, 3, 8, 8)}, dims={"N": 2})
    g = import_model(conv_model(), input_shapes={"x": (2, 3, 8, 8)}, dims={"N": 2}).graph
    assert g.tensor_by_name("y").shape == (2, 4, 8, 8)


def test_unknown_dim_is_an_error_listing_the_models_dims():
    with pytest.raises(ConfigError, match=r"^m: --dim seq: the model has no symbolic dim 'seq'; "
                       r"its symbolic dims are N$"):  # fmt: skip
        import_model(conv_model(), dims={"N": 1, "seq": 4})
    with pytest.raises(ConfigError, match=r"--dim a, b: .* no symbolic dims 'a', 'b'; its"):
        import_model(conv_model(), dims={"a": 1, "b": 4})
    with pytest.raises(ConfigError, match=r"^m: --dim N: the model has no symbolic dims, so "
                       r"--dim does not apply; leave it out$"):  # fmt: skip
        import_model(conv_model(batch=1), dims={"N": 1})
    nameless = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                          [vi("x", [None, 4])], [vi("y", None)])  # fmt: skip
    with pytest.raises(ConfigError, match="unknown dims have no name: set them with --input-sh"):
        import_model(nameless, dims={"batch": 1})


def test_a_dim_named_only_by_an_output_may_be_given():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                       [vi("x", [2, 4])], [vi("y", ["rows", 4])])  # fmt: skip
    assert import_model(model, dims={"rows": 2}).graph.tensor_by_name("y").shape == (2, 4)


def test_parse_flags():
    assert parse_input_shapes(["x:1,3,224,224", "ns:a:2, 5", "s:"]) == {
        "x": (1, 3, 224, 224),
        "ns:a": (2, 5),
        "s": (),
    }
    assert parse_dims(["batch=1", " seq = 128 "]) == {"batch": 1, "seq": 128}
    for bad in (["x"], ["x:1,a"], ["x:0,3"], ["x:1", "x:2"]):
        with pytest.raises(ConfigError, match="--input-shape"):
            parse_input_shapes(bad)
    for bad in (["batch"], ["batch=x"], ["batch=0"], ["=3"], ["b=1", "b=2"]):
        with pytest.raises(ConfigError, match="--dim"):
            parse_dims(bad)


# ----------------------------------------------------------------------- aliases
def view_chain_model():
    """x -> Relu a -> Reshape r -> Squeeze s -> Relu b -> Flatten f (graph output)."""
    shape = init("shape", np.array([1, 1, 4, 16], np.int64))
    axes = init("axes", np.array([0], np.int64))
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
        helper.make_node("Reshape", ["a", "shape"], ["r"], name="reshape"),
        helper.make_node("Squeeze", ["r", "axes"], ["s"], name="squeeze"),
        helper.make_node("Relu", ["s"], ["b"], name="relu_b"),
        helper.make_node("Flatten", ["b"], ["f"], name="flatten"),
    ]
    return make_model(nodes, [vi("x", [1, 4, 4, 4])], [vi("f", None)], [shape, axes])


def test_aliases_of_aliases_and_of_a_graph_output():
    result = import_model(view_chain_model())
    g = result.graph
    assert [op.name for op in g.ops] == ["relu_a", "relu_b"]
    # relu_b reads relu_a's buffer through two views; the flatten output is relu_b's buffer.
    assert g.ops[1].inputs == (g.tensor_by_name("a").id,)
    assert g.tensor_by_name("b").is_output
    assert dict(result.report.aliases) == {"r": "a", "s": "a", "f": "b"}
    names = {t.name for t in g.tensors}
    assert not names & {"r", "s", "f"}


def test_aliases_switched_off_keeps_view_ops():
    result = import_model(view_chain_model(), aliases=False)
    g = result.graph
    assert [op.op_type for op in g.ops] == ["Relu", "Reshape", "Squeeze", "Relu", "Flatten"]
    assert result.report.aliases == ()
    assert len(result.report.kept_views) == 3
    assert g.tensor_by_name("f").is_output and not g.tensor_by_name("b").is_output
    assert g.tensor_by_name("shape").kind is TensorKind.WEIGHT


def test_view_of_graph_input_that_is_a_graph_output_is_kept():
    nodes = [
        helper.make_node("Identity", ["x"], ["y"], name="id"),
        helper.make_node("Relu", ["x"], ["z"], name="relu"),
    ]
    result = import_model(make_model(nodes, [vi("x", [4])], [vi("y", [4]), vi("z", [4])]))
    assert [op.op_type for op in result.graph.ops] == ["Identity", "Relu"]
    assert result.graph.tensor_by_name("y").is_output
    assert any("id" in v for v in result.report.kept_views)


def test_alias_of_a_weight_is_a_weight():
    w = init("w", np.ones((4, 4), np.float32))
    nodes = [
        helper.make_node("Identity", ["w"], ["wi"], name="id"),
        helper.make_node("MatMul", ["x", "wi"], ["y"], name="mm"),
    ]
    g = import_model(make_model(nodes, [vi("x", [2, 4])], [vi("y", None)], [w])).graph
    assert [op.op_type for op in g.ops] == ["MatMul"]
    read = g.tensors[g.ops[0].inputs[1]]
    assert read.kind is TensorKind.WEIGHT and read.size_bytes == 64
    assert g.ops[0].macs == 2 * 4 * 4


# ----------------------------------------------------------------------- multi-output ops
def test_split_and_maxpool_with_indices_keep_all_outputs():
    nodes = [
        helper.make_node("Split", ["x"], ["p", "q", "unused"], name="split", axis=1, num_outputs=3),
        helper.make_node(
            "MaxPool", ["p"], ["mp", "idx"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Add", ["mp", "mp"], ["y"], name="add"),
        helper.make_node("Relu", ["q"], ["z"], name="relu"),
    ]
    model = make_model(nodes, [vi("x", [1, 6, 4, 4])], [vi("y", None), vi("z", None)], opset=18)
    g = import_model(model).graph
    split = g.op_by_name("split")
    assert [g.tensors[t].name for t in split.outputs] == ["p", "q", "unused"]
    assert g.consumers[g.tensor_by_name("unused").id] == ()
    pool = g.op_by_name("pool")
    assert len(pool.outputs) == 2
    idx = g.tensor_by_name("idx")
    assert idx.dtype == "int64" and idx.size_bytes == 2 * 2 * 2 * 8
    assert pool.macs == 2 * 2 * 2 * 4
    add = g.op_by_name("add")
    assert add.inputs == (g.tensor_by_name("mp").id,) * 2


def test_dropout_with_read_mask_is_kept_with_unread_mask_aliased():
    read = [
        helper.make_node("Dropout", ["x"], ["d", "mask"], name="drop"),
        helper.make_node("Cast", ["mask"], ["m"], name="cast", to=F),
        helper.make_node("Add", ["d", "m"], ["y"], name="add"),
    ]
    g = import_model(make_model(read, [vi("x", [8])], [vi("y", None)])).graph
    drop = g.op_by_name("drop")
    assert len(drop.outputs) == 2 and g.tensor_by_name("mask").dtype == "bool"
    unread = [
        helper.make_node("Dropout", ["x"], ["d", "mask"], name="drop"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    result = import_model(make_model(unread, [vi("x", [8])], [vi("y", None)]))
    assert [op.op_type for op in result.graph.ops] == ["Relu"]
    assert result.report.aliases == (("d", "x"),)
    assert any("mask" in w for w in result.report.warnings)
    kept = import_model(make_model(unread, [vi("x", [8])], [vi("y", None)]), aliases=False)
    assert len(kept.graph.op_by_name("drop").outputs) == 2  # unused mask is still an output


def test_training_mode_dropout_is_not_an_alias():
    nodes = [
        helper.make_node("Dropout", ["x", "", "train"], ["d"], name="drop"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    model = make_model(nodes, [vi("x", [8]), vi("train", [], TensorProto.BOOL)], [vi("y", None)])
    result = import_model(model)
    assert [op.op_type for op in result.graph.ops] == ["Dropout", "Relu"]
    assert "training_mode" in result.report.kept_views[0]


@pytest.mark.parametrize(("opset", "stats"), [(13, 4), (15, 2)])
def test_training_mode_batchnorm_statistics_are_sized(opset, stats):
    """torch.onnx.export(..., training=TrainingMode.TRAINING) writes BatchNormalization
    with its statistics outputs, which ONNX shape inference leaves unsized; the import
    stopped, saying the size of a [C] vector 'depends on the values in' the conv output."""
    c = 4
    params = [init(n, np.ones(c, np.float32)) for n in ("scale", "bias", "mean", "var")]
    outs = ["bn", *(f"stat{i}" for i in range(stats))]
    extra = {"training_mode": 1} if opset >= 14 else {}
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node(
            "BatchNormalization", ["r", "scale", "bias", "mean", "var"], outs, name="bn", **extra
        ),
        helper.make_node("Relu", ["bn"], ["y"], name="out"),
    ]
    model = make_model(nodes, [vi("x", [2, c, 8, 8])], [vi("y", None)], params, opset=opset)
    g = import_model(model).graph
    bn = g.op_by_name("bn")
    assert len(bn.outputs) == 1 + stats
    for i in range(stats):
        stat = g.tensor_by_name(f"stat{i}")
        assert stat.shape == (c,) and stat.dtype == "float32" and stat.size_bytes == 4 * c


def test_an_empty_weight_is_no_input_and_no_warning():
    """torch's opset-11 interpolate writes Resize(x, roi=[], scales): the empty roi was a
    1-byte weight with a warning ('has no elements; counted as 1 byte') on every UNet
    export, and under --scope all it took an aligned slot of the scratchpad."""
    nodes = [
        helper.make_node("Constant", [], ["roi"], name="roi",
                         value=numpy_helper.from_array(np.zeros(0, np.float32), "roi")),
        helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="up", mode="nearest"),
    ]  # fmt: skip
    scales = init("scales", np.array([1, 1, 2, 2], np.float32))
    model = make_model(nodes, [vi("x", [1, 2, 4, 4])], [vi("y", None)], [scales], opset=11)
    result = import_model(model)
    g = result.graph
    up = g.op_by_name("up")
    assert [g.tensors[t].name for t in up.inputs] == ["x", "scales"]
    assert "roi" not in {t.name for t in g.tensors}
    assert not result.report.warnings
    assert g.tensor_by_name("y").size_bytes == 2 * 8 * 8 * 4


def test_a_stale_recorded_shape_is_recomputed_and_said():
    """A graph output declared [5,5] for an Add of [4,8] inputs (an input shape edited by
    hand) was planned at the record: 100 B for a 128-B tensor, without a word."""
    nodes = [
        helper.make_node("Add", ["x", "x"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
    ]
    model = make_model(nodes, [vi("x", [4, 8])], [vi("y", [5, 5])])
    model.graph.value_info.append(vi("a", [9, 8]))
    result = import_model(model)
    g = result.graph
    assert g.tensor_by_name("y").shape == (4, 8) and g.tensor_by_name("y").size_bytes == 128
    assert g.tensor_by_name("a").size_bytes == 128
    (warning,) = result.report.warnings
    assert "records tensor 'a' as [9,8], but its inputs make it [4,8] (and 1 more)" in warning
    # A record that agrees, or one with symbolic dims, is no warning.
    model = make_model(nodes, [vi("x", [4, 8])], [vi("y", ["n", 8])])
    model.graph.value_info.append(vi("a", [4, 8]))
    assert not import_model(model).report.warnings


@pytest.mark.parametrize(
    ("op", "opset", "groups"),
    [
        ("GroupNormalization", 21, 4),
        ("GroupNormalization", 18, 2),
        ("MeanVarianceNormalization", 13, 0),
    ],
)
def test_normalizations_without_onnx_shape_inference_keep_their_input_shape(op, opset, groups):
    """ONNX has no shape inference for GroupNormalization (torch's dynamo exporter writes
    nn.GroupNorm as one at opset 21) or MeanVarianceNormalization: with --dim on such an
    export, or a model without value_info, the import stopped with 'opset 21 is too
    old. Convert the model ... to 13'. The output has the input's shape, and the ops
    after it are sized from it."""
    params = [init(n, np.ones(groups, np.float32)) for n in ("scale", "bias")] if groups else []
    extra = {"num_groups": 2} if groups else {}
    nodes = [
        helper.make_node(op, ["x", *(p.name for p in params)], ["n"], name="norm", **extra),
        helper.make_node("Sigmoid", ["n"], ["s"], name="sig"),
        helper.make_node("Mul", ["n", "s"], ["y"], name="silu"),
    ]
    model = make_model(nodes, [vi("x", ["batch", 4, 8, 8])], [vi("y", None)], params, opset=opset)
    g = import_model(model, dims={"batch": 2}).graph
    for name in ("n", "s", "y"):
        assert g.tensor_by_name(name).shape == (2, 4, 8, 8)
        assert g.tensor_by_name(name).size_bytes == 2 * 4 * 8 * 8 * 4


def test_a_dim_only_outputs_have_that_contradicts_the_inputs_is_said():
    """A KV cache exported with dynamic_axes names the output's length 'total'; --dim
    total=50 for inputs of 100 + 1 positions was taken without a word (and planned at
    101: the inputs decide). Giving it right, or leaving it out, says nothing."""
    nodes = [helper.make_node("Concat", ["past", "x"], ["k"], name="cat", axis=1)]
    model = make_model(
        nodes, [vi("past", [1, "past", 8]), vi("x", [1, "seq", 8])], [vi("k", [1, "total", 8])]
    )
    result = import_model(model, dims={"seq": 1, "past": 100, "total": 50})
    assert result.graph.tensor_by_name("k").shape == (1, 101, 8)
    (warning,) = result.report.warnings
    assert "records tensor 'k' as [1,50,8], but its inputs make it [1,101,8]" in warning
    assert "check --dim" in warning
    for dims in ({"seq": 1, "past": 100, "total": 101}, {"seq": 1, "past": 100}):
        assert not import_model(model, dims=dims).report.warnings


# ----------------------------------------------------------------------- constant folding
def test_constants_fold_into_weights():
    shape = init("wshape", np.array([4, 4], np.int64))
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["wshape"],
            ["w"],
            name="cos",
            value=numpy_helper.from_array(np.array([0.5], np.float32)),
        ),
        helper.make_node(
            "Constant",
            [],
            ["k"],
            name="const",
            value=numpy_helper.from_array(np.ones((4,), np.float32)),
        ),
        helper.make_node("Shape", ["w"], ["ws"], name="shape_of_w"),
        helper.make_node(
            "Constant",
            [],
            ["zero"],
            name="c0",
            value=numpy_helper.from_array(np.array(0, np.int64)),
        ),
        helper.make_node("Gather", ["ws", "zero"], ["n"], name="gather"),
        helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "k"], ["a"], name="add"),
        helper.make_node("Shape", ["a"], ["as"], name="shape_of_a"),
        helper.make_node("Reshape", ["a", "as"], ["y"], name="reshape"),
    ]
    result = import_model(make_model(nodes, [vi("x", [2, 4])], [vi("y", None)], [shape]))
    g = result.graph
    assert [op.op_type for op in g.ops] == ["MatMul", "Add"]
    assert g.tensor_by_name("w").kind is TensorKind.WEIGHT
    assert g.tensor_by_name("w").size_bytes == 64
    assert g.tensor_by_name("k").kind is TensorKind.WEIGHT
    assert g.tensor_by_name("a").is_output  # the reshape to a graph output is an alias
    assert result.report.folded_nodes == 6
    assert dict(result.report.folded_by_type) == {
        "Constant": 2,
        "ConstantOfShape": 1,
        "Gather": 1,
        "Shape": 2,
    }
    assert result.report.weight_tensors == 2


def test_initializers_listed_as_inputs_are_weights():
    w = init("w", np.zeros((4, 4), np.float32))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = make_model(nodes, [vi("x", [1, 4]), vi("w", [4, 4])], [vi("y", None)], [w],
                       opset=9, ir_version=3)  # fmt: skip
    result = import_model(model)
    assert result.graph.tensor_by_name("w").kind is TensorKind.WEIGHT
    assert result.report.initializers_as_inputs == 1
    assert [t.name for t in result.graph.tensors if t.kind is TensorKind.INPUT] == ["x"]


def test_unsorted_nodes_are_sorted():
    nodes = [
        helper.make_node("Relu", ["a"], ["y"], name="second"),
        helper.make_node("Relu", ["x"], ["a"], name="first"),
    ]
    g = import_model(make_model(nodes, [vi("x", [4])], [vi("y", None)])).graph
    assert [op.name for op in g.ops] == ["first", "second"]


# ----------------------------------------------------------------------- bad models
def test_cycle_is_reported_with_its_nodes():
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
        helper.make_node("Relu", ["a"], ["b"], name="n2"),
    ]
    model = make_model(nodes, [vi("x", [4])], [vi("b", [4])])
    with pytest.raises(OnnxImportError, match=r"cycle \(n\d -> n\d -> n\d\)"):
        import_model(model)


def test_control_flow_is_rejected_naming_the_node():
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])], "then", [], [vi("t", [4])]
    )
    nodes = [
        helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=then)
    ]
    model = make_model(nodes, [vi("c", [], TensorProto.BOOL), vi("x", [4])], [vi("y", [4])])
    with pytest.raises(OnnxImportError, match="node 'branch' is an If whose condition 'c'"):
        import_model(model)
    # fixed, the condition folds and the If becomes its branch (an Identity of x)
    result = import_model(model, input_values={"c": (True,)})
    assert [op.op_type for op in result.graph.ops] == ["Identity"]
    assert result.report.inlined == ("branch: then branch (condition true), 1 node(s)",)


def test_string_tensors_are_rejected():
    nodes = [helper.make_node("Identity", ["s"], ["t"], name="id")]
    model = make_model(
        nodes, [vi("s", [2], TensorProto.STRING)], [vi("t", [2], TensorProto.STRING)]
    )
    with pytest.raises(OnnxImportError, match="element type 'string'"):
        import_model(model, aliases=False)
    with pytest.raises(OnnxImportError, match="string"):
        import_model(model, aliases=False, dtype_bytes=1)


def test_undefined_element_type_needs_dtype_bytes():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [vi("x", [4], TensorProto.UNDEFINED)], [vi("y", [4])])
    with pytest.raises(OnnxImportError, match="--dtype-bytes"):
        import_model(model)
    assert import_model(model, dtype_bytes=2).graph.tensor_by_name("x").size_bytes == 8


def test_missing_empty_corrupt_and_truncated_files(tmp_path):
    with pytest.raises(OnnxImportError, match="no such file"):
        import_model(tmp_path / "nope.onnx")
    with pytest.raises(OnnxImportError, match="is a directory"):
        import_model(tmp_path)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxImportError, match="empty"):
        import_model(empty)
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n")
    with pytest.raises(OnnxImportError, match=str(text)):
        import_model(text)
    data = light_model_path("squeezenet").read_bytes()
    for cut in (len(data) // 2, len(data) - 3, 100):
        truncated = tmp_path / f"cut{cut}.onnx"
        truncated.write_bytes(data[:cut])
        with pytest.raises(OnnxImportError, match="cut"):
            import_model(truncated)


def test_external_data(tmp_path):
    model = conv_model(batch=1)
    big = init("w", np.zeros((4, 3, 3, 3), np.float32))
    model.graph.initializer[0].CopyFrom(big)
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)  # fmt: skip
    g = import_model(path).graph
    assert g.tensor_by_name("w").size_bytes == 4 * 3 * 3 * 3 * 4
    (tmp_path / "ext.data").unlink()
    with pytest.raises(OnnxImportError, match=r"ext\.data"):
        import_model(path)


# ----------------------------------------------------------------------- MAC estimates
def test_mac_estimates():
    assert estimate_macs("Gemm", [(8, 16), (16, 4)], [(8, 4)]) == 8 * 4 * 16
    assert estimate_macs("Gemm", [(16, 8), (16, 4)], [(8, 4)], {"transA": 1}) == 8 * 4 * 16
    assert estimate_macs("MatMul", [(2, 8, 16), (16, 4)], [(2, 8, 4)]) == 2 * 8 * 4 * 16
    depthwise = estimate_macs("Conv", [(1, 8, 4, 4), (8, 1, 3, 3)], [(1, 8, 4, 4)])
    assert depthwise == 8 * 16 * 9
    assert estimate_macs("ConvTranspose", [(1, 2, 4, 4), (2, 3, 2, 2)], [(1, 3, 8, 8)]) == (
        32 * 3 * 4
    )
    assert estimate_macs("AveragePool", [(1, 2, 4, 4)], [(1, 2, 2, 2)], {"kernel_shape": [2, 2]})
    assert estimate_macs("GlobalAveragePool", [(1, 2, 4, 4)], [(1, 2, 1, 1)]) == 32
    assert estimate_macs("BatchNormalization", [(1, 2, 4, 4)], [(1, 2, 4, 4)]) == 32
    assert estimate_macs("Add", [(4,), (4,)], [(4,)]) == 4
    for op in ("Concat", "Transpose", "Reshape", "Gather", "Slice"):
        assert estimate_macs(op, [(4, 4)], [(4, 4)]) == 0


# ----------------------------------------------------------------------- light models
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models(name):
    model = onnx.load(light_model_path(name))
    cos_outputs = {n.output[0] for n in model.graph.node if n.op_type == "ConstantOfShape"}
    result = import_model(light_model_path(name))
    g = result.graph
    assert "ConstantOfShape" not in g.op_histogram()
    for t in g.tensors:
        if t.name in cos_outputs:
            assert t.kind is TensorKind.WEIGHT
    assert result.report.folded_nodes >= len(cos_outputs)
    assert sum(1 for t in g.tensors if t.kind is TensorKind.INPUT) == 1
    assert sum(1 for t in g.tensors if t.is_output) == 1
    assert all(op.macs > 0 for op in g.ops if op.op_type in ("Conv", "Gemm"))
    report = result.report
    assert g.num_ops == len(model.graph.node) - report.folded_nodes - len(report.aliases)
    plain = import_model(light_model_path(name), aliases=False).graph
    assert plain.num_ops == len(model.graph.node) - result.report.folded_nodes


#: Op counts and M_R (fp32, edge-npu, activations scope) of the light models, as imported
#: before shape folding existed (memplan 0.1.0): folding must not change them.
LIGHT_BASELINE = {
    "bvlc_alexnet": (21, 2_239_488),
    "densenet121": (668, 6_422_528),
    "inception_v1": (141, 6_422_528),
    "inception_v2": (370, 6_422_528),
    "resnet50": (175, 9_633_792),
    "shufflenet": (170, 2_809_856),
    "squeezenet": (65, 6_308_352),
    "vgg19": (43, 25_690_112),
    "zfnet512": (21, 9_124_608),
}


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models_import_unchanged(name):
    result = import_model(light_model_path(name))
    ops, m_r = LIGHT_BASELINE[name]
    assert result.graph.num_ops == ops
    assert Problem(result.graph, load_accelerator("edge-npu")).min_resident_bytes == m_r
    # nothing to fold: one shape-inference run, no node evaluated
    assert result.report.inference_runs == 1 and result.report.evaluated_by_type == ()


@pytest.mark.parametrize(
    ("name", "m_r", "peak"),
    [("densenet121", 6_422_528, 8_429_568), ("shufflenet", 2_809_856, 3_110_912)],
)
def test_light_model_anchor_figures(name, m_r, peak):
    """ANCHORS.md: fp32, batch 1, activations scope, no alignment."""
    for aliases in (True, False):
        g = import_model(light_model_path(name), aliases=aliases).graph
        problem = Problem(g, load_accelerator("unaligned"))
        assert problem.min_resident_bytes == m_r
        sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
        assert peak_live_bytes(g, model_order(g), sizes, scope) == peak


def test_dropout_with_constant_false_training_mode_is_an_alias():
    train = numpy_helper.from_array(np.array(False), "train")
    nodes = [
        helper.make_node("Dropout", ["x", "", "train"], ["d"], name="drop"),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    result = import_model(make_model(nodes, [vi("x", [8])], [vi("y", None)], [train]))
    assert [op.op_type for op in result.graph.ops] == ["Relu"]
    assert result.report.aliases == (("d", "x"),)


def test_view_chain_from_a_graph_input_to_a_graph_output_keeps_the_last_view():
    shape = init("shape", np.array([2, 4], np.int64))
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
        helper.make_node("Identity", ["r"], ["y"], name="id"),
        helper.make_node("Relu", ["r"], ["z"], name="relu"),
    ]
    model = make_model(nodes, [vi("x", [8])], [vi("y", None), vi("z", None)], [shape])
    result = import_model(model)
    g = result.graph
    assert [op.name for op in g.ops] == ["id", "relu"]
    x = g.tensor_by_name("x").id
    assert g.op_by_name("id").inputs == (x,) and g.op_by_name("relu").inputs == (x,)
    assert g.tensor_by_name("y").is_output and g.tensor_by_name("y").size_bytes == 32
    assert result.report.aliases == (("r", "x"),)


#: memplan op counts of the generated workloads (``memplan graphs list``) as imported
#: before shape folding existed: folding must not change them either.
GENERATED_OPS = {
    "nasnet_a_cifar_small": 115, "nasnet_a_cifar": 1112, "nasnet_a_mobile": 900,
    "nasnet_a_large": 1230, "amoebanet_a_cifar_small": 105, "amoebanet_a_cifar": 980,
    "amoebanet_a_mobile": 804, "darts_v2_cifar_small": 75, "darts_v2_cifar": 1032,
    "darts_v2_imagenet": 711, "pnasnet5_cifar_small": 136, "pnasnet5_cifar": 715,
    "pnasnet5_mobile": 859, "pnasnet5_large": 1048, "randwire_ws_tiny": 63,
    "randwire_ws_small": 125, "randwire_ws_small_regime": 596, "randwire_ws_regular": 829,
    "randwire_ws_large": 2069, "bert_tiny": 68, "bert_base": 368, "gpt2_small": 364,
    "vit_ti16": 356, "vit_b16": 356, "mobilenet_v2": 99, "unet": 67, "unet_small": 38,
}  # fmt: skip


def test_generated_workloads_import_unchanged():
    from memplan.graphs import catalog

    generated = {w.name for w in catalog.list_workloads() if w.is_generated}
    assert generated == set(GENERATED_OPS)
    for name, ops in GENERATED_OPS.items():
        result = import_model(catalog.load_model(name))
        assert (name, result.graph.num_ops) == (name, ops)
        assert result.report.evaluated_by_type == ()
