"""Which ONNX nodes become ops of the plan, and which only make weights.

Initializers are weights. A node makes weights, and leaves the op list, when it is a
``Constant``, a ``Shape``/``Size`` (shapes are static once imported), or when every
input it reads is a weight (``ConstantOfShape`` of a constant shape, ``Unsqueeze`` of a
weight, a whole shape computation, ...). Random generators always stay ops. This is
the classification of the graph; computing the *values* that shape inference needs is
:mod:`memplan.onnx.fold`'s job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Ops whose outputs are random: never folded into weights or evaluated.
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
     "Bernoulli"}
)  # fmt: skip
#: Ops whose output depends only on the static shape of their input.
SHAPE_OPS = frozenset({"Shape", "Size"})


@dataclass(frozen=True, slots=True)
class WeightSplit:
    """The nodes that stay ops and the tensors that are weights."""

    weights: frozenset[str]  # names of weight tensors (initializers and folded outputs)
    kept: tuple[int, ...]  # indices of the nodes that stay ops, in graph order
    folded_by_type: tuple[tuple[str, int], ...]  # (op type, count) of weight-making nodes


def split_weights(nodes: Sequence[Any], initializers: Iterable[str]) -> WeightSplit:
    """Classify ``nodes`` (topologically sorted) into weight-making nodes and ops."""
    weights = set(initializers)
    folded: Counter[str] = Counter()
    kept: list[int] = []
    for index, node in enumerate(nodes):
        ins = [n for n in node.input if n]
        makes_weights = (
            node.op_type == "Constant"
            or node.op_type in SHAPE_OPS
            or (bool(ins) and all(n in weights for n in ins) and node.op_type not in RANDOM_OPS)
        )
        if makes_weights:
            weights.update(n for n in node.output if n)
            folded[node.op_type] += 1
        else:
            kept.append(index)
    by_type = tuple(sorted(folded.items(), key=lambda kv: (-kv[1], kv[0])))
    return WeightSplit(frozenset(weights), tuple(kept), by_type)
