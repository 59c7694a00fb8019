"""Fold the shape computations of exported models once the input shapes are fixed.

Models exported from PyTorch or Paddle compute shapes at run time::

    x ─► Shape ─► Gather ─► Unsqueeze ─► Concat ─► Reshape(y, ·)
    ConstantOfShape ─► Concat ─► Slice ─► Transpose ─► Cast ─► Pad(z, ·)
    sr ─► Equal(·, 16000) ─► If

ONNX shape inference with data propagation follows the first chain but not the second
(nor ``Range``, ``Where``, float arithmetic on sizes, ...), and never picks an ``If``
branch. Once the input shapes are fixed, each of these values is a constant, so this
module computes them and lets shape inference go on::

    repeat:
        infer shapes (ONNX, data propagation) on a light copy of the model
        an If whose condition is now known -> replace it by its branch, go again
        a node whose inputs all have static shapes but whose outputs do not
        (the "frontier") -> compute the values of its inputs, evaluating their
        producers with onnx.reference, and show them to inference as constants;
        when all its inputs are known (NonZero of a constant), compute it too
    until nothing new is learned

Values are computed on demand, only for what inference is missing, and only for small
tensors (:data:`MAX_FOLD_ELEMENTS`), so a model without such computations (every stored
workload) costs one shape-inference run as before. The light copy keeps small
initializers and lists the large ones as graph inputs of the same type and shape, so
inference does not copy megabytes of weights on each run. The model keeps its nodes: a
node evaluated here is still a weight-producing node to :mod:`memplan.onnx.weights`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memplan.onnx.control_flow import inline_if, is_default_domain, subgraphs
from memplan.onnx.load import node_names
from memplan.onnx.shapes import (
    ShapeTable,
    complete_known_gaps,
    infer_static_shapes,
    static_shape,
    static_shapes,
)
from memplan.onnx.weights import RANDOM_OPS, SHAPE_OPS, WeightSplit, split_weights

if TYPE_CHECKING:
    import numpy as np
    import onnx

#: Largest tensor (in elements) the folder loads or computes; shape tensors are tiny.
MAX_FOLD_ELEMENTS = 65_536


def node_key(node: Any) -> str:
    """A node's first output name: unique in the graph, and stable when nodes move."""
    return next((o for o in node.output if o), node.name)


def _one_node_graph(
    node: Any, feeds: dict[str, np.ndarray], opset: int
) -> tuple[onnx.GraphProto, dict[str, int]]:
    """``node`` alone in a graph, with the opsets that make onnx.reference run it at ``opset``.

    onnx.reference runs a bare ``NodeProto`` at the newest opset whatever ``opsets`` it is
    given, so an op whose signature changed (Unsqueeze's ``axes`` attribute became an
    input at opset 13) would be run with the wrong implementation; a ``GraphProto`` is run
    at the opsets passed with it.
    """
    import onnx
    from onnx import helper

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.domain = ""  # "ai.onnx" is the default domain too; onnx.reference knows only ""
    inputs = [
        helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)
        )
        for name, value in feeds.items()
    ]
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
    graph = helper.make_graph([copy], "fold", inputs, outputs)
    return graph, {"": opset or onnx.defs.onnx_opset_version()}


def _reference_error(error: Exception) -> str:
    """The first line of onnx.reference's error, without its internal class names.

    onnx.reference names its implementation classes (``operator 'Unsqueeze_13'``), which
    are no ONNX operators and would mislead a reader; the rest of the line is kept.
    """
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    text = re.sub(r"\s*\(operator '[^']*'\)", "", text)
    return re.sub(r"\s+and linked attributes=\[\]", "", text).rstrip(".: ")


@dataclass(frozen=True, slots=True)
class FoldResult:
    """What folding learned about the model (which it changed in place by inlining)."""

    table: ShapeTable  # every tensor's (dims, element type) after the last inference
    split: WeightSplit  # the ops and weights of the final nodes
    evaluated_by_type: tuple[tuple[str, int], ...]  # (op type, count) of nodes computed
    inlined: tuple[str, ...]  # one line per If replaced by its branch
    inference_runs: int  # ONNX shape-inference runs it took


class ShapeFolder:
    """Computes constant values on demand and inlines ``If`` nodes with known conditions.

    Use :meth:`run` once; afterwards :meth:`value` and :meth:`dependencies` answer
    questions for error messages (see :mod:`memplan.onnx.diagnose`).
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        source: str,
        opset: int,
        names: Sequence[str] | None = None,
    ) -> None:
        """Fold ``model`` (changed in place by inlining); ``source`` names it in messages.

        ``names`` are the unique node names (:func:`~memplan.onnx.load.node_names`) when
        the caller has them already.
        """
        self.model = model
        self.source = source
        self.opset = opset
        self.values: dict[str, np.ndarray] = {}  # tensor name -> its known value
        # Nodes are known by their first output (names of unnamed nodes shift on inlining).
        self.evaluated: set[str] = set()  # nodes computed here (Constant nodes are not)
        self.failures: dict[str, str] = {}  # node -> why onnx.reference failed on it
        self.inlined: list[str] = []
        self.table: ShapeTable = {}
        self.static: set[str] = set()  # tensors with a static shape in ``table``
        self.split = WeightSplit(frozenset(), (), ())  # ops and weights, set by each round
        self._unknown: set[str] = set()  # tensors whose value cannot be had this round
        self._refresh(names)

    def _refresh(self, names: Sequence[str] | None = None) -> None:
        graph = self.model.graph
        self.nodes = list(graph.node)
        self.names = list(names) if names is not None else node_names(self.nodes)
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.initializers = {t.name: t for t in graph.initializer}
        self._unknown = set()

    # ------------------------------------------------------------------ the loop
    def run(self) -> FoldResult:
        """Fold until shape inference learns nothing new; return the final shapes."""
        runs = 0
        while True:
            self.table = infer_static_shapes(self._light_copy(), self.source)
            filled = complete_known_gaps(self.nodes, self.table, self.opset)
            self.static = set(static_shapes(self.table))
            runs += 1
            if self._record_shapes(filled):
                continue  # inference carries them on to the ops that read them
            self._unknown = set()
            if self._inline_known_if():
                self._refresh()
                continue
            if self._graph_sized() or not self._evaluate_frontier():
                break
        counts = Counter(n.op_type for n in self.nodes if node_key(n) in self.evaluated)
        return FoldResult(
            table=self.table,
            split=self.split,
            evaluated_by_type=tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            inlined=tuple(self.inlined),
            inference_runs=runs,
        )

    def _record_shapes(self, names: Sequence[str]) -> bool:
        """Record the static shapes of ``names`` that a node reads in the model's
        value_info, where it has none; say whether one was recorded (one more inference
        run then uses them). An unread one (a Dropout mask) needs no run."""
        import onnx

        graph = self.model.graph
        have = {vi.name for vi in (*graph.value_info, *graph.output, *graph.input)}
        read = {name for node in self.nodes for name in node.input}
        added = False
        for name in names:
            shape = static_shape(self.table, name)
            if name in have or name not in read or shape is None:
                continue
            _, elem_type = self.table[name]
            graph.value_info.append(onnx.helper.make_tensor_value_info(name, elem_type, shape))
            added = True
        return added

    def _inline_known_if(self) -> bool:
        """Inline every ``If`` whose condition is known; say whether one was."""
        known: list[tuple[int, bool]] = []
        for index, node in enumerate(self.nodes):
            if node.op_type != "If" or not is_default_domain(node) or not node.input:
                continue
            cond = self.value(node.input[0])
            if cond is not None and cond.size == 1:
                known.append((index, bool(cond.reshape(-1)[0])))
        lines = []
        for index, take_then in reversed(known):  # from the back: earlier indices stay valid
            count = inline_if(self.model.graph, index, self.names[index], take_then)
            lines.append(
                f"{self.names[index]}: {'then' if take_then else 'else'} branch "
                f"(condition {str(take_then).lower()}), {count} node(s)"
            )
        self.inlined.extend(reversed(lines))
        return bool(known)

    def _graph_sized(self) -> bool:
        """Whether every tensor the plan's graph will hold has a static shape.

        Weight-making nodes that no op reads may keep unknown shapes: nobody sizes them.
        """
        self.split = split = split_weights(self.nodes, self.initializers)
        static = self.static
        for index in split.kept:
            node = self.nodes[index]
            if not all(n in static for n in (*node.input, *node.output) if n):
                return False
        return True

    def frontier(self) -> list[int]:
        """Nodes whose inputs all have static shapes but some output does not."""
        static = self.static
        found = []
        for index, node in enumerate(self.nodes):
            if all(o in static for o in node.output if o):
                continue
            if all(i in static for i in node.input if i):
                found.append(index)
        return found

    def _evaluate_frontier(self) -> bool:
        """Compute the inputs of the frontier nodes; say whether a node was computed."""
        before = len(self.evaluated)
        for index in self.frontier():
            node = self.nodes[index]
            for name in node.input:
                if name and name not in self.values:
                    self.value(name)
            # Every input known but no output shape: inference cannot follow the op
            # (NonZero, Unique of a constant); compute the node itself.
            if all(i in self.values for i in node.input if i):
                self.value(node_key(node))
        return len(self.evaluated) > before

    def _light_copy(self) -> onnx.ModelProto:
        """The model for shape inference: small initializers, computed values as Constants."""
        import onnx
        from onnx import numpy_helper

        model = self.model
        if not self.evaluated and all(self._loadable(t) for t in model.graph.initializer):
            return model  # already light: no copy
        probe = onnx.ModelProto()
        probe.ir_version = model.ir_version
        probe.opset_import.extend(model.opset_import)
        probe.functions.extend(model.functions)
        graph, source = probe.graph, model.graph
        graph.name = source.name
        graph.input.extend(source.input)
        graph.output.extend(source.output)
        graph.value_info.extend(source.value_info)
        graph.sparse_initializer.extend(source.sparse_initializer)
        listed = {vi.name for vi in source.input}
        for tensor in source.initializer:
            if self._loadable(tensor):
                graph.initializer.append(tensor)
            elif tensor.name not in listed:
                graph.input.append(
                    onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
                )
        if not self.evaluated:
            graph.node.extend(self.nodes)
            return probe
        nodes = []
        for node in self.nodes:
            if node_key(node) not in self.evaluated:
                nodes.append(node)
                continue
            for out in node.output:
                if out:
                    value = numpy_helper.from_array(self.values[out])
                    nodes.append(onnx.helper.make_node("Constant", [], [out], value=value))
        graph.node.extend(nodes)
        return probe

    # ------------------------------------------------------------------ values
    @staticmethod
    def _loadable(tensor: Any) -> bool:
        from onnx.external_data_helper import uses_external_data

        return math.prod(tensor.dims) <= MAX_FOLD_ELEMENTS and not uses_external_data(tensor)

    def _too_big(self, name: str) -> bool:
        shape = static_shape(self.table, name)
        return shape is not None and math.prod(shape) > MAX_FOLD_ELEMENTS

    def value(self, name: str) -> np.ndarray | None:
        """The value of tensor ``name`` if it is a small constant once shapes are fixed."""
        stack = [name]
        while stack:
            top = stack[-1]
            if top in self.values or top in self._unknown:
                stack.pop()
                continue
            if self._too_big(top):  # e.g. the data input of the frontier node
                self._unknown.add(top)
                stack.pop()
                continue
            index = self.producer.get(top)
            if index is None:
                self._load(top)
                stack.pop()
                continue
            node = self.nodes[index]
            if not self._may_evaluate(node):
                self._unknown.update(o for o in node.output if o)
                stack.pop()
                continue
            if node.op_type not in SHAPE_OPS:
                missing = [i for i in node.input if i and i not in self.values]
                if any(i in self._unknown for i in missing):
                    self._unknown.update(o for o in node.output if o)
                    stack.pop()
                    continue
                if missing:
                    stack.extend(missing)
                    continue
            self._evaluate(index)
            stack.pop()
        return self.values.get(name)

    def _load(self, name: str) -> None:
        """Record the value of an initializer (small and in memory), or that it has none."""
        from onnx import numpy_helper

        tensor = self.initializers.get(name)
        if tensor is not None and self._loadable(tensor):
            try:
                self.values[name] = numpy_helper.to_array(tensor)
                return
            except (ValueError, TypeError):
                pass
        self._unknown.add(name)

    def _may_evaluate(self, node: Any) -> bool:
        """Standard, deterministic, without sub-graphs, and with small outputs."""
        if not is_default_domain(node) or node.op_type in RANDOM_OPS:
            return False
        if any(True for _ in subgraphs(node)):
            return False
        return not any(self._too_big(o) for o in node.output if o)

    def _evaluate(self, index: int) -> None:
        """Compute node ``index`` with onnx.reference; record its outputs or that it failed."""
        import numpy as np
        from onnx.reference import ReferenceEvaluator

        node = self.nodes[index]
        outs = [o for o in node.output if o]
        feeds: dict[str, Any] = {}
        if node.op_type in SHAPE_OPS:
            shape = static_shape(self.table, node.input[0]) if node.input else None
            if shape is None:
                self._unknown.update(outs)
                return
            feeds[node.input[0]] = np.broadcast_to(np.zeros((), np.uint8), shape)
        else:
            feeds = {i: self.values[i] for i in node.input if i}
            if any(v.size > MAX_FOLD_ELEMENTS for v in feeds.values()):
                self._unknown.update(outs)
                return
        try:
            graph, opsets = _one_node_graph(node, feeds, self.opset)
            results = ReferenceEvaluator(graph, opsets=opsets).run(outs, feeds)
        except Exception as error:  # onnx.reference raises many unrelated types
            self.failures[node_key(node)] = _reference_error(error)
            self._unknown.update(outs)
            return
        arrays = [np.asarray(r) if isinstance(r, np.ndarray | np.generic) else None
                  for r in results]  # fmt: skip
        if any(a is None or a.size > MAX_FOLD_ELEMENTS for a in arrays):
            self._unknown.update(outs)
            return
        for out, array in zip(outs, arrays, strict=True):
            if array is not None:
                self.values[out] = array
        if node.op_type != "Constant":
            self.evaluated.add(node_key(node))

    def dependencies(self, name: str) -> tuple[list[str], list[int]]:
        """What keeps the value of tensor ``name`` unknown.

        Returns:
            The graph inputs (not initializers) whose values ``name`` depends on, and the
            indices of nodes on the way that onnx.reference failed to compute. The walk
            stops at known values and at ``Shape``/``Size`` (they read no values).
        """
        graph_inputs = {vi.name for vi in self.model.graph.input} - set(self.initializers)
        inputs: list[str] = []
        failed: list[int] = []
        seen: set[str] = set()
        stack = [name]
        while stack:
            top = stack.pop()
            if top in seen or top in self.values:
                continue
            seen.add(top)
            if top in graph_inputs:
                inputs.append(top)
            index = self.producer.get(top)
            if index is None:
                continue
            node = self.nodes[index]
            if node_key(node) in self.failures:
                failed.append(index)
            if node.op_type not in SHAPE_OPS:
                stack.extend(i for i in node.input if i)
        return sorted(inputs), failed
