"""Build the scheduling :class:`~memplan.ir.Graph` from the classified ONNX nodes.

Graph inputs that an op reads become ``INPUT`` tensors, weights that an op reads become
``WEIGHT`` tensors (made on first use), and every output of an op an ``ACTIVATION``;
aliases are resolved to their buffers first. Sizes come from the ONNX element types (or
``dtype_bytes``) through :class:`~memplan.onnx.shapes.TensorSizer`, and each op gets a
MAC estimate (:mod:`memplan.onnx.macs`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from memplan.errors import OnnxImportError
from memplan.ir import Graph, GraphBuilder, TensorId, TensorKind
from memplan.onnx.aliases import Aliases
from memplan.onnx.macs import estimate_macs, macs_estimated
from memplan.onnx.shapes import TensorSizer


@dataclass(frozen=True, slots=True)
class Built:
    """The graph and what building it found."""

    graph: Graph  # the scheduling IR
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # shape of each graph input kept
    weight_tensors: int  # weight tensors the ops read
    warnings: tuple[str, ...]  # unused inputs, outputs with nothing to plan, MAC guesses


def _attributes(node: Any) -> dict[str, Any]:
    """The node's int / ints / float attributes as Python values (for MAC estimates)."""
    import onnx

    values: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS,
                         onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS):  # fmt: skip
            values[attr.name] = onnx.helper.get_attribute_value(attr)
    return values


class _GraphMaker:
    """Adds inputs, weights and ops to a :class:`GraphBuilder`, resolving aliases."""

    def __init__(
        self, name: str, sizes: TensorSizer, aliases: Aliases, weights: Collection[str]
    ) -> None:
        self.builder = GraphBuilder(name)
        self.sizes = sizes
        self.aliases = aliases
        self.weights = weights
        self.weight_count = 0
        self.estimated: dict[str, None] = {}  # op types whose MACs are only guessed

    def add_input(self, name: str) -> tuple[int, ...]:
        size, shape, dtype = self.sizes.of(name)
        self.builder.tensor(name, size, TensorKind.INPUT, shape=shape, dtype=dtype)
        return shape

    def _read(self, raw: str, source: str) -> TensorId:
        name = self.aliases.resolve(raw)
        if not self.builder.has_tensor(name):
            if name not in self.weights:  # pragma: no cover - load.topological_order checked
                raise OnnxImportError(f"{source}: tensor {name!r} has no producer")
            size, shape, dtype = self.sizes.of(name)
            self.builder.tensor(name, size, TensorKind.WEIGHT, shape=shape, dtype=dtype)
            self.weight_count += 1
        return self.builder.tensor_id(name)

    def _empty_weight(self, raw: str) -> bool:
        """A weight without elements (the empty ``roi`` of an opset 11-12 Resize, which
        torch writes for every interpolate): no data to load, so no input of the op."""
        name = self.aliases.resolve(raw)
        shape = self.sizes.static(name)
        return name in self.weights and shape is not None and math.prod(shape) == 0

    def add_op(self, node: Any, name: str, outputs: Collection[str], source: str) -> None:
        in_ids = [
            self._read(raw, source) for raw in node.input if raw and not self._empty_weight(raw)
        ]
        out_ids: list[TensorId] = []
        for out in node.output:
            if out:
                size, shape, dtype = self.sizes.of(out)
                out_ids.append(self.builder.tensor(
                    out, size, is_output=out in outputs, shape=shape, dtype=dtype
                ))  # fmt: skip
        in_shapes = [self.sizes.static(n) if n else None for n in node.input]
        out_shapes = [self.sizes.static(n) if n else None for n in node.output]
        macs = estimate_macs(node.op_type, in_shapes, out_shapes, _attributes(node))
        if macs_estimated(node.op_type, node.domain):
            label = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
            self.estimated[label] = None
        self.builder.op(name, node.op_type, in_ids, out_ids, macs)


def build_graph(
    graph_name: str,
    nodes: Sequence[Any],
    names: Sequence[str],
    *,
    aliases: Aliases,
    weights: Collection[str],
    input_names: Sequence[str],
    graph_outputs: Sequence[str],
    sizes: TensorSizer,
    source: str,
) -> Built:
    """Build the graph of the ops ``aliases.ops`` (indices into ``nodes``).

    Raises:
        OnnxImportError: a tensor without a static shape or size, no op left, or a graph
            the IR rejects.
    """
    resolve = aliases.resolve
    maker = _GraphMaker(graph_name, sizes, aliases, weights)
    warnings: list[str] = []
    used_inputs = {resolve(n) for i in aliases.ops for n in nodes[i].input if n}
    kept_inputs: list[tuple[str, tuple[int, ...]]] = []
    for name in input_names:
        if name in used_inputs:
            kept_inputs.append((name, maker.add_input(name)))
        else:
            warnings.append(f"graph input {name!r} is read by no op; it is left out")
    outputs = {resolve(n) for n in graph_outputs} | aliases.extra_outputs
    for index in aliases.ops:
        maker.add_op(nodes[index], names[index], outputs, source)
    for name in graph_outputs:
        buffer = resolve(name)
        if not maker.builder.has_tensor(buffer) or buffer in weights or buffer in input_names:
            # load.check_graph_outputs refused outputs that name no tensor
            what = "a weight" if buffer in weights else "a graph input"
            warnings.append(f"graph output {name!r} is {what}; nothing to plan for it")
    if not graph_outputs:
        warnings.append(
            "the model declares no graph output: no result is kept, so every op's output "
            "is dropped after its last read (export the model with its outputs)"
        )
    if maker.estimated:
        listed = ", ".join(maker.estimated)
        warnings.append(
            f"MACs of {listed} are only estimated (one per output element; memplan has no "
            "rule for these op types), so latency and energy for them are rough"
        )
    if not aliases.ops:
        raise OnnxImportError(
            f"{source}: no op is left after folding constants (the model computes only "
            "constants); nothing to plan"
        )
    try:
        graph = maker.builder.build()
    except Exception as error:
        raise OnnxImportError(f"{source}: {error}") from error
    return Built(graph, tuple(kept_inputs), maker.weight_count, tuple(warnings))


def dequantized_weights_warning(
    graph: Graph, nodes: Sequence[Any], kept: Collection[int], sizes: TensorSizer
) -> str | None:
    """A warning when quantized weights are planned at their dequantized size.

    A ``DequantizeLinear`` that reads only weights (the weights of a QDQ model) folds
    into a weight like any constant computation, and that weight has the dequantized
    type: an int8 weight is planned as float32, 4x the bytes the file stores and an
    int8 accelerator loads. The plan is right for the graph as written; the warning
    says so and how to plan the stored bytes instead (``--dtype-bytes``). None when no
    weight the ops read grows that way.
    """
    names = {t.name: t for t in graph.tensors}
    stored = planned = count = 0
    for index, node in enumerate(nodes):
        if index in kept or node.op_type != "DequantizeLinear" or not node.input:
            continue
        out = names.get(node.output[0]) if node.output else None
        if out is None or out.kind is not TensorKind.WEIGHT:
            continue
        size, _, _ = sizes.of(node.input[0])
        if out.size_bytes > size:
            stored, planned, count = stored + size, planned + out.size_bytes, count + 1
    if not count:
        return None
    what = "1 quantized weight is" if count == 1 else f"{count} quantized weights are"
    return (
        f"{what} planned dequantized: DequantizeLinear of constants folds into weights of "
        f"{planned:,} B, {planned / stored:.1f}x the {stored:,} B stored; to plan the bytes "
        "an int8 accelerator moves, import with --dtype-bytes 1 (every tensor one byte)"
    )
