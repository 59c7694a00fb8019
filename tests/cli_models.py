"""Helpers of the command-line tests: small ONNX models (built with onnx.helper, no
files), running ``memplan`` in-process, and a Ctrl-C in the middle of a write."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import memplan.io.files as files
from memplan.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Run ``memplan ARGV...`` in this process; its exit code, stdout and stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def ctrl_c_while_staging(monkeypatch: pytest.MonkeyPatch, nth: int = 2) -> None:
    """Make the ``nth`` file staged by :func:`memplan.io.files.atomic_write_many` raise
    KeyboardInterrupt, as a Ctrl-C would while the files are being written."""
    real_stage = files._stage
    staged: list[str] = []

    def stage_then_ctrl_c(target: files.OutputTarget, data: bytes) -> str:
        staged.append(target.given)
        if len(staged) == nth:
            raise KeyboardInterrupt
        return real_stage(target, data)

    monkeypatch.setattr(files, "_stage", stage_then_ctrl_c)


def small_model(channels: int = 8, hw: int = 16) -> onnx.ModelProto:
    """X -> conv0 -> A -> ... -> conv2 -> F; add(A, F) -> relu -> Y.

    ``A`` lives across a chain whose middle tensors are twice as large, so M_R (32 KiB
    for 8 channels of 16x16 fp32) is below the peak of live bytes (40 KiB): at M_R the
    plan must spill ``A``.
    """
    c, w = channels, hw
    rng = np.random.default_rng(0)

    def weight(name, shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    pads = [1, 1, 1, 1]
    nodes = [
        helper.make_node("Conv", ["X", "W0"], ["A"], name="conv0", pads=pads),
        helper.make_node("Relu", ["A"], ["B"], name="relu0"),
        helper.make_node("Conv", ["B", "W1"], ["C"], name="conv1", pads=pads),
        helper.make_node("Relu", ["C"], ["E"], name="relu1"),
        helper.make_node("Conv", ["E", "W2"], ["F"], name="conv2", pads=pads),
        helper.make_node("Add", ["A", "F"], ["D"], name="add"),
        helper.make_node("Relu", ["D"], ["Y"], name="relu2"),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, c, w, w])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, c, w, w])],
        initializer=[
            weight("W0", (c, c, 3, 3)),
            weight("W1", (2 * c, c, 3, 3)),
            weight("W2", (c, 2 * c, 3, 3)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def dynamic_model() -> onnx.ModelProto:
    """X[batch, 3, height, width] -> conv -> relu -> flatten (a view) -> Y.

    Its sizes depend on ``--input-shape`` / ``--dim``; the Flatten is aliased unless
    ``--no-aliases``, so the import options change the graph a plan is made for.
    """
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["A"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["A"], ["B"], name="relu"),
        helper.make_node("Flatten", ["B"], ["Y"], name="flatten", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", None])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model
