"""Import an ONNX model into the scheduling IR (PROBLEM.md section 1).

What the importer does, in order:

1. reads the file (or takes a ``ModelProto``), checks it is an ONNX model, checks that
   external data files exist and loads the small integer ones (shape tensors);
2. applies ``--input-shape`` / ``--dim`` and runs ONNX shape inference with data
   propagation; every tensor that remains must have a static shape;
3. **folds constants**: initializers, ``Constant`` nodes and every node all of whose
   inputs are weights (``ConstantOfShape`` of a constant shape, ``Unsqueeze`` of a
   weight, ...) plus ``Shape`` / ``Size`` (shapes are static) produce *weights*; those
   nodes leave the op list. Random generators are never folded;
4. **aliases** view ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, inference-mode
   Dropout): the output is the input's buffer, the op is removed and its consumers
   read the input. A view whose output is a graph output marks its buffer as an
   output; a view of a graph input that is a graph output is kept as a copy;
5. builds the :class:`~memplan.ir.Graph` with sizes from ONNX element types (or
   ``dtype_bytes``) and a MAC estimate per op (:mod:`memplan.onnx.macs`).

Control flow (``If``, ``Loop``, ``Scan``) is rejected with an error naming the node:
their cost and memory depend on data, which a static plan cannot know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.errors import OnnxImportError
from memplan.ir import Graph, GraphBuilder, TensorId, TensorKind
from memplan.onnx.macs import estimate_macs
from memplan.onnx.shapes import (
    ShapeTable,
    TensorSizer,
    apply_shape_overrides,
    infer_static_shapes,
    parse_dims,
    parse_input_shapes,
)

if TYPE_CHECKING:
    import onnx

__all__ = ["ImportReport", "ImportResult", "import_model", "parse_dims", "parse_input_shapes"]

#: View ops turned into aliases of their first input.
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})
#: Ops with sub-graphs, which a static plan cannot schedule.
CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})
#: Ops whose outputs are random: never folded into weights.
RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
     "Bernoulli"}
)  # fmt: skip
#: Ops whose output depends only on static shapes: folded into weights.
SHAPE_OPS = frozenset({"Shape", "Size"})


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What the importer did to the model, for ``memplan inspect`` and logs."""

    source: str  # file path or model name
    ir_version: int  # ONNX IR version of the model
    opset: int  # default-domain opset version (0 if absent)
    onnx_nodes: int  # number of nodes in the ONNX graph
    aliases: tuple[tuple[str, str], ...]  # (alias tensor name, buffer tensor name) pairs
    kept_views: tuple[str, ...]  # view nodes kept as ops (aliasing off or not possible)
    folded_nodes: int  # weight-producing nodes removed from the op list
    folded_by_type: tuple[tuple[str, int], ...]  # (op type, count) of the folded nodes
    weight_tensors: int  # weight tensors the graph's ops read
    initializers_as_inputs: int  # initializers also listed as graph inputs (old models)
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # final shape of each graph input
    dtype_bytes: int | None  # element size override in bytes, None for ONNX types
    warnings: tuple[str, ...]  # things worth knowing that did not stop the import


@dataclass(frozen=True, slots=True)
class ImportResult:
    """An imported graph and the report of how it was made."""

    graph: Graph  # the scheduling IR
    report: ImportReport  # aliases, folded constants, warnings


# ------------------------------------------------------------------------ reading
def _read_model(
    model_or_path: Any, model_bytes: bytes | None
) -> tuple[onnx.ModelProto, str, Path | None]:
    """Return (a private copy of the model, source name, base directory)."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(model_or_path, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model_or_path)
        return copy, model_or_path.graph.name or "<ModelProto>", None
    if not isinstance(model_or_path, (str, Path)):
        raise OnnxImportError(
            f"cannot import {type(model_or_path).__name__}; pass a path or an onnx.ModelProto"
        )
    path = Path(model_or_path)
    source = str(path)
    if model_bytes is None:
        try:
            model_bytes = path.read_bytes()
        except FileNotFoundError:
            raise OnnxImportError(f"{source}: no such file; check the model path") from None
        except IsADirectoryError:
            raise OnnxImportError(f"{source}: is a directory; pass an .onnx file") from None
        except OSError as error:
            raise OnnxImportError(
                f"{source}: cannot read the model ({error.strerror}); check permissions"
            ) from None
    if not model_bytes:
        raise OnnxImportError(f"{source}: the file is empty; not an ONNX model")
    try:
        model = onnx.load_model_from_string(model_bytes)
    except DecodeError:
        raise OnnxImportError(
            f"{source}: not a valid ONNX protobuf (truncated or corrupt file, or not an ONNX "
            "model); re-export or re-download it"
        ) from None
    except Exception as error:
        raise OnnxImportError(f"{source}: cannot parse as ONNX ({error})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise OnnxImportError(
            f"{source}: not an ONNX model (no IR version or an empty graph); "
            "pass an .onnx file exported by a framework"
        )
    return model, source, path.parent


def _prepare_external_data(model: onnx.ModelProto, base_dir: Path | None, source: str) -> None:
    """Check external data files exist and load small integer tensors (shape inputs)."""
    import onnx
    from onnx.external_data_helper import (
        ExternalDataInfo,
        load_external_data_for_tensor,
        uses_external_data,
    )

    small_int = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        if base_dir is None:
            continue  # an in-memory model: sizes come from dims; values are not needed
        location = base_dir / info.location
        if not location.is_file():
            raise OnnxImportError(
                f"{source}: initializer {tensor.name!r} keeps its data in {info.location!r}, "
                f"which is not in {base_dir}; put the data file next to the model"
            )
        if tensor.data_type in small_int and math.prod(tensor.dims) <= 4096:
            try:
                load_external_data_for_tensor(tensor, str(base_dir))
            except (OSError, ValueError) as error:
                raise OnnxImportError(
                    f"{source}: cannot read external data of {tensor.name!r} from "
                    f"{info.location!r}: {error}"
                ) from None
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]


def _node_names(nodes: Sequence[Any]) -> list[str]:
    """Unique node names: the ONNX name, or OpType_index when missing or repeated."""
    names: list[str] = []
    seen: set[str] = set()
    for index, node in enumerate(nodes):
        base = node.name or f"{node.op_type}_{index}"
        name = base
        suffix = 1
        while name in seen:
            name = f"{base}_{suffix}"
            suffix += 1
        seen.add(name)
        names.append(name)
    return names


def _topological(
    nodes: Sequence[Any], names: Sequence[str], available: set[str], source: str
) -> list[int]:
    """Node indices in a topological order (the file's order when it already is one)."""
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for out in node.output:
            if out:
                if out in producer or out in available:
                    first = names[producer[out]] if out in producer else "a graph input"
                    raise OnnxImportError(
                        f"{source}: tensor {out!r} is produced by both {first!r} and "
                        f"{names[index]!r}; an ONNX tensor has one producer"
                    )
                producer[out] = index
    deps: list[set[int]] = []
    for index, node in enumerate(nodes):
        node_deps = set()
        for name in node.input:
            if not name or name in available:
                continue
            if name not in producer:
                raise OnnxImportError(
                    f"{source}: node {names[index]!r} ({node.op_type}) reads {name!r}, which "
                    "no node produces and is neither a graph input nor an initializer "
                    "(a truncated or corrupt model?)"
                )
            node_deps.add(producer[name])
        deps.append(node_deps)
    if all(d < i for i, ds in enumerate(deps) for d in ds):
        return list(range(len(nodes)))
    import networkx as nx

    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(nodes)))
    dag.add_edges_from((d, i) for i, ds in enumerate(deps) for d in ds)
    try:
        return list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(dag)
        path = " -> ".join(names[a] for a, _ in cycle) + f" -> {names[cycle[0][0]]}"
        raise OnnxImportError(
            f"{source}: the nodes form a cycle ({path}); an ONNX graph must be acyclic"
        ) from None


def _attributes(node: Any) -> dict[str, Any]:
    """The node's int / ints / float attributes as Python values (for MAC estimates)."""
    import onnx

    values: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS,
                         onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS):  # fmt: skip
            values[attr.name] = onnx.helper.get_attribute_value(attr)
    return values


def _is_false_constant(name: str, initializers: Mapping[str, Any]) -> bool:
    """Whether ``name`` is an initializer holding a false boolean (Dropout training_mode)."""
    from onnx import numpy_helper

    tensor = initializers.get(name)
    if tensor is None:
        return False
    try:
        return not bool(numpy_helper.to_array(tensor).any())
    except (ValueError, TypeError):
        return False


# ------------------------------------------------------------------------ import
def import_model(
    model_or_path: str | Path | onnx.ModelProto,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dims: Mapping[str, int] | None = None,
    dtype_bytes: int | None = None,
    aliases: bool = True,
    model_bytes: bytes | None = None,
) -> ImportResult:
    """Import an ONNX model into a :class:`~memplan.ir.Graph`.

    Args:
        model_or_path: an ``.onnx`` file path or an ``onnx.ModelProto`` (not modified).
        input_shapes: fixed shapes (in elements) of graph inputs by name.
        dims: sizes of symbolic dimensions by name (e.g. ``{"batch": 1}``).
        dtype_bytes: bytes per element for every tensor, overriding the ONNX types.
        aliases: treat view ops as aliases of their input (see the module docstring).
        model_bytes: the file's bytes when the caller has already read them.

    Returns:
        The graph and an :class:`ImportReport`.

    Raises:
        OnnxImportError: unreadable, corrupt or unsupported model, or unknown shapes.
        ConfigError: ``input_shapes`` names no input or has the wrong rank.
    """
    from memplan.errors import ConfigError

    if dtype_bytes is not None and dtype_bytes < 1:
        raise ConfigError(f"dtype_bytes must be a positive number of bytes, got {dtype_bytes}")
    model, source, base_dir = _read_model(model_or_path, model_bytes)
    _prepare_external_data(model, base_dir, source)
    graph = model.graph
    nodes = list(graph.node)
    names = _node_names(nodes)
    for node, name in zip(nodes, names, strict=True):
        if node.op_type in CONTROL_FLOW_OPS and node.domain in ("", "ai.onnx"):
            raise OnnxImportError(
                f"{source}: node {name!r} is a {node.op_type}; control flow is not supported "
                "(its memory depends on data). Unroll it or export the model without it"
            )
    initializers = {t.name: t for t in graph.initializer}
    init_as_inputs = sum(1 for vi in graph.input if vi.name in initializers)
    input_names = [vi.name for vi in graph.input if vi.name not in initializers]
    available = set(initializers) | {vi.name for vi in graph.input}
    order = _topological(nodes, names, available, source)
    if order != list(range(len(nodes))):  # shape inference needs a topological order
        ordered = [type(nodes[i])() for i in order]
        for copy, i in zip(ordered, order, strict=True):
            copy.CopyFrom(nodes[i])
        names = [names[i] for i in order]
        order = list(range(len(nodes)))
        del graph.node[:]
        graph.node.extend(ordered)
        nodes = list(graph.node)
    warnings = apply_shape_overrides(
        model, input_names, dict(input_shapes or {}), dict(dims or {}), source
    )
    table = infer_static_shapes(model, source)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    _complete_known_gaps(nodes, table, opset)

    # ---- constant folding: which tensors are weights, which nodes remain ops
    weights: set[str] = set(initializers)
    folded: dict[str, int] = {}
    kept: list[int] = []
    for index in order:
        node = nodes[index]
        ins = [n for n in node.input if n]
        foldable = (
            node.op_type == "Constant"
            or node.op_type in SHAPE_OPS
            or (bool(ins) and all(n in weights for n in ins) and node.op_type not in RANDOM_OPS)
        )
        if foldable:
            weights.update(n for n in node.output if n)
            folded[node.op_type] = folded.get(node.op_type, 0) + 1
        else:
            kept.append(index)

    # ---- aliasing of view ops
    graph_outputs = [vi.name for vi in graph.output]
    output_set = set(graph_outputs)
    consumed: set[str] = {n for i in kept for n in nodes[i].input if n}
    buffer_of: dict[str, str] = {}
    alias_pairs: list[tuple[str, str]] = []
    kept_views: list[str] = []
    extra_outputs: set[str] = set()

    def resolve(name: str) -> str:
        while name in buffer_of:
            name = buffer_of[name]
        return name

    ops: list[int] = []
    for index in kept:
        node = nodes[index]
        if node.op_type not in VIEW_OPS or node.domain not in ("", "ai.onnx"):
            ops.append(index)
            continue
        outs = [n for n in node.output if n]
        reason = _alias_blocker(node, outs, consumed, output_set, initializers)
        buffer = resolve(node.input[0]) if node.input and node.input[0] else ""
        if not aliases:
            reason = reason or "aliasing is off"
        if (
            not reason
            and node.output[0] in output_set
            and (buffer in weights or buffer in input_names)
        ):
            reason = "its output is a graph output and its input is not an activation"
        if reason:
            ops.append(index)
            if aliases:
                kept_views.append(f"{names[index]} ({node.op_type}): {reason}")
            else:
                kept_views.append(f"{names[index]} ({node.op_type})")
            continue
        buffer_of[node.output[0]] = buffer
        alias_pairs.append((node.output[0], buffer))
        if node.output[0] in output_set:
            extra_outputs.add(buffer)
        for dropped in outs[1:]:
            warnings.append(
                f"node {names[index]!r}: output {dropped!r} is read by nobody and was "
                "dropped with the aliased op"
            )
    if buffer_of:
        for name, buffer in list(buffer_of.items()):
            buffer_of[name] = resolve(buffer)
        alias_pairs = [(a, resolve(b)) for a, b in alias_pairs]

    # ---- build the graph
    builder = GraphBuilder(graph.name or Path(source).stem)
    sizes = TensorSizer(table, dtype_bytes, source, input_names, nodes, names)
    out_buffers = {resolve(n) for n in graph_outputs} | extra_outputs
    used_inputs = {resolve(n) for i in ops for n in nodes[i].input if n}
    final_inputs: list[tuple[str, tuple[int, ...]]] = []
    for name in input_names:
        if name not in used_inputs:
            warnings.append(f"graph input {name!r} is read by no op; it is left out")
            continue
        size, shape, dtype = sizes.of(name)
        builder.tensor(name, size, TensorKind.INPUT, shape=shape, dtype=dtype)
        final_inputs.append((name, shape))
    weight_count = 0
    for index in ops:
        node = nodes[index]
        in_ids: list[TensorId] = []
        for raw in node.input:
            if not raw:
                continue
            name = resolve(raw)
            if not builder.has_tensor(name):
                if name not in weights:  # pragma: no cover - _topological checked this
                    raise OnnxImportError(f"{source}: tensor {name!r} has no producer")
                size, shape, dtype = sizes.of(name)
                builder.tensor(name, size, TensorKind.WEIGHT, shape=shape, dtype=dtype)
                weight_count += 1
            in_ids.append(builder.tensor_id(name))
        out_ids: list[TensorId] = []
        for name in node.output:
            if not name:
                continue
            size, shape, dtype = sizes.of(name)
            out_ids.append(
                builder.tensor(name, size, is_output=name in out_buffers, shape=shape, dtype=dtype)
            )
        in_shapes = [sizes.static(n) if n else None for n in node.input]
        out_shapes = [sizes.static(n) if n else None for n in node.output]
        macs = estimate_macs(node.op_type, in_shapes, out_shapes, _attributes(node))
        builder.op(names[index], node.op_type, in_ids, out_ids, macs)
    for name in graph_outputs:
        buffer = resolve(name)
        if not builder.has_tensor(buffer) or buffer in weights or buffer in input_names:
            what = "a weight" if buffer in weights else "a graph input or unused"
            warnings.append(f"graph output {name!r} is {what}; nothing to plan for it")
    if not ops:
        raise OnnxImportError(
            f"{source}: no op is left after folding constants (the model computes only "
            "constants); nothing to plan"
        )
    try:
        result_graph = builder.build()
    except Exception as error:
        raise OnnxImportError(f"{source}: {error}") from error
    report = ImportReport(
        source=source,
        ir_version=model.ir_version,
        opset=opset,
        onnx_nodes=len(nodes),
        aliases=tuple(alias_pairs),
        kept_views=tuple(kept_views),
        folded_nodes=sum(folded.values()),
        folded_by_type=tuple(sorted(folded.items(), key=lambda kv: (-kv[1], kv[0]))),
        weight_tensors=weight_count,
        initializers_as_inputs=init_as_inputs,
        input_shapes=tuple(final_inputs),
        dtype_bytes=dtype_bytes,
        warnings=tuple(warnings + sizes.warnings),
    )
    return ImportResult(result_graph, report)


def _complete_known_gaps(nodes: Sequence[Any], table: ShapeTable, opset: int) -> None:
    """Fill shapes ONNX inference leaves out: the mask of Dropout (same shape as the data).

    Dropout's mask is ``T`` (the data type) before opset 10 and ``bool`` from opset 10.
    """
    import onnx

    for node in nodes:
        if node.op_type != "Dropout" or len(node.output) < 2 or not node.output[1]:
            continue
        mask = node.output[1]
        dims, _ = table.get(mask, (None, 0))
        data_dims, data_type = table.get(node.input[0], (None, 0)) if node.input else (None, 0)
        if dims is None and data_dims is not None:
            elem = onnx.TensorProto.BOOL if opset >= 10 else data_type
            table[mask] = (data_dims, elem)


def _alias_blocker(
    node: Any,
    outs: Sequence[str],
    consumed: set[str],
    output_set: set[str],
    initializers: Mapping[str, Any],
) -> str:
    """Why a view node cannot become an alias ("" if it can)."""
    if not node.input or not node.input[0] or not node.output or not node.output[0]:
        return "it has no data input or output"
    if node.op_type == "Dropout":
        if (
            len(node.input) > 2
            and node.input[2]
            and not _is_false_constant(node.input[2], initializers)
        ):
            return "training_mode is not a constant false"
        for extra in outs[1:]:
            if extra in consumed or extra in output_set:
                return f"its mask {extra!r} is read"
    elif len(outs) > 1:
        return "it has several outputs"
    return ""
