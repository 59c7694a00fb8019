"""Common layers on top of :class:`~memplan.graphs.onnx_builder.OnnxBuilder`.

Each function adds the nodes of one layer (weights included, as ``ConstantOfShape``
of their shape) and returns the name of the layer's output. Shapes follow ONNX's
NCHW convention for images and ``[batch, sequence, features]`` for token streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from memplan.errors import GraphError
from memplan.graphs.onnx_builder import OnnxBuilder


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def conv2d(
    b: OnnxBuilder,
    x: str,
    out_channels: int,
    kernel: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    pads: Sequence[int] | None = None,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
    hint: str = "conv",
) -> str:
    """2-D convolution; ``pads`` default to "same" padding ``dilation * (k // 2)``."""
    in_channels = b.shape(x)[1]
    if in_channels % groups or out_channels % groups:
        raise GraphError(
            f"graph {b.name!r}: {hint}: {in_channels} -> {out_channels} channels do not "
            f"split into {groups} groups"
        )
    kh, kw = _pair(kernel)
    if pads is None:
        ph, pw = dilation * (kh // 2), dilation * (kw // 2)
        pads = (ph, pw, ph, pw)
    w = b.weight([out_channels, in_channels // groups, kh, kw], f"{hint}.weight")
    inputs = [x, w]
    if bias:
        inputs.append(b.weight([out_channels], f"{hint}.bias"))
    attrs: dict[str, object] = {
        "kernel_shape": [kh, kw],
        "strides": list(_pair(stride)),
        "pads": list(pads),
    }
    if dilation != 1:
        attrs["dilations"] = [dilation, dilation]
    if groups != 1:
        attrs["group"] = groups
    return b.op("Conv", inputs, hint, **attrs)


def batch_norm(b: OnnxBuilder, x: str, hint: str = "bn") -> str:
    """Inference-mode batch normalization over channel axis 1."""
    channels = b.shape(x)[1]
    params = [b.weight([channels], f"{hint}.{p}") for p in ("scale", "bias", "mean", "var")]
    return b.op("BatchNormalization", [x, *params], hint, epsilon=1e-5)


def relu(b: OnnxBuilder, x: str, hint: str = "relu") -> str:
    """Rectified linear unit."""
    return b.op("Relu", [x], hint)


def relu6(b: OnnxBuilder, x: str, hint: str = "relu6") -> str:
    """``min(max(x, 0), 6)`` as ``Clip`` with scalar bounds."""
    low, high = b.scalar(0.0, f"{hint}.min"), b.scalar(6.0, f"{hint}.max")
    return b.op("Clip", [x, low, high], hint)


def max_pool(
    b: OnnxBuilder, x: str, kernel: int, stride: int, pad: int, hint: str = "maxpool"
) -> str:
    """Square max pooling."""
    return b.op(
        "MaxPool",
        [x],
        hint,
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
    )


def avg_pool(
    b: OnnxBuilder, x: str, kernel: int, stride: int, pad: int, hint: str = "avgpool"
) -> str:
    """Square average pooling that does not count padded cells."""
    return b.op(
        "AveragePool",
        [x],
        hint,
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
        count_include_pad=0,
    )


def classifier(b: OnnxBuilder, x: str, num_classes: int, hint: str = "classifier") -> str:
    """Global average pooling, flatten and a fully connected layer (``Gemm``)."""
    pooled = b.op("GlobalAveragePool", [x], f"{hint}/gap")
    flat = b.op("Flatten", [pooled], f"{hint}/flatten", axis=1)
    features = b.shape(flat)[1]
    w = b.weight([num_classes, features], f"{hint}/fc.weight")
    bias = b.weight([num_classes], f"{hint}/fc.bias")
    return b.op("Gemm", [flat, w, bias], f"{hint}/fc", transB=1)


def linear(b: OnnxBuilder, x: str, out_features: int, hint: str = "linear") -> str:
    """``x @ W + bias`` over the last axis (``MatMul`` then ``Add``, as exporters emit)."""
    in_features = b.shape(x)[-1]
    w = b.weight([in_features, out_features], f"{hint}.weight")
    y = b.op("MatMul", [x, w], f"{hint}/matmul")
    bias = b.weight([out_features], f"{hint}.bias")
    return b.op("Add", [y, bias], f"{hint}/bias_add")


def layer_norm(b: OnnxBuilder, x: str, hint: str = "ln") -> str:
    """Layer normalization over the last axis (one ``LayerNormalization`` node)."""
    features = b.shape(x)[-1]
    scale = b.weight([features], f"{hint}.scale")
    bias = b.weight([features], f"{hint}.bias")
    return b.op("LayerNormalization", [x, scale, bias], hint, axis=-1, epsilon=1e-5)


def gelu_erf(b: OnnxBuilder, x: str, hint: str = "gelu") -> str:
    """Exact GELU ``0.5 x (1 + erf(x / sqrt 2))`` as BERT and ViT exports spell it."""
    with b.scope(hint):
        scaled = b.op("Div", [x, b.scalar(math.sqrt(2.0), "sqrt2")], "div")
        erf = b.op("Erf", [scaled], "erf")
        shifted = b.op("Add", [erf, b.scalar(1.0, "one")], "add")
        product = b.op("Mul", [x, shifted], "mul")
        return b.op("Mul", [product, b.scalar(0.5, "half")], "half")


def gelu_tanh(b: OnnxBuilder, x: str, hint: str = "gelu") -> str:
    """GPT-2's tanh GELU ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    with b.scope(hint):
        cube = b.op("Pow", [x, b.scalar(3.0, "three")], "pow")
        small = b.op("Mul", [cube, b.scalar(0.044715, "coef")], "mul_coef")
        inner = b.op("Add", [x, small], "add_x")
        scaled = b.op("Mul", [inner, b.scalar(math.sqrt(2.0 / math.pi), "sqrt_2_pi")], "mul_s")
        tanh = b.op("Tanh", [scaled], "tanh")
        shifted = b.op("Add", [tanh, b.scalar(1.0, "one")], "add_one")
        product = b.op("Mul", [x, shifted], "mul_x")
        return b.op("Mul", [product, b.scalar(0.5, "half")], "half")


def add_all(b: OnnxBuilder, terms: Sequence[str], hint: str = "add") -> str:
    """Sum of one or more tensors as a left-to-right chain of ``Add`` nodes."""
    if not terms:
        raise GraphError(f"graph {b.name!r}: {hint}: nothing to add")
    total = terms[0]
    for term in terms[1:]:
        total = b.op("Add", [total, term], hint)
    return total
