"""Small ONNX models with the shape computations of exported models, built with onnx.helper.

Each builder makes one pattern found in detection, OCR and speech models exported from
PyTorch or Paddle (see tests/data/onnx/README.md for the same patterns exported by
torch). :func:`reference_shapes` runs a model with ``onnx.reference`` and returns the
shape of every node output, the ground truth the importer's static shapes must match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def vi(name: str, shape: Any, elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def const(name: str, array: Any) -> onnx.NodeProto:
    value = numpy_helper.from_array(np.asarray(array), name)
    return helper.make_node("Constant", [], [name], name=f"const_{name}", value=value)


def make_model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def paddle_pad_model() -> onnx.ModelProto:
    """Pad the width to a multiple of 4; pads built by ConstantOfShape, Cast, Transpose.

    ``Shape -> Gather -> Mod/Sub`` gives the pad amount, ``ConstantOfShape`` the zeros,
    ``Constant -> Cast`` the pair shape, ``Reshape -> Transpose -> Reshape`` turns
    (begin, end) pairs into ONNX's begins-then-ends order, as Paddle and torch export it.
    """
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    zero = numpy_helper.from_array(np.array([0], np.int64))
    nodes = [
        helper.make_node("Shape", ["x"], ["xs"], name="shape"),
        const("three", np.array(3, np.int64)),
        helper.make_node("Gather", ["xs", "three"], ["width"], name="width"),
        const("four", np.array(4, np.int64)),
        helper.make_node("Mod", ["width", "four"], ["rem"], name="rem"),
        helper.make_node("Sub", ["four", "rem"], ["short"], name="short"),
        helper.make_node("Mod", ["short", "four"], ["padw"], name="padw"),
        const("axes0", np.array([0], np.int64)),
        helper.make_node("Unsqueeze", ["padw", "axes0"], ["padw1"], name="padw1"),
        const("seven", np.array([7], np.int64)),
        helper.make_node("ConstantOfShape", ["seven"], ["zeros"], name="zeros", value=zero),
        helper.make_node("Concat", ["zeros", "padw1"], ["pairs"], name="pairs", axis=0),
        const("pair_shape32", np.array([-1, 2], np.int32)),
        helper.make_node("Cast", ["pair_shape32"], ["pair_shape"], name="cast", to=I64),
        helper.make_node("Reshape", ["pairs", "pair_shape"], ["pairs2"], name="pairs2"),
        helper.make_node("Transpose", ["pairs2"], ["pairs_t"], name="pairs_t", perm=[1, 0]),
        const("flat", np.array([-1], np.int64)),
        helper.make_node("Reshape", ["pairs_t", "flat"], ["pads"], name="pads"),
        helper.make_node("Pad", ["x", "pads"], ["padded"], name="pad"),
        helper.make_node("Conv", ["padded", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    return make_model(nodes, [vi("x", ["batch", 3, 32, "width"])], [vi("y", None)], [w])


def matmul_resize_model() -> onnx.ModelProto:
    """Upsample by 2 with Resize sizes computed through ``Cast -> MatMul -> Cast``."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Shape", ["a"], ["s"], name="shape"),
        helper.make_node("Cast", ["s"], ["sf"], name="to_float", to=F),
        const("row", np.array([1, 4], np.int64)),
        helper.make_node("Reshape", ["sf", "row"], ["sr"], name="as_row"),
        const("scale", np.diag([1.0, 1.0, 2.0, 2.0]).astype(np.float32)),
        helper.make_node("MatMul", ["sr", "scale"], ["scaled"], name="scale_mm"),
        const("flat", np.array([-1], np.int64)),
        helper.make_node("Reshape", ["scaled", "flat"], ["sizes_f"], name="flat_sizes"),
        helper.make_node("Cast", ["sizes_f"], ["sizes"], name="to_int", to=I64),
        helper.make_node("Resize", ["a", "", "", "sizes"], ["up"], name="resize", mode="nearest"),
        helper.make_node("Sigmoid", ["up"], ["y"], name="sigmoid"),
    ]
    return make_model(nodes, [vi("x", ["batch", 8, "height", "width"])], [vi("y", None)])


def torch_reshape_model() -> onnx.ModelProto:
    """``Shape -> Slice -> Concat -> Reshape`` with ``Unsqueeze`` of a product of dims."""
    w = numpy_helper.from_array(np.ones((8, 8, 1, 1), np.float32), "w")
    proj = numpy_helper.from_array(np.ones((8, 16), np.float32), "proj")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Shape", ["c"], ["cs"], name="shape"),
        const("s0", np.array([0], np.int64)),
        const("s2", np.array([2], np.int64)),
        helper.make_node("Slice", ["cs", "s0", "s2"], ["nc"], name="slice"),
        const("two", np.array(2, np.int64)),
        const("three", np.array(3, np.int64)),
        helper.make_node("Gather", ["cs", "two"], ["h"], name="gather_h"),
        helper.make_node("Gather", ["cs", "three"], ["w_"], name="gather_w"),
        helper.make_node("Mul", ["h", "w_"], ["hw"], name="hw"),
        const("axes0", np.array([0], np.int64)),
        helper.make_node("Unsqueeze", ["hw", "axes0"], ["hw1"], name="unsqueeze"),
        helper.make_node("Concat", ["nc", "hw1"], ["shape3"], name="concat", axis=0),
        helper.make_node("Reshape", ["c", "shape3"], ["r"], name="reshape"),
        helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["t", "proj"], ["y"], name="matmul"),
    ]
    model_inputs = [vi("x", ["batch", 8, "height", "width"])]
    return make_model(nodes, model_inputs, [vi("y", None)], [w, proj])


def branch(nodes, outputs, initializers=()) -> onnx.GraphProto:
    return helper.make_graph(nodes, "branch", [], outputs, initializer=list(initializers))


def sample_rate_if_model() -> onnx.ModelProto:
    """A speech front end: ``If sr == 16000`` keep the audio, else take every second sample.

    The else branch has its own initializer and a nested ``If`` on a shape (always true
    here), so inlining must rename branch-local names and recurse.
    """
    step = numpy_helper.from_array(np.array([2], np.int64), "step")
    nested = helper.make_node(
        "If",
        ["has_samples"],
        ["picked"],
        name="nested",
        then_branch=branch([helper.make_node("Identity", ["half"], ["p"])], [vi("p", None)]),
        else_branch=branch([helper.make_node("Neg", ["half"], ["q"])], [vi("q", None)]),
    )
    else_nodes = [
        const("start", np.array([0], np.int64)),
        const("end", np.array([1 << 30], np.int64)),
        const("axis", np.array([1], np.int64)),
        helper.make_node("Slice", ["audio", "start", "end", "axis", "step"], ["half"]),
        helper.make_node("Shape", ["half"], ["hs"]),
        const("zero", np.array(0, np.int64)),
        helper.make_node("Gather", ["hs", "zero"], ["n"]),
        helper.make_node("Greater", ["n", "zero"], ["has_samples"]),
        nested,
    ]
    nodes = [
        const("rate", np.array(16000, np.int64)),
        helper.make_node("Equal", ["sr", "rate"], ["is_16k"], name="is_16k"),
        helper.make_node(
            "If",
            ["is_16k"],
            ["wave"],
            name="resample",
            then_branch=branch(
                [helper.make_node("Identity", ["audio"], ["same"])], [vi("same", None)]
            ),
            else_branch=branch(else_nodes, [vi("picked", None)], [step]),
        ),
        helper.make_node("Relu", ["wave"], ["y"], name="relu"),
    ]
    inputs = [vi("audio", ["batch", "samples"]), vi("sr", [], I64)]
    return make_model(nodes, inputs, [vi("y", None)])


def reference_shapes(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict:
    """Shape of every node output when ``onnx.reference`` runs ``model`` on ``feeds``."""
    from onnx.reference import ReferenceEvaluator

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    listed = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for out in node.output:
            if out and out not in listed:
                probe.graph.output.append(onnx.ValueInfoProto(name=out))
                listed.add(out)
    names = [o.name for o in probe.graph.output]
    results = ReferenceEvaluator(probe).run(None, dict(feeds))
    return {name: tuple(np.shape(r)) for name, r in zip(names, results, strict=True)}
