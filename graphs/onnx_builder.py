"""A small helper that builds ONNX models node by node, knowing every tensor's shape.

The workload generators (NAS cells, RandWire, transformers, CNNs) only need tensor
shapes, not trained weights. Weights are therefore made the way the ``light_*`` models
in the onnx wheel make them: a ``ConstantOfShape`` node whose input is a tiny int64
initializer holding the weight's shape. The serialized model stays small (a few hundred
bytes per weight) however large the weights are::

    w__shape (int64 initializer [4]) ──► ConstantOfShape ──► w [64, 32, 3, 3]
                                                              │
    x [1, 32, 56, 56] ───────────────────────────────────► Conv ──► y [1, 64, 56, 56]

Every node's output types come from ONNX's own per-node shape inference
(:func:`onnx.shape_inference.infer_node_outputs`), so a generator can read
``builder.shape(tensor)`` while it builds, and the finished model carries ``value_info``
for every intermediate tensor. Names are derived from a scope stack and a counter, so
the same calls always give the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from memplan.errors import GraphError

if TYPE_CHECKING:
    import onnx

#: Default operator set of generated models (LayerNormalization needs 17).
OPSET = 17
#: IR version written into generated models (the lowest one that allows opset 17).
IR_VERSION = 8
#: Value every generated weight is filled with; only shapes matter for planning.
WEIGHT_FILL = 0.01


class OnnxBuilder:
    """Build one ONNX model with shapes known at every step.

    Args:
        name: graph name written into the model.
        doc: doc string of the model (say which generator and parameters made it).
        opset: default-domain operator set version.
    """

    def __init__(self, name: str, *, doc: str = "", opset: int = OPSET) -> None:
        import onnx

        self.name = name
        self.doc = doc
        self.opset = opset
        self._onnx = onnx
        self._nodes: list[onnx.NodeProto] = []
        self._initializers: list[onnx.TensorProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[str] = []
        self._types: dict[str, onnx.TypeProto] = {}  # every tensor's type, by name
        self._const_data: dict[str, onnx.TensorProto] = {}  # values of int/float initializers
        self._weights: set[str] = set()  # outputs of weight-making nodes
        self._value_info_order: list[str] = []  # intermediate tensors in creation order
        self._scopes: list[str] = []
        self._used_names: set[str] = set()
        self._opset_ids = [onnx.helper.make_opsetid("", opset)]

    # ----------------------------------------------------------------- names

    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefix every name created inside the ``with`` block with ``name/``."""
        self._scopes.append(name)
        try:
            yield
        finally:
            self._scopes.pop()

    def fresh(self, hint: str) -> str:
        """Return an unused name ``scope/.../hint`` (``hint_1``, ``hint_2``... on clashes)."""
        base = "/".join([*self._scopes, hint])
        name, k = base, 0
        while name in self._used_names:
            k += 1
            name = f"{base}_{k}"
        self._used_names.add(name)
        return name

    # ----------------------------------------------------------------- values

    def add_input(self, name: str, shape: Sequence[int], elem_type: int | None = None) -> str:
        """Declare a graph input of a fixed shape (float32 unless ``elem_type`` is given)."""
        helper = self._onnx.helper
        dtype = self._onnx.TensorProto.FLOAT if elem_type is None else elem_type
        if name in self._used_names:
            raise GraphError(f"graph {self.name!r}: input name {name!r} is already used")
        self._used_names.add(name)
        info = helper.make_tensor_value_info(name, dtype, list(shape))
        self._inputs.append(info)
        self._types[name] = info.type
        return name

    def weight(self, shape: Sequence[int], hint: str = "weight", value: float = WEIGHT_FILL) -> str:
        """A float32 weight of ``shape``, made by ``ConstantOfShape`` of a constant shape."""
        if not shape or any(int(d) <= 0 for d in shape):
            raise GraphError(f"graph {self.name!r}: weight {hint!r} has a bad shape {shape}")
        onnx = self._onnx
        out = self.fresh(hint)
        shape_name = f"{out}__shape"
        self._used_names.add(shape_name)
        self._add_initializer(
            onnx.helper.make_tensor(
                shape_name, onnx.TensorProto.INT64, [len(shape)], [int(d) for d in shape]
            )
        )
        fill = onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [value])
        node = onnx.helper.make_node(
            "ConstantOfShape", [shape_name], [out], name=out + "/make", value=fill
        )
        self._nodes.append(node)
        self._types[out] = onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, list(shape))
        self._value_info_order.append(out)
        self._weights.add(out)
        return out

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        """A tiny 1-D int64 initializer (shapes, axes, slice bounds)."""
        onnx = self._onnx
        name = self.fresh(hint)
        tensor = onnx.helper.make_tensor(
            name, onnx.TensorProto.INT64, [len(values)], [int(v) for v in values]
        )
        self._add_initializer(tensor)
        return name

    def floats(self, values: Sequence[float], hint: str = "floats") -> str:
        """A tiny 1-D float32 initializer (scalars such as clip bounds or scales)."""
        onnx = self._onnx
        name = self.fresh(hint)
        tensor = onnx.helper.make_tensor(
            name, onnx.TensorProto.FLOAT, [len(values)], [float(v) for v in values]
        )
        self._add_initializer(tensor)
        return name

    def scalar(self, value: float, hint: str = "scalar") -> str:
        """A float32 scalar (rank 0) initializer."""
        onnx = self._onnx
        name = self.fresh(hint)
        self._add_initializer(onnx.helper.make_tensor(name, onnx.TensorProto.FLOAT, [], [value]))
        return name

    def _add_initializer(self, tensor: onnx.TensorProto) -> None:
        self._initializers.append(tensor)
        self._const_data[tensor.name] = tensor
        self._types[tensor.name] = self._onnx.helper.make_tensor_type_proto(
            tensor.data_type, list(tensor.dims)
        )

    def shape(self, tensor: str) -> tuple[int, ...]:
        """The static shape of a tensor created so far."""
        try:
            dims = self._types[tensor].tensor_type.shape.dim
        except KeyError:
            raise GraphError(f"graph {self.name!r}: no tensor named {tensor!r}") from None
        return tuple(int(d.dim_value) for d in dims)

    def is_weight(self, tensor: str) -> bool:
        """True for tensors made only from constants (weights and their constant inputs)."""
        return tensor in self._weights or tensor in self._const_data

    # ------------------------------------------------------------------ nodes

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, **attrs: Any) -> str:
        """Add a node with one output and return the output's name."""
        return self.op_multi(op_type, inputs, 1, hint, **attrs)[0]

    def op_multi(
        self,
        op_type: str,
        inputs: Sequence[str],
        num_outputs: int,
        hint: str | None = None,
        **attrs: Any,
    ) -> list[str]:
        """Add a node with ``num_outputs`` outputs; their types come from ONNX inference.

        A node whose inputs are all constants is itself weight-making (its outputs count
        as weights, like ``Trilu`` of a ``ConstantOfShape``).
        """
        onnx = self._onnx
        node_name = self.fresh(hint or op_type.lower())
        outputs = (
            [node_name] if num_outputs == 1 else [f"{node_name}:{i}" for i in range(num_outputs)]
        )
        self._used_names.update(outputs)
        node = onnx.helper.make_node(op_type, list(inputs), outputs, name=node_name, **attrs)
        try:
            input_types = {name: self._types[name] for name in inputs if name}
        except KeyError as error:
            raise GraphError(
                f"graph {self.name!r}: node {node_name!r} ({op_type}) reads unknown tensor {error}"
            ) from None
        input_data = {name: self._const_data[name] for name in inputs if name in self._const_data}
        try:
            schema = onnx.defs.get_schema(op_type, self.opset, "")
            inferred = onnx.shape_inference.infer_node_outputs(
                schema, node, input_types, input_data, opset_imports=self._opset_ids
            )
        except Exception as error:  # onnx raises several unrelated types here
            raise GraphError(
                f"graph {self.name!r}: node {node_name!r} ({op_type}) fails shape inference "
                f"with inputs {[self.shape(i) for i in inputs if i]}: {error}"
            ) from error
        for out in outputs:
            out_type = inferred.get(out)
            if out_type is None or not _fully_static(out_type):
                raise GraphError(
                    f"graph {self.name!r}: node {node_name!r} ({op_type}) output {out!r} has no "
                    "static shape; give the generator concrete sizes"
                )
            self._types[out] = out_type
            self._value_info_order.append(out)
        self._nodes.append(node)
        if all(name in self._weights or name in self._const_data for name in inputs if name):
            self._weights.update(outputs)
        return outputs

    def add_output(self, tensor: str) -> None:
        """Mark a tensor as a graph output."""
        if tensor not in self._types:
            raise GraphError(f"graph {self.name!r}: output {tensor!r} does not exist")
        self._outputs.append(tensor)

    # ------------------------------------------------------------------ build

    def build(self) -> onnx.ModelProto:
        """Return the finished model (``value_info`` for every intermediate tensor)."""
        onnx = self._onnx
        helper = onnx.helper
        if not self._outputs:
            raise GraphError(f"graph {self.name!r}: no graph output was declared")
        outputs = [helper.make_value_info(name, self._types[name]) for name in self._outputs]
        output_set = set(self._outputs)
        value_info = [
            helper.make_value_info(name, self._types[name])
            for name in self._value_info_order
            if name not in output_set
        ]
        graph = helper.make_graph(
            self._nodes,
            self.name,
            self._inputs,
            outputs,
            initializer=self._initializers,
            value_info=value_info,
        )
        model = helper.make_model(
            graph,
            opset_imports=self._opset_ids,
            producer_name="memplan.graphs",
            doc_string=self.doc,
        )
        model.ir_version = IR_VERSION
        return model


def _fully_static(type_proto: onnx.TypeProto) -> bool:
    if not type_proto.HasField("tensor_type"):
        return False
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return False
    return all(d.HasField("dim_value") and d.dim_value > 0 for d in tensor_type.shape.dim)


def compute_node_count(model: onnx.ModelProto) -> int:
    """Number of nodes that compute on data: all but the constant/weight-making ones.

    A node is weight-making when every input it reads is an initializer or the output
    of another weight-making node (``Constant``, ``ConstantOfShape`` of a constant shape,
    ``Unsqueeze`` of a weight, ...). This is the op count the workload index records.
    """
    constant = {init.name for init in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
        else:
            count += 1
    return count
