"""Static shapes for ONNX import: overrides, shape inference, element sizes.

:func:`apply_shape_overrides` applies ``--input-shape`` and ``--dim`` (parsed by
:mod:`memplan.onnx.flags`) to the model; :func:`infer_static_shapes` runs ONNX shape
inference with data propagation and returns every tensor's (dims, element type), where
a dim is an ``int``, a ``str`` (a symbolic name) or ``None`` (unknown);
:class:`TensorSizer` turns a tensor's static shape and type into bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, OnnxImportError

if TYPE_CHECKING:
    import onnx

#: A dim after shape inference: a size, a symbolic name, or unknown.
Dim = int | str | None
#: Per tensor name: (dims or None if the rank is unknown, ONNX element type number).
ShapeTable = dict[str, tuple[tuple[Dim, ...] | None, int]]

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


def dims_of(type_proto: Any) -> tuple[tuple[Dim, ...] | None, int]:
    """(dims, element type) of a ``TypeProto`` (non-tensor types: (None, 0)).

    A dim is its size, its symbolic name, or None when it has neither.
    """
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


def _substitute_dims(value_info: Any, dims: Mapping[str, int]) -> None:
    if value_info.type.WhichOneof("value") != "tensor_type":
        return
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_param") and dim.dim_param in dims:
            dim.dim_value = dims[dim.dim_param]


def _has_fixed_dim(value_info: Any) -> bool:
    """Whether a recorded tensor shape has a dim of fixed size."""
    if value_info.type.WhichOneof("value") != "tensor_type":
        return False
    dims, _ = dims_of(value_info.type)
    return any(isinstance(d, int) and d > 0 for d in dims or ())


def _forget_fixed_records(graph: Any) -> dict[str, tuple[tuple[Dim, ...], int]]:
    """Drop the recorded shapes with a dim of fixed size of what standard ops produce;
    return them by tensor name.

    In a model with symbolic dims, a fixed size in a recorded shape is the exporter's
    sample run, and may depend on a symbolic dim all the same: torch.onnx's dynamo
    exporter records a GRU's output as [batch, 5, 32] and a 2-layer LSTM's as [1, 6, 64]
    for inputs [batch, seq, 16]. ONNX shape inference keeps a recorded shape over the
    one it infers, so with ``--dim seq=10`` they stayed at 5 and 6. In a static model a
    record can be stale too (an input shape edited by hand, a graph output declared
    [5, 5] for an Add of [4, 8]): it was planned at the recorded size. Shape inference
    recomputes them. Kept: shapes of symbolic dims only (the given sizes fill them in)
    and the outputs of custom ops, whose recorded shapes are all there is to know.
    """
    standard = {out for node in graph.node if node.domain in ("", "ai.onnx") for out in node.output}
    dropped: dict[str, tuple[tuple[Dim, ...], int]] = {}

    def stale(vi: Any) -> bool:
        if vi.name in standard and _has_fixed_dim(vi):
            dims, elem_type = dims_of(vi.type)
            dropped.setdefault(vi.name, (dims or (), elem_type))
            return True
        return False

    kept = [vi for vi in graph.value_info if not stale(vi)]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    for vi in graph.output:
        if stale(vi):
            vi.type.tensor_type.ClearField("shape")
    return dropped


def symbolic_dims(model: onnx.ModelProto) -> list[str]:
    """The symbolic dim names of the graph's inputs, outputs and recorded value infos,
    in the order they first appear: the names ``--dim`` can set."""
    graph = model.graph
    names: dict[str, None] = {}
    for vi in (*graph.input, *graph.output, *graph.value_info):
        dims, _ = dims_of(vi.type)
        names.update((d, None) for d in dims or () if isinstance(d, str))
    return list(names)


def named_inputs(
    model: onnx.ModelProto,
    input_names: Sequence[str],
    wanted: Collection[str],
    flag: str,
    source: str,
) -> dict[str, Any]:
    """The value infos of the graph inputs ``wanted`` names (for ``flag``), by name.

    Raises:
        ConfigError: a wanted name is not among ``input_names``; the message lists them.
    """
    inputs = {vi.name: vi for vi in model.graph.input if vi.name in input_names}
    for name in wanted:
        if name not in inputs:
            listed = ", ".join(repr(n) for n in input_names) or "none"
            raise ConfigError(
                f"{source}: {flag} names {name!r}, which is not a graph input; "
                f"the inputs are: {listed}"
            )
    return inputs


def _shape_text(dims: Sequence[Dim]) -> str:
    return ",".join("?" if d is None else str(d) for d in dims)


def _check_dims(model: onnx.ModelProto, dims: Mapping[str, int], source: str) -> None:
    """Every ``--dim`` name must be a symbolic dim of the model.

    Raises:
        ConfigError: naming the unknown names and listing the model's symbolic dims.
    """
    known = symbolic_dims(model)
    unknown = [name for name in dims if name not in known]
    if not unknown:
        return
    flag = f"{source}: --dim {', '.join(unknown)}"
    if not known:
        shapes = [dims_of(vi.type)[0] for vi in model.graph.input]
        nameless = any(d is None or None in d for d in shapes)
        hint = "; its unknown dims have no name: set them with --input-shape" if nameless else ""
        raise ConfigError(
            f"{flag}: the model has no symbolic dims, so --dim does not apply; leave it out{hint}"
        )
    plural = "s" if len(unknown) > 1 else ""
    listed = ", ".join(repr(name) for name in unknown)
    raise ConfigError(
        f"{flag}: the model has no symbolic dim{plural} {listed}; its symbolic dims are "
        f"{', '.join(known)}"
    )


def _check_input_shape(
    name: str, shape: Sequence[int], current: Sequence[Dim], dims: Mapping[str, int], source: str
) -> None:
    """``--input-shape name:shape`` must keep the rank and every fixed dim of ``current``
    (the input's dims in the model) and agree with ``--dim`` on its symbolic dims.

    A dim of 0 in the model counts as unknown: some exporters write 0 for a free dim.

    Raises:
        ConfigError: naming the input, the dim index and what is allowed.
    """
    given = f"{source}: --input-shape {name}:{','.join(map(str, shape))}"
    model_shape = f"[{_shape_text(current)}]"
    if len(current) != len(shape):
        raise ConfigError(
            f"{given} has rank {len(shape)}, but input {name!r} has rank {len(current)} "
            f"(shape {model_shape}); give {len(current)} dims"
        )
    for axis, (have, want) in enumerate(zip(current, shape, strict=True)):
        if isinstance(have, int) and have > 0 and have != want:
            raise ConfigError(
                f"{given}: dim {axis} of input {name!r} is fixed at {have} in the model "
                f"(shape {model_shape}); only symbolic or unknown dims can be set"
            )
        if isinstance(have, str) and have in dims and dims[have] != want:
            raise ConfigError(
                f"{given}: dim {axis} of input {name!r} is the symbolic dim {have!r}, which "
                f"--dim sets to {dims[have]}; give the same size in both "
                "or leave one out"
            )


def _check_shared_dims(
    name: str,
    shape: Sequence[int],
    current: Sequence[Dim],
    symbolic: dict[str, tuple[int, str]],
    input_shapes: Mapping[str, Sequence[int]],
    source: str,
) -> None:
    """Two ``--input-shape`` flags must give a symbolic dim the same size.

    A symbolic dim is one size wherever it appears (``ids[batch, seq]`` and
    ``mask[batch, seq]`` share both), so ``ids:1,8 mask:2,8`` describes no run of the
    model. ``symbolic`` collects the sizes given so far (dim name -> size, input).

    Raises:
        ConfigError: naming both flags, the dim and how to make them agree.
    """
    for have, want in zip(current, shape, strict=True):
        if not isinstance(have, str) or not have:
            continue
        seen = symbolic.setdefault(have, (want, name))
        if seen[0] != want:
            first = f"--input-shape {seen[1]}:{','.join(map(str, input_shapes[seen[1]]))}"
            raise ConfigError(
                f"{source}: --input-shape {name}:{','.join(map(str, shape))} gives the "
                f"symbolic dim {have!r} the size {want}, but {first} gives it {seen[0]}; "
                "a symbolic dim has one size wherever it appears: give the same size in "
                f"both (or set it once with --dim {have}=N)"
            )


def apply_shape_overrides(
    model: onnx.ModelProto,
    input_names: Sequence[str],
    input_shapes: Mapping[str, Sequence[int]],
    dims: Mapping[str, int],
    source: str,
) -> dict[str, tuple[tuple[Dim, ...], int]]:
    """Check ``--input-shape`` and ``--dim`` against the model, then apply them in place.

    ``--dim`` names must be symbolic dims of the model (:func:`symbolic_dims`); an input
    shape must name a graph input, keep its rank and its fixed dims, and agree with
    ``--dim`` where the input has a symbolic dim that is also given. The sizes given
    (by ``--dim``, or by an input shape for the symbolic dims of that input) fill in the
    recorded shapes; recorded shapes that may be stale are dropped
    (:func:`_forget_fixed_records`) for shape inference to recompute.

    Returns:
        The records to judge against shape inference (:func:`check_recorded_shapes`), as
        (dims, element type) by tensor name: with no size given, the dropped records (the
        model at its own sizes); with sizes given, the output and value_info records whose
        symbolic dims they set (``--dim total=50`` for an output [1, total, 32] that the
        inputs make [1, 101, 32]).

    Raises:
        ConfigError: one line naming the flag, the input or dim at fault and what is
            allowed (the inputs, the model's symbolic dims, the fixed size).
    """
    inputs = named_inputs(model, input_names, input_shapes, "--input-shape", source)
    _check_dims(model, dims, source)
    symbolic: dict[str, tuple[int, str]] = {}  # dim name -> (size, the input that set it)
    for name, shape in input_shapes.items():
        current, _ = dims_of(inputs[name].type)
        if current is not None:
            _check_input_shape(name, shape, current, dims, source)
            _check_shared_dims(name, shape, current, symbolic, input_shapes, source)
    graph = model.graph
    given = {**{dim: size for dim, (size, _) in symbolic.items()}, **dims}
    # Recorded shapes may contradict the new input shapes, or the model itself.
    sized: dict[str, tuple[tuple[Dim, ...], int]] = {}  # records whose dims were given
    for vi in (*graph.output, *graph.value_info):
        record, elem_type = dims_of(vi.type)
        if record is not None and any(isinstance(d, str) and d in given for d in record):
            filled = tuple(given.get(d, d) if isinstance(d, str) else d for d in record)
            sized.setdefault(vi.name, (filled, elem_type))
    recorded = _forget_fixed_records(graph)
    for vi in (*graph.input, *graph.output, *graph.value_info):
        _substitute_dims(vi, given)
    for name, shape in input_shapes.items():
        _set_dims(inputs[name], shape)
    return sized if given or input_shapes else recorded


def check_recorded_shapes(
    recorded: Mapping[str, tuple[tuple[Dim, ...], int]], table: ShapeTable, sized: bool = False
) -> str | None:
    """Judge the model's shape records against the shapes inferred from its inputs.

    ``recorded`` are the records :func:`apply_shape_overrides` returned, ``table`` the
    inferred shapes, ``sized`` whether --dim or --input-shape were given. A record that
    inference could not recompute (an input of unknown element type) goes back into
    ``table``, as it was used before; one that inference contradicts is stale, and the
    inferred shape is kept. A symbolic dim in a record matches any size.

    Returns:
        A warning naming the first contradicted record and how many more, or None.
    """
    stale = []
    for name, (dims, elem_type) in recorded.items():
        inferred = static_shape(table, name)
        if inferred is None:
            if all(isinstance(d, int) for d in dims):
                table[name] = (dims, table.get(name, (None, 0))[1] or elem_type)
            continue
        if len(inferred) != len(dims) or any(
            isinstance(d, int) and d != i for d, i in zip(dims, inferred, strict=False)
        ):
            stale.append((name, dims, inferred))
    if not stale:
        return None
    name, dims, inferred = stale[0]
    more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
    if sized:
        return (
            f"with the sizes given, the model records tensor {name!r} as "
            f"[{_shape_text(dims)}], but its inputs make it [{_shape_text(inferred)}]{more}; "
            "planned at the sizes the inputs give: check --dim (a dim that only outputs "
            "have follows from the inputs' dims)"
        )
    return (
        f"the model records tensor {name!r} as [{_shape_text(dims)}], but its inputs make it "
        f"[{_shape_text(inferred)}]{more}: stale shapes (an input shape edited by hand?) are "
        "planned at the sizes the inputs give; check the model's input shapes"
    )


def static_shape(table: ShapeTable, name: str) -> tuple[int, ...] | None:
    """The static shape of tensor ``name`` in ``table``, or None when not fully known."""
    dims, _ = table.get(name, (None, 0))
    if dims is None or not all(isinstance(d, int) for d in dims):
        return None
    return tuple(int(d) for d in dims)  # type: ignore[arg-type]


def static_shapes(table: ShapeTable) -> dict[str, tuple[int, ...]]:
    """The tensors of ``table`` whose shapes are static, with those shapes."""
    static: dict[str, tuple[int, ...]] = {}
    for name, (dims, _) in table.items():
        if dims is not None and all(isinstance(d, int) for d in dims):
            static[name] = dims  # type: ignore[assignment]
    return static


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
        dims, elem_type = dims_of(vi.type)
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


#: Standard ops whose output 0 has input 0's shape and type, but which ONNX shape
#: inference does not size (no inference function, and no function body it expands).
SAME_SHAPE_UNINFERRED_OPS = frozenset({"GroupNormalization", "MeanVarianceNormalization"})


def complete_known_gaps(nodes: Sequence[Any], table: ShapeTable, opset: int) -> list[str]:
    """Fill shapes ONNX inference leaves out.

    - the mask of Dropout (same shape as the data): ``T`` (the data type) before opset
      10 and ``bool`` from opset 10;
    - the statistics outputs of a training-mode BatchNormalization (torch.onnx.export
      with ``training=TrainingMode.TRAINING``): running mean and variance (opset 14 on),
      mean, variance and the saved ones (opsets 9 to 13), each of the scale's shape
      ``[C]`` and the mean's type. Inference sizes only the first output, so the import
      stopped, blaming the data for the size of a ``[C]`` vector;
    - the output of GroupNormalization (opsets 18 and 21: torch's dynamo exporter writes
      nn.GroupNorm as one at opset 21) and MeanVarianceNormalization, which ONNX has no
      shape inference for: the input's shape and type.

    Returns:
        The tensors filled in, for the caller to record so that inference carries the
        shapes on to the ops that read them.
    """
    import onnx

    filled: list[str] = []
    for node in nodes:
        if node.op_type in SAME_SHAPE_UNINFERRED_OPS and node.input and node.output:
            out = node.output[0]
            data = table.get(node.input[0], (None, 0))
            if out and table.get(out, (None, 0))[0] is None and data[0] is not None:
                table[out] = data
                filled.append(out)
            continue
        if node.op_type == "BatchNormalization" and len(node.input) >= 4:
            stats_dims, _ = table.get(node.input[1], (None, 0))
            _, stats_type = table.get(node.input[3], (None, 0))
            for stat in node.output[1:]:
                if stat and table.get(stat, (None, 0))[0] is None and stats_dims is not None:
                    table[stat] = (stats_dims, stats_type)
                    filled.append(stat)
            continue
        if node.op_type != "Dropout" or len(node.output) < 2 or not node.output[1]:
            continue
        mask = node.output[1]
        dims, _ = table.get(mask, (None, 0))
        data_dims, data_type = table.get(node.input[0], (None, 0)) if node.input else (None, 0)
        if dims is None and data_dims is not None:
            elem = onnx.TensorProto.BOOL if opset >= 10 else data_type
            table[mask] = (data_dims, elem)
            filled.append(mask)
    return filled


class TensorSizer:
    """Static shape, element type and byte size of every tensor, with clear errors."""

    def __init__(
        self,
        table: ShapeTable,
        dtype_bytes: int | None,
        source: str,
        describe: Callable[[str], str],
        explain_unknown: Callable[[str], OnnxImportError],
    ) -> None:
        """Size tensors from ``table``.

        Args:
            table: every tensor's (dims, element type) after shape inference.
            dtype_bytes: bytes per element for every tensor, or None for the ONNX types.
            source: the model's name, for messages.
            describe: names a tensor and the node producing it, for messages.
            explain_unknown: the error for a tensor whose shape is not static.
        """
        self.table = table
        self.dtype_bytes = dtype_bytes
        self.source = source
        self.describe = describe
        self.explain_unknown = explain_unknown
        self.warnings: list[str] = []
        self._static = static_shapes(table)

    def static(self, name: str) -> tuple[int, ...] | None:
        """The static shape, or None when not fully known."""
        return self._static.get(name)

    def of(self, name: str) -> tuple[int, tuple[int, ...], str]:
        """(size in bytes, shape, dtype name) of tensor ``name``."""
        shape = self.static(name)
        if shape is None:
            raise self.explain_unknown(name)
        _, elem_type = self.table[name]
        bits = element_bits(elem_type)
        dtype = element_type_name(elem_type) if elem_type else ""
        if bits is None and (self.dtype_bytes is None or dtype == "string"):
            kind = f"element type {dtype!r}" if elem_type else "an unknown element type"
            fix = "" if dtype == "string" else "; pass --dtype-bytes N to size it"
            raise OnnxImportError(
                f"{self.source}: {self.describe(name)} has {kind}, which has no fixed size in "
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
