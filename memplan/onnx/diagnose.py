"""Say why a model cannot be planned statically, naming the node and how to fix it.

After folding (:mod:`memplan.onnx.fold`) three things can still stop an import:

- control flow: a ``Loop``/``Scan``, or an ``If`` whose condition stays unknown;
- a ``Reshape`` whose target holds another number of elements than its input (ONNX
  shape inference takes the target as it is, so the sizes would be wrong silently);
- a tensor without a static shape: traced up to the *frontier* node (all its inputs
  have static shapes, its output does not), whose unknown input values explain why:
  they come from a small graph input (fix it with ``--input-value``), from the data
  itself (a data-dependent op such as ``NonZero``), from a node onnx.reference could
  not compute, or the node is a custom op that shape inference does not know.
"""

from __future__ import annotations

import math

from memplan.errors import OnnxImportError
from memplan.onnx.control_flow import CONTROL_FLOW_OPS, is_default_domain
from memplan.onnx.fold import ShapeFolder, node_key
from memplan.onnx.shapes import Dim, static_shape

#: A graph input of at most this many elements may be fixed with ``--input-value``.
MAX_VALUE_INPUT_ELEMENTS = 16

#: How to fix a Reshape target that does not fit its input (exporters bake traced sizes).
RESHAPE_FIX = (
    "fix its target shape; an exported model may have the sizes it was traced at baked in: "
    "import it at the input shapes it was traced with, or re-export it with dynamic "
    "shapes (torch.onnx.export dynamic_axes / dynamic_shapes)"
)

#: Standard ops that make or read sequence / optional values, which memplan cannot size.
SEQUENCE_OPTIONAL_OPS = frozenset(
    {
        "SequenceConstruct",
        "SequenceEmpty",
        "SequenceInsert",
        "SequenceAt",
        "SequenceErase",
        "SequenceLength",
        "SplitToSequence",
        "ConcatFromSequence",
        "Optional",
        "OptionalGetElement",
        "OptionalHasElement",
    }
)


class Diagnosis:
    """Error messages for one folded model."""

    def __init__(self, folder: ShapeFolder, source: str) -> None:
        """Explain problems of ``folder``'s model; ``source`` names it in messages."""
        self.folder = folder
        self.source = source

    def describe(self, name: str) -> str:
        """``tensor 'x' (output of node 'n', Op)``, or ``tensor 'x'`` for inputs/weights."""
        index = self.folder.producer.get(name)
        if index is None:
            return f"tensor {name!r}"
        node = self.folder.nodes[index]
        return f"tensor {name!r} (output of node {self.folder.names[index]!r}, {node.op_type})"

    def _parameter_like(self, name: str) -> bool:
        """A graph input that looks like a setting (a rate, a flag, a size), not data.

        Whole numbers or booleans of at most :data:`MAX_VALUE_INPUT_ELEMENTS` elements,
        or any scalar: what ``--input-value`` is for.
        """
        import onnx

        shape = static_shape(self.folder.table, name)
        if shape is None or math.prod(shape) > MAX_VALUE_INPUT_ELEMENTS:
            return False
        _, elem_type = self.folder.table.get(name, (None, 0))
        floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                    onnx.TensorProto.BFLOAT16}  # fmt: skip
        return shape == () or elem_type not in floating

    def _why_unknown(self, name: str) -> str:
        """Why the value of tensor ``name`` is not known before running the model."""
        inputs, failed = self.folder.dependencies(name)
        if failed:
            node = self.folder.nodes[failed[0]]
            return (
                f"node {self.folder.names[failed[0]]!r} ({node.op_type}) on the way could not "
                f"be computed at opset {self.folder.opset} by onnx.reference "
                f"({self.folder.failures[node_key(node)]}); export the model with static input "
                "shapes (its shape computation then becomes constants), or convert it to a "
                "newer opset with onnx.version_converter"
            )
        listed = ", ".join(repr(i) for i in inputs)
        if inputs and all(self._parameter_like(i) for i in inputs):
            fixes = " ".join(f"--input-value {i}:VALUE" for i in inputs)
            return f"it depends on the value of graph input {listed}; fix it with {fixes}"
        if inputs == [name]:
            return "that is graph input data, which memplan cannot know before running the model"
        if inputs:
            return (
                f"it depends on the data of graph input {listed}, which memplan cannot know "
                "before running the model"
            )
        return (
            "it comes from a random, custom or too large computation that memplan does not evaluate"
        )

    def _inference_error(self, index: int) -> str:
        """ONNX's strict shape-inference error on node ``index`` alone ("" if none).

        The node runs on its own with its inputs' static shapes and known values, so an
        inconsistency (a MatMul of mismatched shapes) is told apart from a shape that
        depends on data; the lenient whole-model inference leaves both unknown.
        """
        import onnx
        from onnx import helper, numpy_helper

        folder = self.folder
        node = folder.nodes[index]
        inputs, initializers = [], []
        for name in dict.fromkeys(i for i in node.input if i):
            if name in folder.values:
                initializers.append(numpy_helper.from_array(folder.values[name], name))
            else:
                _, elem_type = folder.table.get(name, (None, 0))
                shape = static_shape(folder.table, name)
                inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        graph = helper.make_graph([node], "node", inputs, [], initializers)
        model = helper.make_model(graph, opset_imports=list(folder.model.opset_import))
        model.ir_version = max(folder.model.ir_version, 4)  # initializers need not be inputs
        try:
            onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        except Exception as error:  # onnx raises several unrelated types here
            lines = str(error).strip().splitlines()
            # onnx nests "[ShapeInferenceError] ... (op_type:X, node name: y): [...] why"
            return lines[0].rsplit("] ", 1)[-1] if lines else type(error).__name__
        return ""

    def _unsupported(self, index: int) -> str:
        """Why node ``index`` (default domain) cannot be shape-inferred at all ("" if it can).

        Checked before blaming input data: an op that is no ONNX op at the model's opset,
        an op version without shape inference (very old opsets), sequence / optional
        values, and IR version 3 initializers missing from the graph inputs.
        """
        from onnx import defs

        folder = self.folder
        node = folder.nodes[index]
        name, op, opset = folder.names[index], node.op_type, folder.opset
        if op in SEQUENCE_OPTIONAL_OPS:
            return (
                f"node {name!r} is a {op}; sequence and optional types are not supported "
                "(memplan plans tensors of static shape). Export the model without them"
            )
        try:
            schema = defs.get_schema(op, opset, "")
        except defs.SchemaError:
            later = ""
            if defs.has(op):
                later = f" (it exists from opset {defs.get_schema(op).since_version})"
            return (
                f"node {name!r} ({op}) is not an ONNX op at the model's opset {opset}{later}; "
                "fix the op type, raise the model's opset with onnx.version_converter, or "
                "give a custom op its own domain"
            )
        if not schema.has_type_and_shape_inference_function:
            return (
                f"ONNX has no shape inference for {op}-{schema.since_version} used by node "
                f"{name!r}: opset {opset} is too old. Convert the model with "
                "onnx.version_converter.convert_version(model, 13) and import that"
            )
        graph = folder.model.graph
        if folder.model.ir_version < 4:
            listed = {vi.name for vi in graph.input}
            missing = [t.name for t in graph.initializer if t.name not in listed]
            if missing:
                return (
                    f"onnx.checker says {missing[0]!r} in initializer but not in graph input "
                    f"(IR version {folder.model.ir_version} needs every initializer listed "
                    "as a graph input); add it to the graph inputs or set the model's "
                    "ir_version to 4 or higher"
                )
        return ""

    def reject_reshapes_changing_size(self) -> None:
        """Raise for the first ``Reshape`` whose output has another element count than its
        input, both shapes static.

        ONNX shape inference takes a Reshape's target as it is ([4,8] -> [2,2] infers
        [2,2]), so a target traced at other sizes (legacy torch exports bake the sequence
        length in) would be planned with wrong tensor sizes; the run itself fails. A
        ``-1`` that does not divide is already an inference error (see
        :meth:`unknown_shape`); ``0`` and ``-1`` are resolved in the inferred shape.
        """
        folder = self.folder
        for index, node in enumerate(folder.nodes):
            if node.op_type != "Reshape" or not is_default_domain(node) or not node.output:
                continue
            data = node.input[0] if node.input else ""
            before = static_shape(folder.table, data)
            after = static_shape(folder.table, node.output[0])
            if before is None or after is None or math.prod(before) == math.prod(after):
                continue
            target = node.input[1] if len(node.input) > 1 else ""
            given = f", target {target!r}" if target else ""
            raise OnnxImportError(
                f"{self.source}: node {folder.names[index]!r} (Reshape) reshapes "
                f"{self.describe(data)} of shape {_dims_text(before)} ({math.prod(before)} "
                f"elements) to {_dims_text(after)} ({math.prod(after)} elements{given}), but a "
                f"Reshape keeps the element count: the model cannot run at these input "
                f"shapes; {RESHAPE_FIX}"
            )

    def reject_control_flow(self) -> None:
        """Raise for the first ``Loop``/``Scan``/``If`` left after folding, if any."""
        folder = self.folder
        for index, node in enumerate(folder.nodes):
            if node.op_type not in CONTROL_FLOW_OPS or not is_default_domain(node):
                continue
            name = folder.names[index]
            if node.op_type == "If":
                cond = node.input[0] if node.input else ""
                why = self._why_unknown(cond)
                fix = ""
                if why.endswith("before running the model") or why.startswith("it comes from"):
                    # No flag can fix a condition on data: the model must change.
                    fix = (
                        ": export each branch as its own model and plan each, or make the "
                        "choice before export (call the branch you want instead of "
                        "torch.cond / the data-dependent if)"
                    )
                raise OnnxImportError(
                    f"{self.source}: node {name!r} is an If whose condition {cond!r} is not a "
                    f"constant: {why}. A static plan needs one branch{fix}"
                )
            raise OnnxImportError(
                f"{self.source}: node {name!r} is a {node.op_type}; loops are not supported "
                "(how often the body runs and what it keeps live depend on data). Unroll it "
                "when exporting (trace with a fixed length instead of scripting)"
            )

    def _frontier_of(self, name: str) -> int | None:
        """The earliest frontier node upstream of tensor ``name`` (or its producer)."""
        folder = self.folder
        frontier = set(folder.frontier())
        seen: set[str] = set()
        stack = [name]
        found: list[int] = []
        while stack:
            top = stack.pop()
            if top in seen:
                continue
            seen.add(top)
            index = folder.producer.get(top)
            if index is None:
                continue
            if index in frontier:
                found.append(index)
                continue
            stack.extend(i for i in folder.nodes[index].input
                         if i and static_shape(folder.table, i) is None)  # fmt: skip
        return min(found) if found else folder.producer.get(name)

    def unknown_shape(self, name: str) -> OnnxImportError:
        """The error for tensor ``name``, which has no static shape after folding."""
        folder = self.folder
        index = self._frontier_of(name)
        if index is None:
            return OnnxImportError(
                f"{self.source}: {self.describe(name)} has no static shape; fix the input "
                "shapes with --input-shape or --dim"
            )
        node = folder.nodes[index]
        out = next((o for o in node.output if o and static_shape(folder.table, o) is None), name)
        what = f"{self.source}: {self.describe(out)} has no static shape"
        if not is_default_domain(node):
            return OnnxImportError(
                f"{what}: node {folder.names[index]!r} is a custom op ({node.domain}::"
                f"{node.op_type}) that ONNX shape inference does not know. Export it as "
                "standard ONNX ops, or record its output shapes in the model's value_info"
            )
        unsupported = self._unsupported(index)
        if unsupported:
            return OnnxImportError(f"{what}: {unsupported}")
        rejected = self._inference_error(index)
        if rejected:
            fix = (
                RESHAPE_FIX
                if node.op_type == "Reshape"
                else "check them, or the model with onnx.checker.check_model(full_check=True)"
            )
            return OnnxImportError(
                f"{what}: ONNX shape inference rejects node {folder.names[index]!r} "
                f"({node.op_type}): {rejected}. The model is inconsistent at the given input "
                f"shapes; {fix}"
            )
        # Sizes, pads and shapes come after the data input (Reshape, Pad, Expand, Resize,
        # Slice, Tile, TopK); a data-dependent op (NonZero, Unique) has only its data.
        blocked = [i for i in node.input if i and i not in folder.values]
        settings = [i for i in node.input[1:] if i in blocked]
        if blocked:
            culprit = (settings or blocked)[0]
            why = self._why_unknown(culprit)
            if why.endswith("before running the model"):  # input data: no flag fixes it
                why += (
                    f". A plan needs every size before the run: export the model without "
                    f"this data-dependent {node.op_type} (e.g. a fixed-size mask), or cut "
                    f"it off before node {folder.names[index]!r} with "
                    "onnx.utils.extract_model"
                )
            return OnnxImportError(
                f"{what}: its size depends on the values in {self.describe(culprit)}, and {why}"
            )
        failure = folder.failures.get(out, "")
        return OnnxImportError(
            f"{what}: ONNX shape inference cannot infer it although every input of node "
            f"{folder.names[index]!r} is known" + (f" ({failure})" if failure else "")
        )


def _dims_text(dims: tuple[Dim, ...]) -> str:
    """``[2,10,64]``: a shape as messages print it."""
    return "[" + ",".join(str(d) for d in dims) + "]"
