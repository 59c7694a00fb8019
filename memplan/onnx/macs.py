"""Multiply-accumulate estimates for ONNX operators (used by the latency/energy model).

The estimate counts the dominant arithmetic of each op from its static shapes:

===========================  ==================================================
Conv                         output elements x (C_in / group) x kernel elements
ConvTranspose                input elements x (C_out / group) x kernel elements
Gemm, MatMul                 output elements x reduction length K
pooling (Max/Average/LpPool) output elements x kernel elements
RNN, GRU, LSTM               steps x batch x (W elements + R elements): every
                             step multiplies the input by W and the state by R
Attention                    (Q elements + output elements) x key length: Q K^T
                             and the weights times V (past keys included)
global pooling, reductions   input elements
normalisation, softmax       input elements
elementwise (Add, Relu, ...) output elements
data movement (Concat, ...)  0
===========================  ==================================================

ONNX Runtime's ``com.microsoft`` conv / matmul variants (``FusedConv``, ``NhwcConv``,
``FusedGemm``, ``FusedMatMul``, ``MatMulNBits``, ...) are counted like ``Conv``, ``Gemm``
and ``MatMul``. Other unknown op types are treated as elementwise (one MAC per output
element), the right order of magnitude for most custom activations; such estimates are
flagged by :func:`macs_estimated` so the importer can warn about them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

#: A node's static shapes: input shapes and output shapes (None where absent or unknown).
Shapes = Sequence[tuple[int, ...] | None]

#: Ops that only move or reinterpret data: no arithmetic.
DATA_MOVEMENT_OPS = frozenset(
    {
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Dropout",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "GatherElements",
        "GatherND",
        "ScatterElements",
        "ScatterND",
        "Pad",
        "Tile",
        "Expand",
        "Shape",
        "Size",
        "Cast",
        "CastLike",
        "DepthToSpace",
        "SpaceToDepth",
        "Constant",
        "ConstantOfShape",
        "Compress",
        "NonZero",
        "TopK",
        "Resize",
        "Upsample",
        "Range",
        "Trilu",
        "OneHot",
    }
)

POOL_OPS = frozenset({"MaxPool", "AveragePool", "LpPool", "MaxRoiPool", "MaxUnpool"})
GLOBAL_POOL_OPS = frozenset({"GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"})
#: Ops whose cost is proportional to their (first) input.
INPUT_PROPORTIONAL_OPS = frozenset(
    {
        "BatchNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "LpNormalization",
        "MeanVarianceNormalization",
        "LRN",
        "Softmax",
        "LogSoftmax",
        "Hardmax",
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceSumSquare",
        "ArgMax",
        "ArgMin",
        "CumSum",
    }
)


def _numel(shape: tuple[int, ...] | None) -> int:
    return math.prod(shape) if shape is not None else 0


def _get(shapes: Shapes, i: int) -> tuple[int, ...] | None:
    return shapes[i] if i < len(shapes) else None


def _conv(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    weight = _get(inputs, 1)
    out = _get(outputs, 0)
    if weight is None or out is None or len(weight) < 2:
        return 0
    # weight: [C_out, C_in / group, k1, k2, ...]
    return _numel(out) * weight[1] * math.prod(weight[2:])


def _conv_transpose(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    x = _get(inputs, 0)
    weight = _get(inputs, 1)
    if x is None or weight is None or len(weight) < 2:
        return 0
    # weight: [C_in, C_out / group, k1, k2, ...]; each input element scatters into
    # C_out / group x kernel outputs.
    return _numel(x) * weight[1] * math.prod(weight[2:])


def _gemm(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    a = _get(inputs, 0)
    out = _get(outputs, 0)
    if a is None or out is None or len(a) != 2:
        return 0
    k = a[0] if attrs.get("transA", 0) else a[1]
    return _numel(out) * k


def _matmul(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    a = _get(inputs, 0)
    out = _get(outputs, 0)
    if a is None or out is None or not a:
        return 0
    return _numel(out) * a[-1]


def _fused_matmul(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    a = _get(inputs, 0)
    out = _get(outputs, 0)
    if a is None or out is None or not a:
        return 0
    k = a[-2] if attrs.get("transA", 0) and len(a) >= 2 else a[-1]
    return _numel(out) * k


def _matmul_nbits(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    """``MatMulNBits``: B is packed, so K comes from the ``K`` attribute (or A's last dim)."""
    a = _get(inputs, 0)
    k = attrs.get("K") or (a[-1] if a else 0)
    return _numel(_get(outputs, 0)) * int(k)


def _nhwc_conv(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    """``NhwcConv``: weight [C_out, k1, k2, ..., C_in / group] (channels last)."""
    weight = _get(inputs, 1)
    out = _get(outputs, 0)
    if weight is None or out is None or len(weight) < 2:
        return 0
    return _numel(out) * math.prod(weight[1:])


def _pool(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    kernel = attrs.get("kernel_shape") or ()
    return _numel(_get(outputs, 0)) * math.prod(int(k) for k in kernel)


def _recurrent(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    """RNN / GRU / LSTM: X is [steps, batch, I] (or [batch, steps, I]), W is
    [directions, gates x H, I] and R [directions, gates x H, H], so each of the
    steps x batch rows costs W's and R's elements."""
    x, w, r = _get(inputs, 0), _get(inputs, 1), _get(inputs, 2)
    if x is None or w is None or len(w) != 3 or not x or x[-1] != w[2] or w[2] == 0:
        return _numel(_get(outputs, 0))
    return _numel(x) // w[2] * (_numel(w) + _numel(r))


def _attention(inputs: Shapes, outputs: Shapes, attrs: dict[str, Any]) -> int:
    """Attention (opset 23): Q is [B, H, S, E] or [B, S, H x E], K [B, Hk, L, E] or
    [B, L, Hk x E], a past key (input 4) [B, Hk, P, E]; Q K^T costs Q's elements times
    the key length L + P, the weights times V the output's elements times it."""
    q, k, out = _get(inputs, 0), _get(inputs, 1), _get(outputs, 0)
    if q is None or k is None or len(k) not in (3, 4):
        return _numel(out)
    length = k[2] if len(k) == 4 else k[1]
    past = _get(inputs, 4)
    if past is not None and len(past) == 4:
        length += past[2]
    return (_numel(q) + _numel(out)) * length


_RULES: dict[str, Callable[[Shapes, Shapes, dict[str, Any]], int]] = {
    "Conv": _conv,
    "ConvInteger": _conv,
    "QLinearConv": lambda i, o, a: _conv([i[0], i[3]] if len(i) > 3 else i, o, a),
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearMatMul": lambda i, o, a: _matmul([i[0]], o, a),
    "RNN": _recurrent,
    "Attention": _attention,
    "GRU": _recurrent,
    "LSTM": _recurrent,
    # ONNX Runtime contrib ops (com.microsoft): fused or quantised conv / matmul.
    "FusedConv": _conv,
    "NhwcConv": _nhwc_conv,
    "ConvTransposeWithDynamicPads": _conv_transpose,
    "FusedGemm": _gemm,
    "FusedMatMul": _fused_matmul,
    "MatMulInteger16": _matmul,
    "MatMulIntegerToFloat": _matmul,
    "DynamicQuantizeMatMul": _matmul,
    "MatMulNBits": _matmul_nbits,
    "MatMulBnb4": _matmul_nbits,
}

#: Standard ops with real arithmetic beyond one MAC per output element that have no
#: rule here: their count is a rough estimate (see :func:`macs_estimated`).
UNMODELLED_STANDARD_OPS = frozenset(
    {
        "Einsum",
        "DeformConv",
        "RoiAlign",
        "DFT",
        "STFT",
        "NonMaxSuppression",
        "GridSample",
        "AffineGrid",
        "Col2Im",
        "Det",
    }
)


def macs_estimated(op_type: str, domain: str = "") -> bool:
    """Whether :func:`estimate_macs` only guesses ``op_type`` (one MAC per output element).

    True for a custom-domain op without a rule and for the standard ops in
    :data:`UNMODELLED_STANDARD_OPS`; elementwise standard ops are counted exactly.
    """
    if op_type in _RULES or op_type in DATA_MOVEMENT_OPS or op_type in POOL_OPS:
        return False
    if op_type in GLOBAL_POOL_OPS or op_type in INPUT_PROPORTIONAL_OPS:
        return False
    if domain not in ("", "ai.onnx"):
        return True
    return op_type in UNMODELLED_STANDARD_OPS


def estimate_macs(
    op_type: str, inputs: Shapes, outputs: Shapes, attrs: dict[str, Any] | None = None
) -> int:
    """Estimated multiply-accumulates of one node.

    Args:
        op_type: the ONNX op type, e.g. ``"Conv"``.
        inputs: static input shapes in elements (None for absent optional inputs).
        outputs: static output shapes in elements.
        attrs: the node's attributes as plain Python values (``kernel_shape``, ``transA``).

    Returns:
        A non-negative MAC count; 0 for data movement.
    """
    attrs = attrs or {}
    rule = _RULES.get(op_type)
    if rule is not None:
        return max(0, int(rule(inputs, outputs, attrs)))
    if op_type in DATA_MOVEMENT_OPS:
        return 0
    if op_type in POOL_OPS:
        return _pool(inputs, outputs, attrs)
    if op_type in GLOBAL_POOL_OPS or op_type in INPUT_PROPORTIONAL_OPS:
        return _numel(_get(inputs, 0))
    return _numel(_get(outputs, 0))
