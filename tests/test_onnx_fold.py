"""Folding the shape computations of exported models: patterns, If inlining, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx_patterns import (
    BOOL,
    I64,
    branch,
    const,
    make_model,
    matmul_resize_model,
    paddle_pad_model,
    reference_shapes,
    sample_rate_if_model,
    torch_reshape_model,
    vi,
)

from memplan.accelerator import load_accelerator
from memplan.errors import OnnxImportError
from memplan.onnx.fold import MAX_FOLD_ELEMENTS
from memplan.onnx.importer import import_model
from memplan.problem import Problem

DATA = Path(__file__).parent / "data" / "onnx"


def assert_shapes_match_a_run(result, model, feeds):
    """Every tensor of the imported graph has the shape a real run gives it."""
    ran = reference_shapes(model, feeds)
    checked = 0
    for tensor in result.graph.tensors:
        if tensor.name in ran:
            assert tensor.shape == ran[tensor.name], tensor.name
            checked += 1
    assert checked >= result.graph.num_ops


# ----------------------------------------------------------------------- patterns
@pytest.mark.parametrize(("width", "padded"), [(30, 32), (32, 32), (33, 36)])
def test_paddle_style_pads_fold(width, padded):
    model = paddle_pad_model()
    result = import_model(model, dims={"batch": 1, "width": width})
    g = result.graph
    assert [op.op_type for op in g.ops] == ["Pad", "Conv"]
    assert g.tensor_by_name("padded").shape == (1, 3, 32, padded)
    assert g.tensor_by_name("y").shape == (1, 4, 32, padded)
    assert g.tensor_by_name("pads").kind.value == "weight"
    evaluated = dict(result.report.evaluated_by_type)
    assert {"ConstantOfShape", "Transpose", "Cast", "Concat"} <= set(evaluated)
    assert result.report.inference_runs == 2
    x = np.zeros((1, 3, 32, width), np.float32)
    assert_shapes_match_a_run(result, model, {"x": x})


def test_resize_sizes_through_matmul_fold():
    model = matmul_resize_model()
    result = import_model(model, dims={"batch": 2, "height": 5, "width": 7})
    g = result.graph
    assert [op.op_type for op in g.ops] == ["Relu", "Resize", "Sigmoid"]
    assert g.tensor_by_name("y").shape == (2, 8, 10, 14)
    assert "MatMul" in dict(result.report.evaluated_by_type)
    assert_shapes_match_a_run(result, model, {"x": np.ones((2, 8, 5, 7), np.float32)})


def test_shapes_onnx_propagates_itself_need_no_evaluation():
    model = torch_reshape_model()
    result = import_model(model, dims={"batch": 2, "height": 5, "width": 7})
    assert [op.op_type for op in result.graph.ops] == ["Conv", "Transpose", "MatMul"]
    assert result.graph.tensor_by_name("y").shape == (2, 35, 16)
    assert result.report.evaluated_by_type == () and result.report.inference_runs == 1
    assert ("r", "c") in result.report.aliases
    assert_shapes_match_a_run(result, model, {"x": np.ones((2, 8, 5, 7), np.float32)})


def test_large_constants_are_not_evaluated():
    """A weight-only computation too large to matter for shapes stays structural."""
    side = 300  # 90,000 elements > MAX_FOLD_ELEMENTS
    assert side * side > MAX_FOLD_ELEMENTS
    nodes = [
        const("wshape", np.array([side, side], np.int64)),
        helper.make_node("ConstantOfShape", ["wshape"], ["w"], name="cos",
                         value=numpy_helper.from_array(np.array([1.0], np.float32))),
        helper.make_node("Shape", ["w"], ["ws"], name="ws"),
        helper.make_node("Reshape", ["x", "ws"], ["r"], name="reshape"),
        helper.make_node("MatMul", ["r", "w"], ["y"], name="mm"),
    ]  # fmt: skip
    result = import_model(make_model(nodes, [vi("x", [side * side])], [vi("y", None)]))
    assert result.graph.tensor_by_name("y").shape == (side, side)
    assert result.report.evaluated_by_type == ()


def legacy_shape_ops_model(opset: int) -> onnx.ModelProto:
    """Shape arithmetic with the attribute forms of opsets <= 12, as the old torch exporter
    writes it (``x.view(x.size(0), -1)``, nn.LSTM's initial state): Unsqueeze and Squeeze
    ``axes``, Split ``split``, ReduceSum ``axes`` are attributes; from opset 13 (Split 18)
    they are inputs, and each op's newest implementation cannot read the attribute."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "one"], ["g"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["g"], ["u"], name="unsq", axes=[0]),
        helper.make_node("Split", ["s"], ["s0", "s12"], name="split", axis=0, split=[1, 2]),
        helper.make_node("ReduceSum", ["s12"], ["m"], name="rsum", axes=[0], keepdims=1),
        helper.make_node("Unsqueeze", ["s0"], ["q"], name="unsq2", axes=[1]),
        helper.make_node("Squeeze", ["q"], ["b"], name="squeeze", axes=[1]),
        helper.make_node("Concat", ["b", "u", "m"], ["shp"], name="concat", axis=0),
        helper.make_node("Expand", ["c", "shp"], ["e"], name="expand"),
        helper.make_node("ReduceMax", ["x"], ["xm"], name="rmax", axes=[2], keepdims=1),
        helper.make_node("Add", ["e", "xm"], ["y"], name="add"),
    ]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.zeros((1,), np.float32), "c")]  # fmt: skip
    return make_model(nodes, [vi("x", ["batch", 6, 3])], [vi("y", None)], inits, opset=opset)


@pytest.mark.parametrize("opset", [11, 12])
def test_shape_ops_fold_at_the_models_own_opset(opset):
    """Each node is evaluated at the model's opset, not onnx.reference's newest one."""
    model = legacy_shape_ops_model(opset)
    result = import_model(model, dims={"batch": 2})
    assert result.graph.tensor_by_name("y").shape == (2, 6, 9)
    assert {"Unsqueeze", "Split", "ReduceSum", "Squeeze"} <= set(
        dict(result.report.evaluated_by_type)
    )
    assert_shapes_match_a_run(result, model, {"x": np.ones((2, 6, 3), np.float32)})


def test_a_node_onnx_reference_cannot_compute_says_how_to_fix_it(monkeypatch):
    """The message names neither onnx.reference's classes (``Unsqueeze_13``, no ONNX op)
    nor stops at the failure: it says at which opset and what to do."""
    import onnx.reference

    real = onnx.reference.ReferenceEvaluator

    class FailsOnUnsqueeze(real):  # what onnx.reference said when it ran the newest opset
        def run(self, *args, **kwargs):
            nodes = self.proto_.node if isinstance(self.proto_, onnx.GraphProto) else [self.proto_]
            if any(n.op_type == "Unsqueeze" for n in nodes):
                raise TypeError(
                    "Issues with types [<class 'numpy.ndarray'>] and attributes ['axes'] and "
                    "linked attributes=[] (operator 'Unsqueeze_13').\nmore"
                )
            return super().run(*args, **kwargs)

    monkeypatch.setattr(onnx.reference, "ReferenceEvaluator", FailsOnUnsqueeze)
    with pytest.raises(OnnxImportError) as info:
        import_model(legacy_shape_ops_model(11), dims={"batch": 2})
    message = str(info.value)
    assert "node 'unsq' (Unsqueeze) on the way could not be computed at opset 11" in message
    assert "Unsqueeze_13" not in message and "linked attributes" not in message
    assert "attributes ['axes']" in message
    assert "export the model with static input shapes" in message
    assert "onnx.version_converter" in message
    assert "\n" not in message


# ----------------------------------------------------------------------- If
@pytest.mark.parametrize(
    ("rate", "branch_taken", "samples"), [(16000, "then", 10), (8000, "else", 5)]
)
def test_if_on_a_fixed_input_value_is_inlined(rate, branch_taken, samples):
    model = sample_rate_if_model()
    result = import_model(model, dims={"batch": 2, "samples": 10}, input_values={"sr": [rate]})
    g = result.graph
    report = result.report
    assert report.input_values == (("sr", str(rate)),)
    assert report.inlined[0].startswith(f"resample: {branch_taken} branch")
    assert g.tensor_by_name("y").shape == (2, samples)
    assert "If" not in g.op_histogram() and "sr" not in {t.name for t in g.tensors}
    if branch_taken == "then":
        assert [op.op_type for op in g.ops] == ["Relu"]  # the branch is a view: aliased
        assert g.ops[0].inputs == (g.tensor_by_name("audio").id,)
    else:
        assert len(report.inlined) == 2 and report.inlined[1].startswith("resample/else/nested")
        assert [op.op_type for op in g.ops] == ["Slice", "Relu"]
        assert g.ops[0].name == "resample/else/Slice_3"
        assert g.tensor_by_name("resample/else/step").kind.value == "weight"
    feeds = {"audio": np.ones((2, 10), np.float32), "sr": np.array(rate, np.int64)}
    assert reference_shapes(model, feeds)["y"] == (2, samples)


def test_several_ifs_inline_in_one_run_and_keep_their_output_names():
    def copy(out):
        return branch([helper.make_node("Identity", ["x"], [out])], [vi(out, None)])

    def neg(out):
        return branch([helper.make_node("Neg", ["x"], [out], name="neg")], [vi(out, None)])

    nodes = [
        helper.make_node("If", ["flag"], ["a"], name="first", then_branch=copy("t1"),
                         else_branch=neg("n1")),
        helper.make_node("If", ["flag"], ["b"], name="second", then_branch=neg("n2"),
                         else_branch=copy("t2")),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]  # fmt: skip
    inputs = [vi("x", [4]), vi("flag", [], BOOL)]
    model = make_model(nodes, inputs, [vi("y", None), vi("a", None)])
    result = import_model(model, input_values={"flag": (True,)})
    assert result.report.inlined == (
        "first: then branch (condition true), 1 node(s)",
        "second: then branch (condition true), 1 node(s)",
    )
    assert result.report.inference_runs == 2
    g = result.graph
    # "a" copies graph input x to a graph output: the Identity stays an op (a real copy)
    assert [op.name for op in g.ops] == ["first/then/Identity_0", "second/then/neg", "add"]
    assert g.tensor_by_name("a").is_output and g.tensor_by_name("y").is_output
    assert g.op_by_name("add").inputs == (g.tensor_by_name("a").id, g.tensor_by_name("b").id)


def test_if_condition_from_shapes_folds_without_values():
    cond_nodes = [
        helper.make_node("Shape", ["x"], ["xs"], name="shape"),
        const("zero", np.array(0, np.int64)),
        helper.make_node("Gather", ["xs", "zero"], ["n"], name="n"),
        const("one", np.array(1, np.int64)),
        helper.make_node("Greater", ["n", "one"], ["batched"], name="batched"),
    ]
    then = branch([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0)], [vi("s", None)])
    other = branch([helper.make_node("Relu", ["x"], ["r"])], [vi("r", None)])
    nodes = [
        *cond_nodes,
        helper.make_node("If", ["batched"], ["y"], name="if", then_branch=then,
                         else_branch=other),
    ]  # fmt: skip
    model = make_model(nodes, [vi("x", ["n", 4])], [vi("y", None)])
    assert import_model(model, dims={"n": 3}).graph.ops[0].op_type == "ReduceSum"
    assert import_model(model, dims={"n": 1}).graph.ops[0].op_type == "Relu"


def test_if_on_an_unfixed_input_names_the_node_and_the_flag():
    with pytest.raises(OnnxImportError) as info:
        import_model(sample_rate_if_model(), dims={"batch": 1, "samples": 10})
    message = str(info.value)
    assert "node 'resample' is an If" in message
    assert "graph input 'sr'" in message and "--input-value sr:VALUE" in message


def test_if_on_data_is_an_error_naming_the_node():
    then = branch([helper.make_node("Identity", ["x"], ["t"])], [vi("t", None)])
    other = branch([helper.make_node("Neg", ["x"], ["e"])], [vi("e", None)])
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["m"], name="max", keepdims=0),
        const("zero", np.array(0.0, np.float32)),
        helper.make_node("Greater", ["m", "zero"], ["positive"], name="positive"),
        helper.make_node("If", ["positive"], ["y"], name="gate", then_branch=then,
                         else_branch=other),
    ]  # fmt: skip
    model = make_model(nodes, [vi("x", [1000])], [vi("y", None)])
    expected = r"node 'gate' is an If.*data of graph input 'x'"
    with pytest.raises(OnnxImportError, match=expected) as info:
        import_model(model)
    # The message says how to get a plannable model, not only why this one is not.
    message = str(info.value)
    assert "export each branch" in message and len(message.splitlines()) == 1


def test_loops_stay_an_error_naming_the_node():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Relu", ["v_in"], ["v_out"])],
        "body",
        [vi("i", [], I64), vi("cond_in", [], BOOL), vi("v_in", [4])],
        [vi("cond_out", [], BOOL), vi("v_out", [4])],
    )  # fmt: skip
    trips = numpy_helper.from_array(np.array(3, np.int64), "trips")
    nodes = [helper.make_node("Loop", ["trips", "", "x"], ["y"], name="repeat", body=body)]
    model = make_model(nodes, [vi("x", [4])], [vi("y", [4])], [trips])
    with pytest.raises(OnnxImportError, match="node 'repeat' is a Loop; loops are not supported"):
        import_model(model)


# ----------------------------------------------------------------------- shapes that cannot fold
def test_data_dependent_shape_names_the_node_and_the_data():
    nodes = [
        helper.make_node("NonZero", ["x"], ["idx"], name="nonzero"),
        helper.make_node("Transpose", ["idx"], ["y"], name="t"),
    ]
    model = make_model(nodes, [vi("x", [4, 4])], [vi("y", None, I64)])
    with pytest.raises(OnnxImportError) as info:
        import_model(model)
    message = str(info.value)
    assert "tensor 'idx' (output of node 'nonzero', NonZero)" in message
    assert "values in tensor 'x', and that is graph input data" in message
    # ... and says what to do about it (the message ended at "cannot know").
    assert "export the model without this data-dependent NonZero" in message
    assert "cut it off before node 'nonzero' with onnx.utils.extract_model" in message
    assert "\n" not in message


def test_shape_from_a_small_input_suggests_input_value():
    nodes = [helper.make_node("Reshape", ["x", "k"], ["r"], name="reshape"),
             helper.make_node("Relu", ["r"], ["y"], name="relu")]  # fmt: skip
    model = make_model(nodes, [vi("x", [12]), vi("k", [2], I64)], [vi("y", None)])
    with pytest.raises(OnnxImportError, match=r"graph input 'k'; fix it with --input-value k:"):
        import_model(model, aliases=False)
    g = import_model(model, input_values={"k": (3, 4)}, aliases=False).graph
    assert g.tensor_by_name("y").shape == (3, 4)
    assert g.tensor_by_name("k").kind.value == "weight"


def test_custom_op_without_shapes_is_named():
    nodes = [helper.make_node("Swizzle", ["x"], ["s"], name="swz", domain="com.example"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]  # fmt: skip
    model = make_model(nodes, [vi("x", [4])], [vi("y", None)])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(OnnxImportError, match=r"custom op \(com.example::Swizzle\)"):
        import_model(model)
    model.graph.value_info.append(vi("s", [4]))  # recorded shapes make it plannable
    assert import_model(model).graph.tensor_by_name("y").shape == (4,)


def test_inconsistent_shapes_quote_onnx_inference():
    w = numpy_helper.from_array(np.ones((3, 5), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = make_model(nodes, [vi("x", [2, 4])], [vi("y", None)], [w])
    with pytest.raises(OnnxImportError, match=r"rejects node 'mm' \(MatMul\): Incompatible"):
        import_model(model)


def reshape_model(target, shape=(4, 8)):
    """x -> Relu -> y -> Reshape(y, target) -> r -> Neg -> z."""
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
        const("target", np.array(target, np.int64)),
        helper.make_node("Reshape", ["y", "target"], ["r"], name="reshape"),
        helper.make_node("Neg", ["r"], ["z"], name="neg"),
    ]
    return make_model(nodes, [vi("x", list(shape))], [vi("z", None)])


@pytest.mark.parametrize(("target", "elements"), [([2, 2], 4), ([2, 0, 4], 64)])
def test_a_reshape_that_changes_the_element_count_is_refused(target, elements):
    """ONNX shape inference takes a Reshape's target as it is: [4,8] -> [2,2] was planned
    with a 16-byte r (the run fails: 32 elements do not fit [2,2])."""
    with pytest.raises(OnnxImportError) as info:
        import_model(reshape_model(target))
    message = str(info.value)
    assert "node 'reshape' (Reshape)" in message and "'y'" in message
    assert "32 elements" in message and f"{elements} elements" in message
    assert "re-export" in message and len(message.splitlines()) == 1


@pytest.mark.parametrize(("target", "shape"), [([0, -1], (4, 8)), ([-1, 2], (16, 2)),
                                               ([2, 0, -1], (2, 8, 2)), ([32], (32,))])  # fmt: skip
def test_reshapes_with_minus_one_and_zero_keep_importing(target, shape):
    result = import_model(reshape_model(target), aliases=False)
    assert result.graph.tensor_by_name("r").shape == shape
    assert result.graph.tensor_by_name("r").size_bytes == 32 * 4


def test_a_reshape_target_traced_at_other_sizes_is_refused_at_new_dims():
    """A legacy torch export bakes the traced sequence length into a Reshape's target;
    at another --dim seq the Reshape cannot run, so the import must not plan it."""
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="relu"),
        const("target", np.array([2, 10, 2, 4], np.int64)),
        helper.make_node("Reshape", ["y", "target"], ["r"], name="heads"),
        helper.make_node("Neg", ["r"], ["z"], name="neg"),
    ]
    model = make_model(nodes, [vi("x", ["batch", "seq", 8])], [vi("z", None)])
    traced = import_model(model, dims={"batch": 2, "seq": 10}).graph
    assert traced.tensor_by_name("z").size_bytes == 2 * 10 * 8 * 4
    with pytest.raises(OnnxImportError, match=r"node 'heads' \(Reshape\).*16000 elements.*160 "):
        import_model(model, dims={"batch": 2, "seq": 1000})


# ----------------------------------------------------------------------- exported by torch
EXPORTED = {
    # file: (import options, ops, M_R in bytes on edge-npu, input feeds for a reference run)
    "detector_head.onnx": (
        {"dims": {"batch": 1, "height": 64, "width": 96}}, 38, 147_456,
        {"images": (1, 3, 64, 96)},
    ),
    "ocr_crnn.onnx": (
        {"dims": {"batch": 1, "width": 100}}, 13, 102_400, {"image": (1, 3, 32, 100)},
    ),
    "lstm_speech.onnx": (
        {"dims": {"batch": 1, "samples": 16000}, "input_values": {"sr": (16000,)}}, 15, 128_000,
        {"audio": (1, 16000)},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPORTED))
def test_models_exported_by_torch_import(name):
    options, ops, m_r, feeds = EXPORTED[name]
    path = DATA / name
    assert path.stat().st_size < 100_000  # the committed files stay in the kilobytes
    result = import_model(path, **options)
    g = result.graph
    assert g.num_ops == ops
    assert Problem(g, load_accelerator("edge-npu")).min_resident_bytes == m_r
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in feeds.items()}
    model = onnx.load(path)
    if name == "lstm_speech.onnx":
        arrays["sr"] = np.array(16000, np.int64)
    assert_shapes_match_a_run(result, model, arrays)


def test_exported_models_without_shapes_list_every_dim():
    with pytest.raises(OnnxImportError) as info:
        import_model(DATA / "detector_head.onnx")
    message = str(info.value)
    assert "'batch' (images[0]), 'height' (images[2]), 'width' (images[3])" in message
    assert "--dim batch=1 --dim height=640 --dim width=640" in message


def test_exported_speech_model_takes_either_branch():
    options = {"dims": {"batch": 2, "samples": 16000}}
    fast = import_model(DATA / "lstm_speech.onnx", **options, input_values={"sr": (16000,)})
    slow = import_model(DATA / "lstm_speech.onnx", **options, input_values={"sr": (8000,)})
    assert fast.report.inlined[0].startswith("If_39: then branch")
    assert slow.report.inlined[0].startswith("If_39: else branch")
    assert fast.graph.tensor_by_name("audio").shape == (2, 16000)
    assert slow.graph.op_histogram()["Slice"] == fast.graph.op_histogram().get("Slice", 0) + 2
    with pytest.raises(OnnxImportError, match="node 'If_39' is an If"):
        import_model(DATA / "lstm_speech.onnx", **options)


def test_report_lines_say_what_was_folded_and_inlined():
    result = import_model(sample_rate_if_model(), dims={"batch": 1, "samples": 8},
                          input_values={"sr": (8000,)})  # fmt: skip
    lines = result.report.summary_lines()
    assert any(line.startswith("inlined resample: else branch") for line in lines)
    assert "input sr fixed to 8000" in lines
    data = result.report.to_json()
    assert data["input_values"] == {"sr": "8000"} and len(data["inlined"]) == 2
    assert data["evaluated_nodes"] == result.report.evaluated_nodes > 0
