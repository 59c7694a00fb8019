"""Cell-based NAS networks (NASNet-A, AmoebaNet-A, DARTS-V2, PNASNet-5) from their genotypes.

A network is a stem followed by a stack of cells. Every cell reads the outputs of the
two cells before it (``s0`` = two back, ``s1`` = one back), brings both to ``C``
channels (``preprocess``), and builds intermediate nodes; each node adds the results of
two operations applied to earlier states. The cell's output concatenates some of the
nodes along the channel axis::

         s0 ──► preprocess0 ─┐         ┌─► op ─┐
                             ├─ states ┤       Add ─► node 2 ─┐
         s1 ──► preprocess1 ─┘         └─► op ─┘              ├─► Concat ─► cell output
                                            ... node 3, 4 ... ┘

In a reduction cell the operations that read ``s0`` or ``s1`` use stride 2, halving the
height and width; the network doubles ``C`` there. Genotypes are written in the DARTS
notation: a list of ``(operation, input state)`` pairs, two per intermediate node, where
states 0 and 1 are the preprocessed cell inputs and state ``i + 2`` is node ``i``.

Operations follow the DARTS reference definitions: ``sep_conv_KxK`` is two stacked
ReLU - depthwise KxK - pointwise 1x1 - BatchNorm blocks (the first with the stride),
``dil_conv_KxK`` one such block with dilation 2, ``conv_7x1_1x7`` ReLU - 1x7 - 7x1 -
BatchNorm, pools are 3x3 with padding 1, and ``skip_connect`` is the identity (no node)
or, with stride 2, a factorized reduction (two 1x1 stride-2 convolutions on offset
grids, concatenated, then BatchNorm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memplan.errors import ConfigError, GraphError
from memplan.graphs import layers as L
from memplan.graphs.onnx_builder import OnnxBuilder

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True, slots=True)
class Genotype:
    """A published NAS cell pair in DARTS notation."""

    name: str  # key in GENOTYPES, e.g. "DARTS_V2"
    normal: tuple[tuple[str, int], ...]  # (operation, input state), two per node
    normal_concat: tuple[int, ...]  # states concatenated into a normal cell's output
    reduce: tuple[tuple[str, int], ...]  # same for the reduction cell
    reduce_concat: tuple[int, ...]  # states concatenated into a reduction cell's output
    source: str  # the publication the cells come from


GENOTYPES: dict[str, Genotype] = {
    g.name: g
    for g in (
        Genotype(
            name="NASNET_A",
            normal=(
                ("sep_conv_5x5", 1),
                ("sep_conv_3x3", 0),
                ("sep_conv_5x5", 0),
                ("sep_conv_3x3", 0),
                ("avg_pool_3x3", 1),
                ("skip_connect", 0),
                ("avg_pool_3x3", 0),
                ("avg_pool_3x3", 0),
                ("sep_conv_3x3", 1),
                ("skip_connect", 1),
            ),
            normal_concat=(2, 3, 4, 5, 6),
            reduce=(
                ("sep_conv_5x5", 1),
                ("sep_conv_7x7", 0),
                ("max_pool_3x3", 1),
                ("sep_conv_7x7", 0),
                ("avg_pool_3x3", 1),
                ("sep_conv_5x5", 0),
                ("skip_connect", 3),
                ("avg_pool_3x3", 2),
                ("sep_conv_3x3", 2),
                ("max_pool_3x3", 1),
            ),
            reduce_concat=(4, 5, 6),
            source="Zoph et al., Learning Transferable Architectures for Scalable Image "
            "Recognition, CVPR 2018",
        ),
        Genotype(
            name="AMOEBANET_A",
            normal=(
                ("avg_pool_3x3", 0),
                ("max_pool_3x3", 1),
                ("sep_conv_3x3", 0),
                ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 0),
                ("avg_pool_3x3", 3),
                ("sep_conv_3x3", 1),
                ("skip_connect", 1),
                ("skip_connect", 0),
                ("avg_pool_3x3", 1),
            ),
            normal_concat=(4, 5, 6),
            reduce=(
                ("avg_pool_3x3", 0),
                ("sep_conv_3x3", 1),
                ("max_pool_3x3", 0),
                ("sep_conv_7x7", 2),
                ("sep_conv_7x7", 0),
                ("avg_pool_3x3", 1),
                ("max_pool_3x3", 0),
                ("max_pool_3x3", 1),
                ("conv_7x1_1x7", 0),
                ("sep_conv_3x3", 5),
            ),
            reduce_concat=(3, 4, 6),
            source="Real et al., Regularized Evolution for Image Classifier Architecture "
            "Search, AAAI 2019",
        ),
        Genotype(
            name="DARTS_V2",
            normal=(
                ("sep_conv_3x3", 0),
                ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 0),
                ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1),
                ("skip_connect", 0),
                ("skip_connect", 0),
                ("dil_conv_3x3", 2),
            ),
            normal_concat=(2, 3, 4, 5),
            reduce=(
                ("max_pool_3x3", 0),
                ("max_pool_3x3", 1),
                ("skip_connect", 2),
                ("max_pool_3x3", 1),
                ("max_pool_3x3", 0),
                ("skip_connect", 2),
                ("skip_connect", 2),
                ("max_pool_3x3", 1),
            ),
            reduce_concat=(2, 3, 4, 5),
            source="Liu et al., DARTS: Differentiable Architecture Search, ICLR 2019",
        ),
        Genotype(
            name="PNASNET_5",
            normal=(
                ("sep_conv_5x5", 0),
                ("max_pool_3x3", 0),
                ("sep_conv_7x7", 1),
                ("max_pool_3x3", 1),
                ("sep_conv_5x5", 1),
                ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 4),
                ("max_pool_3x3", 1),
                ("sep_conv_3x3", 0),
                ("skip_connect", 1),
            ),
            normal_concat=(2, 3, 4, 5, 6),
            reduce=(
                ("sep_conv_5x5", 0),
                ("max_pool_3x3", 0),
                ("sep_conv_7x7", 1),
                ("max_pool_3x3", 1),
                ("sep_conv_5x5", 1),
                ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 4),
                ("max_pool_3x3", 1),
                ("sep_conv_3x3", 0),
                ("skip_connect", 1),
            ),
            reduce_concat=(2, 3, 4, 5, 6),
            source="Liu et al., Progressive Neural Architecture Search, ECCV 2018",
        ),
    )
}

#: Operations a genotype may name.
OPERATIONS = (
    "skip_connect",
    "max_pool_3x3",
    "avg_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "conv_7x1_1x7",
    "conv_1x1",
    "conv_3x3",
)

#: Stems: "cifar" (3x3 conv + BN at full resolution), "imagenet" (DARTS' two stride-2
#: stems, 1/8 resolution), "nasnet" (one 3x3 stride-2 unpadded conv + BN; the cell list
#: then starts with the stem reduction cells).
STEMS = ("cifar", "imagenet", "nasnet")

_CELL_TOKEN = re.compile(r"^([NR])(\d+)(?:x(\d+))?$")


def parse_cells(spec: str) -> list[tuple[str, int]]:
    """Parse a cell list such as ``"N36x6 R72 N72x6"`` into ``[("N", 36), ...]``.

    Each token is ``N`` (normal) or ``R`` (reduction), the cell's channel count ``C``
    and an optional repeat count ``xK``.
    """
    cells: list[tuple[str, int]] = []
    for token in spec.split():
        match = _CELL_TOKEN.match(token)
        if match is None or int(match.group(2)) <= 0:
            raise ConfigError(
                f"cell list {spec!r}: bad token {token!r}; write N<channels> or "
                "R<channels>, optionally followed by x<repeat>, e.g. 'N36x6 R72'"
            )
        repeat = int(match.group(3) or 1)
        cells.extend([(match.group(1), int(match.group(2)))] * repeat)
    if not cells:
        raise ConfigError(f"cell list {spec!r} is empty")
    return cells


def nas_network(
    *,
    name: str,
    genotype: str,
    cells: str,
    stem: str = "cifar",
    stem_channels: int = 48,
    image_size: int = 32,
    num_classes: int = 10,
) -> onnx.ModelProto:
    """Build a cell-based NAS network as an ONNX model (batch 1, float32).

    Args:
        name: graph name.
        genotype: a key of :data:`GENOTYPES`.
        cells: cell list, see :func:`parse_cells`.
        stem: one of :data:`STEMS`.
        stem_channels: output channels of the stem.
        image_size: input height and width.
        num_classes: classifier outputs.
    """
    if genotype not in GENOTYPES:
        raise ConfigError(f"unknown genotype {genotype!r}; known: {', '.join(sorted(GENOTYPES))}")
    if stem not in STEMS:
        raise ConfigError(f"unknown stem {stem!r}; known: {', '.join(STEMS)}")
    geno = GENOTYPES[genotype]
    cell_list = parse_cells(cells)
    b = OnnxBuilder(
        name,
        doc=f"{genotype} network, stem={stem}({stem_channels}), cells={cells!r}, "
        f"input 1x3x{image_size}x{image_size}, {num_classes} classes; generated by "
        "memplan.graphs.nas",
    )
    x = b.add_input("image", [1, 3, image_size, image_size])
    s0, s1 = _stem(b, x, stem, stem_channels)
    for index, (kind, channels) in enumerate(cell_list):
        with b.scope(f"cell{index}_{'reduce' if kind == 'R' else 'normal'}"):
            out = _cell(b, geno, kind == "R", s0, s1, channels)
        s0, s1 = s1, out
    logits = L.classifier(b, s1, num_classes)
    b.add_output(logits)
    return b.build()


def _stem(b: OnnxBuilder, x: str, stem: str, channels: int) -> tuple[str, str]:
    with b.scope("stem"):
        if stem == "cifar":
            out = L.batch_norm(b, L.conv2d(b, x, channels, 3))
            return out, out
        if stem == "nasnet":
            out = L.batch_norm(b, L.conv2d(b, x, channels, 3, stride=2, pads=[0, 0, 0, 0]))
            return out, out
        half = max(1, channels // 2)
        y = L.batch_norm(b, L.conv2d(b, x, half, 3, stride=2, hint="conv0"), "bn0")
        y = L.relu(b, y)
        s0 = L.batch_norm(b, L.conv2d(b, y, channels, 3, stride=2, hint="conv1"), "bn1")
        y = L.relu(b, s0, "relu_s1")
        s1 = L.batch_norm(b, L.conv2d(b, y, channels, 3, stride=2, hint="conv2"), "bn2")
        return s0, s1


def _cell(b: OnnxBuilder, geno: Genotype, reduction: bool, s0: str, s1: str, channels: int) -> str:
    pairs = geno.reduce if reduction else geno.normal
    concat = geno.reduce_concat if reduction else geno.normal_concat
    h0, h1 = b.shape(s0)[2], b.shape(s1)[2]
    with b.scope("pre0"):
        if h0 == h1:
            state0 = _relu_conv_bn(b, s0, channels, 1)
        elif h0 == 2 * h1 or h0 == 2 * h1 - 1:
            state0 = _factorized_reduce(b, s0, channels)
        else:
            raise GraphError(
                f"graph {b.name!r}: cell inputs of heights {h0} and {h1} cannot be matched; "
                "put at most one reduction between two consecutive cells"
            )
    with b.scope("pre1"):
        state1 = _relu_conv_bn(b, s1, channels, 1)
    states = [state0, state1]
    for node in range(len(pairs) // 2):
        with b.scope(f"node{node + 2}"):
            branches = []
            for side, (op_name, source) in enumerate(pairs[2 * node : 2 * node + 2]):
                if source >= len(states):
                    raise GraphError(
                        f"genotype {geno.name}: node {node + 2} reads state {source}, "
                        "which is not built yet"
                    )
                stride = 2 if reduction and source < 2 else 1
                with b.scope(f"{op_name}_{side}"):
                    branches.append(_operation(b, op_name, states[source], channels, stride))
            states.append(b.op("Add", branches, "add"))
    return b.op("Concat", [states[i] for i in concat], "concat", axis=1)


def _relu_conv_bn(b: OnnxBuilder, x: str, channels: int, kernel: int, stride: int = 1) -> str:
    y = L.relu(b, x)
    y = L.conv2d(b, y, channels, kernel, stride=stride)
    return L.batch_norm(b, y)


def _factorized_reduce(b: OnnxBuilder, x: str, channels: int) -> str:
    """Halve height and width: two 1x1 stride-2 convolutions on grids offset by one."""
    half = channels // 2
    y = L.relu(b, x)
    path1 = L.conv2d(b, y, half, 1, stride=2, hint="conv_a")
    starts, ends, axes = b.ints([1, 1], "starts"), b.ints([1 << 30] * 2, "ends"), b.ints([2, 3])
    shifted = b.op("Slice", [y, starts, ends, axes], "shift")
    # Pad the far edge by one so both paths give ceil(H / 2) for odd heights too.
    path2 = L.conv2d(b, shifted, channels - half, 1, stride=2, pads=[0, 0, 1, 1], hint="conv_b")
    joined = b.op("Concat", [path1, path2], "concat", axis=1)
    return L.batch_norm(b, joined)


def _operation(b: OnnxBuilder, op_name: str, x: str, channels: int, stride: int) -> str:
    if op_name == "skip_connect":
        return x if stride == 1 else _factorized_reduce(b, x, channels)
    if op_name == "max_pool_3x3":
        return L.max_pool(b, x, 3, stride, 1)
    if op_name == "avg_pool_3x3":
        return L.avg_pool(b, x, 3, stride, 1)
    if op_name.startswith("sep_conv_"):
        kernel = int(op_name[-1])
        y = _dw_pw_bn(b, x, channels, kernel, stride, 1, "a")
        return _dw_pw_bn(b, y, channels, kernel, 1, 1, "b")
    if op_name.startswith("dil_conv_"):
        return _dw_pw_bn(b, x, channels, int(op_name[-1]), stride, 2, "a")
    if op_name == "conv_7x1_1x7":
        y = L.relu(b, x)
        y = L.conv2d(b, y, channels, (1, 7), stride=(1, stride), pads=[0, 3, 0, 3], hint="c1x7")
        y = L.conv2d(b, y, channels, (7, 1), stride=(stride, 1), pads=[3, 0, 3, 0], hint="c7x1")
        return L.batch_norm(b, y)
    if op_name == "conv_1x1":
        return _relu_conv_bn(b, x, channels, 1, stride)
    if op_name == "conv_3x3":
        return _relu_conv_bn(b, x, channels, 3, stride)
    raise ConfigError(f"unknown cell operation {op_name!r}; known: {', '.join(OPERATIONS)}")


def _dw_pw_bn(
    b: OnnxBuilder, x: str, channels: int, kernel: int, stride: int, dilation: int, tag: str
) -> str:
    """ReLU, depthwise KxK (stride, dilation), pointwise 1x1, BatchNorm."""
    in_channels = b.shape(x)[1]
    y = L.relu(b, x, f"relu_{tag}")
    y = L.conv2d(
        b,
        y,
        in_channels,
        kernel,
        stride=stride,
        dilation=dilation,
        groups=in_channels,
        hint=f"dw_{tag}",
    )
    y = L.conv2d(b, y, channels, 1, hint=f"pw_{tag}")
    return L.batch_norm(b, y, f"bn_{tag}")
