"""Static shapes for ONNX import: flag parsing, overrides, shape inference, element sizes.

``--input-shape name:1,3,224,224`` fixes a graph input's shape (the syntax onnxsim and
onnxslim use) and ``--dim batch=1`` gives a symbolic dimension a value wherever it
appears. :func:`infer_static_shapes` applies both to a copy of the model, runs ONNX
shape inference with data propagation and returns every tensor's (dims, element type),
where a dim is an ``int``, a ``str`` (a symbolic name) or ``None`` (unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, OnnxImportError

if TYPE_CHECKING:
    import onnx

#: A dim after shape inference: a size, a symbolic name, or unknown.
Dim = int | str | None
#: Per tensor name: (dims or None if the rank is unknown, ONNX element type number).
ShapeTable = dict[str, tuple[tuple[Dim, ...] | None, int]]

_NAME_SHAPE = re.compile(r"^(?P<name>.+):(?P<dims>-?\d+(?:\s*,\s*-?\d+)*)?$")

#: Bits per element of every ONNX element type memplan accepts (by TensorProto name).
_ELEMENT_BITS = {
    "FLOAT": 32,
    "UINT8": 8,
    "INT8": 8,
    "UINT16": 16,
    "INT16": 16,
    "INT32": 32,
    "INT64": 64,
    "BOOL": 8,
    "FLOAT16": 16,
    "DOUBLE": 64,
    "UINT32": 32,
    "UINT64": 64,
    "COMPLEX64": 64,
    "COMPLEX128": 128,
    "BFLOAT16": 16,
    "FLOAT8E4M3FN": 8,
    "FLOAT8E4M3FNUZ": 8,
    "FLOAT8E5M2": 8,
    "FLOAT8E5M2FNUZ": 8,
    "FLOAT8E8M0": 8,
    "UINT4": 4,
    "INT4": 4,
    "FLOAT4E2M1": 4,
    "UINT2": 2,
    "INT2": 2,
}


def parse_input_shapes(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME:D1,D2,...`` strings (``--input-shape``) into a name -> shape map.

    The name may itself contain ``:``; the shape is what follows the last one. An empty
    shape (``name:``) means a scalar.

    Raises:
        ConfigError: a malformed item, a non-positive dim, or a name given twice.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        text = item.strip()
        match = _NAME_SHAPE.match(text)
        if not match:
            raise ConfigError(
                f"--input-shape {item!r} is not NAME:D1,D2,...; "
                "write e.g. --input-shape input:1,3,224,224"
            )
        name = match.group("name")
        dims_text = match.group("dims")
        dims = tuple(int(d) for d in dims_text.split(",")) if dims_text else ()
        if any(d <= 0 for d in dims):
            raise ConfigError(
                f"--input-shape {item!r}: every dim must be a positive number of elements"
            )
        if name in shapes:
            raise ConfigError(f"--input-shape gives input {name!r} twice; give it once")
        shapes[name] = dims
    return shapes


def parse_dims(items: Iterable[str]) -> dict[str, int]:
    """Parse ``NAME=VALUE`` strings (``--dim``) into a symbolic-dim -> size map.

    Raises:
        ConfigError: a malformed item, a non-positive value, or a name given twice.
    """
    dims: dict[str, int] = {}
    for item in items:
        name, sep, value = item.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--dim {item!r} is not NAME=VALUE; write e.g. --dim batch=1")
        try:
            size = int(value.strip())
        except ValueError:
            raise ConfigError(
                f"--dim {item!r}: {value.strip()!r} is not a whole number; write e.g. --dim batch=1"
            ) from None
        if size <= 0:
            raise ConfigError(f"--dim {item!r}: the size must be a positive number of elements")
        if name in dims:
            raise ConfigError(f"--dim gives {name!r} twice; give it once")
        dims[name] = size
    return dims


def element_type_name(elem_type: int) -> str:
    """Lower-case name of an ONNX element type number (``"float32"`` style for FLOAT)."""
    import onnx

    try:
        name = onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type{elem_type}"
    return {"FLOAT": "float32", "DOUBLE": "float64"}.get(name, name.lower())


def element_bits(elem_type: int) -> int | None:
    """Bits per element of an ONNX element type, or None for strings / unknown types."""
    import onnx

    try:
        name = onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return None
    return _ELEMENT_BITS.get(name)


def _dims_of(type_proto: Any) -> tuple[tuple[Dim, ...] | None, int]:
    """(dims, element type) of a ``TypeProto`` (non-tensor types: (None, 0))."""
    if type_proto.WhichOneof("value") != "tensor_type":
        return None, 0
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape"):
        return None, tensor_type.elem_type
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value >= 0:
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims), tensor_type.elem_type


def _set_dims(value_info: Any, shape: Sequence[int]) -> None:
    tensor_type = value_info.type.tensor_type
    tensor_type.shape.Clear()
    for size in shape:
        tensor_type.shape.dim.add().dim_value = int(size)


def _substitute_dims(value_info: Any, dims: Mapping[str, int], used: set[str]) -> None:
    if value_info.type.WhichOneof("value") != "tensor_type":
        return
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_param") and dim.dim_param in dims:
            used.add(dim.dim_param)
            dim.dim_value = dims[dim.dim_param]


def apply_shape_overrides(
    model: onnx.ModelProto,
    input_names: Sequence[str],
    input_shapes: Mapping[str, Sequence[int]],
    dims: Mapping[str, int],
    source: str,
) -> list[str]:
    """Apply ``--input-shape`` and ``--dim`` to ``model`` in place; return warnings.

    Raises:
        ConfigError: an input shape names no graph input or has the wrong rank.
    """
    inputs = {vi.name: vi for vi in model.graph.input if vi.name in input_names}
    warnings: list[str] = []
    for name, shape in input_shapes.items():
        if name not in inputs:
            listed = ", ".join(repr(n) for n in input_names) or "none"
            raise ConfigError(
                f"{source}: --input-shape names {name!r}, which is not a graph input; "
                f"the inputs are: {listed}"
            )
        current, _ = _dims_of(inputs[name].type)
        if current is not None and len(current) != len(shape):
            shown = ",".join(str(d) if d is not None else "?" for d in current)
            raise ConfigError(
                f"{source}: --input-shape {name}:{','.join(map(str, shape))} has rank "
                f"{len(shape)}, but input {name!r} has rank {len(current)} (shape [{shown}]); "
                f"give {len(current)} dims"
            )
    used: set[str] = set()
    graph = model.graph
    for vi in (*graph.input, *graph.output, *graph.value_info):
        _substitute_dims(vi, dims, used)
    for name in sorted(set(dims) - used):
        warnings.append(f"--dim {name}={dims[name]}: no tensor has a symbolic dim {name!r}")
    if input_shapes:
        for name, shape in input_shapes.items():
            _set_dims(inputs[name], shape)
        # Recorded intermediate and output shapes may contradict the new input shapes:
        # drop them and let shape inference recompute them.
        del graph.value_info[:]
        for vi in graph.output:
            if vi.type.WhichOneof("value") == "tensor_type":
                vi.type.tensor_type.ClearField("shape")
    return warnings


def infer_static_shapes(model: onnx.ModelProto, source: str) -> ShapeTable:
    """Run ONNX shape inference (with data propagation) and collect every tensor's shape.

    Raises:
        OnnxImportError: shape inference itself fails (an inconsistent model).
    """
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(
            model, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception as error:  # onnx raises several unrelated types here
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OnnxImportError(
            f"{source}: ONNX shape inference failed: {first}; check the model with "
            "onnx.checker.check_model or fix its input shapes with --input-shape"
        ) from error
    graph = inferred.graph
    table: ShapeTable = {}
    for vi in (*graph.input, *graph.value_info, *graph.output):
        dims, elem_type = _dims_of(vi.type)
        old = table.get(vi.name)
        if old is None or (old[0] is None and dims is not None):
            table[vi.name] = (dims, elem_type)
    for init in graph.initializer:
        table[init.name] = (tuple(int(d) for d in init.dims), init.data_type)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    table[node.output[0]] = (tuple(int(d) for d in attr.t.dims), attr.t.data_type)
    return table


def suggest_input_shape(name: str, dims: Sequence[Dim] | None) -> str:
    """An ``--input-shape`` example for input ``name``: symbolic or unknown dims as 1."""
    if dims is None:
        return f"{name}:1,3,224,224"
    return f"{name}:" + ",".join(str(d) if isinstance(d, int) else "1" for d in dims)


class TensorSizer:
    """Static shape, element type and byte size of every tensor, with clear errors."""

    def __init__(
        self,
        table: ShapeTable,
        dtype_bytes: int | None,
        source: str,
        input_names: Sequence[str],
        nodes: Sequence[Any],
        names: Sequence[str],
    ) -> None:
        self.table = table
        self.dtype_bytes = dtype_bytes
        self.source = source
        self.input_names = list(input_names)
        self.producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
        self.nodes = nodes
        self.names = names
        self.warnings: list[str] = []

    def static(self, name: str) -> tuple[int, ...] | None:
        """The static shape, or None when not fully known."""
        dims, _ = self.table.get(name, (None, 0))
        if dims is None or not all(isinstance(d, int) for d in dims):
            return None
        return tuple(int(d) for d in dims)  # type: ignore[arg-type]

    def _where(self, name: str) -> str:
        index = self.producer.get(name)
        if index is None:
            return f"tensor {name!r}"
        return (
            f"tensor {name!r} (output of node {self.names[index]!r}, {self.nodes[index].op_type})"
        )

    def _unknown_shape(self, name: str) -> OnnxImportError:
        dims, _ = self.table.get(name, (None, 0))
        where = self._where(name)
        symbolic = [d for d in dims or () if isinstance(d, str)]
        for param in symbolic:
            for inp in self.input_names:
                in_dims = self.table.get(inp, (None, 0))[0] or ()
                if param in in_dims:
                    example = suggest_input_shape(inp, in_dims)
                    return OnnxImportError(
                        f"{self.source}: {where} has symbolic dim {param!r}: pass "
                        f"--dim {param}=1 or --input-shape {example}"
                    )
        unknown_inputs = [i for i in self.input_names if self.static(i) is None]
        if unknown_inputs:
            first = unknown_inputs[0]
            example = suggest_input_shape(first, self.table.get(first, (None, 0))[0])
            detail = f"symbolic dim {symbolic[0]!r}" if symbolic else "an unknown shape"
            return OnnxImportError(
                f"{self.source}: {where} has {detail} after shape inference; fix the shapes "
                f"of the inputs ({', '.join(repr(i) for i in unknown_inputs)}) with "
                f"--input-shape, e.g. --input-shape {example}"
            )
        return OnnxImportError(
            f"{self.source}: {where} has no static shape after ONNX shape inference although "
            "every input shape is known; the op may be custom or data-dependent (e.g. NonZero), "
            "which memplan cannot plan statically"
        )

    def of(self, name: str) -> tuple[int, tuple[int, ...], str]:
        """(size in bytes, shape, dtype name) of tensor ``name``."""
        shape = self.static(name)
        if shape is None:
            raise self._unknown_shape(name)
        _, elem_type = self.table[name]
        bits = element_bits(elem_type)
        dtype = element_type_name(elem_type) if elem_type else ""
        if bits is None and (self.dtype_bytes is None or dtype == "string"):
            kind = f"element type {dtype!r}" if elem_type else "an unknown element type"
            fix = "" if dtype == "string" else "; pass --dtype-bytes N to size it"
            raise OnnxImportError(
                f"{self.source}: {self._where(name)} has {kind}, which has no fixed size in "
                f"bytes{fix}"
            )
        elements = math.prod(shape)
        if self.dtype_bytes is not None:
            size = elements * self.dtype_bytes
        else:
            size = -(-elements * (bits or 8) // 8)
        if size <= 0:
            self.warnings.append(f"tensor {name!r} has no elements; counted as 1 byte")
            size = 1
        return size, shape, dtype
