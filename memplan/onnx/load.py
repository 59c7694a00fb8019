"""Read an ONNX model: the file, its external data, unique node names, a topological order.

Every check here names the file and the node or tensor at fault: a missing, empty,
corrupt or truncated file, external data that is not beside the model, an initializer
defined twice, a tensor read (or a graph output) that nothing makes, two producers of
one tensor, a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.errors import OnnxImportError

if TYPE_CHECKING:
    import onnx


def read_model_bytes(path: Path) -> bytes:
    """The bytes of the model file ``path``; a missing, unreadable file or a directory is
    an :class:`OnnxImportError` that names it and says what to fix."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise OnnxImportError(f"{path}: no such file; check the model path") from None
    except IsADirectoryError:
        raise OnnxImportError(
            f"{path}: is a directory; pass an .onnx or graph .json file"
        ) from None
    except OSError as error:
        raise OnnxImportError(
            f"{path}: cannot read the model ({error.strerror}); check the path and permissions"
        ) from None


def read_model(
    model_or_path: Any, model_bytes: bytes | None
) -> tuple[onnx.ModelProto, str, Path | None]:
    """Return (a private copy of the model, source name, base directory)."""
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(model_or_path, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model_or_path)
        source = model_or_path.graph.name or "<ModelProto>"
        _require_ops(copy, source)
        return copy, source, None
    if not isinstance(model_or_path, (str, Path)):
        raise OnnxImportError(
            f"cannot import {type(model_or_path).__name__}; pass a path or an onnx.ModelProto"
        )
    path = Path(model_or_path)
    source = str(path)
    if model_bytes is None:
        model_bytes = read_model_bytes(path)
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
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise OnnxImportError(
            f"{source}: not an ONNX model (no IR version or no graph); "
            "pass an .onnx file exported by a framework"
        )
    _require_ops(model, source)
    return model, source, path.parent


def _require_ops(model: onnx.ModelProto, source: str) -> None:
    """Refuse a valid model whose graph has no nodes: there is nothing to plan."""
    if not model.graph.node:
        raise OnnxImportError(
            f"{source}: graph {model.graph.name!r} has no ops (its outputs are graph inputs "
            "or initializers), so there is nothing to plan; pass a model that computes "
            "something"
        )


def _external_location(tensor: Any, base_dir: Path, source: str) -> tuple[Path, int, int]:
    """(data file, offset, length) of an external initializer, checked without reading it.

    The location must be a relative path that stays inside the model's folder (no
    absolute path, no ``..`` escape, no symlink out), the file must exist, and it must
    hold ``offset + length`` bytes (``length`` defaults to the tensor's byte size).
    """
    from onnx.external_data_helper import ExternalDataInfo

    from memplan.onnx.shapes import element_bits, element_type_name

    name = tensor.name
    try:
        info = ExternalDataInfo(tensor)
        offset = int(info.offset or 0)
        length_field = info.length
    except (ValueError, TypeError) as error:
        raise OnnxImportError(
            f"{source}: initializer {name!r} has malformed external data fields ({error}); "
            "re-save the model with onnx.save_model(..., save_as_external_data=True)"
        ) from None
    where = info.location
    fix = "keep the data file in the model's folder and give its location relative to it"
    if not where:
        raise OnnxImportError(
            f"{source}: initializer {name!r} uses external data but names no location; {fix}"
        )
    if Path(where).is_absolute() or where.startswith(("/", "\\")):
        raise OnnxImportError(
            f"{source}: initializer {name!r} keeps its data at the absolute path {where!r}; {fix}"
        )
    root = base_dir.resolve()
    location = (base_dir / where).resolve()
    if not location.is_relative_to(root):
        raise OnnxImportError(
            f"{source}: initializer {name!r} keeps its data in {where!r}, outside the "
            f"model's folder {base_dir}; {fix}"
        )
    if not location.is_file():
        raise OnnxImportError(
            f"{source}: initializer {name!r} keeps its data in {where!r}, which is not "
            f"in {base_dir}; put the data file next to the model"
        )
    bits = element_bits(tensor.data_type)
    needed = math.ceil(math.prod(tensor.dims) * bits / 8) if bits is not None else 0
    length = int(length_field) if length_field is not None else needed
    if offset < 0 or length < 0:
        raise OnnxImportError(
            f"{source}: initializer {name!r} has a negative external data offset or "
            "length; re-save the model"
        )
    if length_field is not None and bits is not None and length < needed:
        raise OnnxImportError(
            f"{source}: initializer {name!r} ({element_type_name(tensor.data_type)}, "
            f"shape {list(tensor.dims)}) needs {needed} bytes but its external data "
            f"length is {length}; re-save the model"
        )
    size = location.stat().st_size
    if offset + length > size:
        raise OnnxImportError(
            f"{source}: initializer {name!r} needs bytes {offset}..{offset + length} of "
            f"{where!r}, but the file has only {size} bytes (truncated?); copy the "
            "complete data file next to the model"
        )
    return location, offset, length


def prepare_external_data(model: onnx.ModelProto, base_dir: Path | None, source: str) -> None:
    """Check every external data location and load small tensors (shape inputs, scales).

    Each external initializer must name a relative file inside the model's folder that
    holds all its bytes (checked from the file size, without reading large data); the
    small ones (at most 4,096 elements, any numeric type) are read, since shapes may
    depend on them: a Reshape's shape, a Resize's float scales.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    for tensor in model.graph.initializer:
        if not uses_external_data(tensor):
            continue
        if base_dir is None:
            continue  # an in-memory model: sizes come from dims; values are not needed
        location, offset, length = _external_location(tensor, base_dir, source)
        if tensor.data_type != onnx.TensorProto.STRING and math.prod(tensor.dims) <= 4096:
            try:
                with location.open("rb") as data_file:
                    data_file.seek(offset)
                    raw = data_file.read(length)
            except OSError as error:
                raise OnnxImportError(
                    f"{source}: cannot read external data of {tensor.name!r} from "
                    f"{location.name!r} ({error.strerror}); check the file's permissions"
                ) from None
            tensor.raw_data = raw
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]


def _check_unique_initializers(graph: onnx.GraphProto, source: str) -> None:
    """Refuse an initializer name defined twice (dense or sparse).

    ONNX requires unique names; with two, which one a reader gets is up to the runtime,
    and shape inference either keeps one silently (same shape) or fails without naming
    the tensor (another shape). Either way the model was corrupted or badly merged.
    """
    from memplan.onnx.shapes import element_type_name

    def described(data_type: int, dims: Sequence[int]) -> str:
        return f"{element_type_name(data_type)} {'x'.join(map(str, dims)) or 'scalar'}"

    entries = [(t.name, t.data_type, t.dims) for t in graph.initializer]
    entries += [(s.values.name, s.values.data_type, s.dims) for s in graph.sparse_initializer]
    first: dict[str, str] = {}
    for name, data_type, dims in entries:
        what = described(data_type, dims)
        if name in first:
            raise OnnxImportError(
                f"{source}: initializer {name!r} is defined twice in graph {graph.name!r} "
                f"({first[name]}, then {what}); initializer names must be unique (a corrupt "
                "or badly merged model): remove the duplicate, or rename one and the nodes "
                "that read it"
            )
        first[name] = what


def check_graph_inputs(graph: onnx.GraphProto, source: str) -> None:
    """Check graph input and initializer names are unique and that they agree.

    Raises:
        OnnxImportError: an initializer defined twice, a graph input listed twice, or an
            initializer whose shape or element type differs from the graph input of its
            name (old models list initializers as inputs).
    """
    from memplan.onnx.shapes import dims_of, element_type_name

    _check_unique_initializers(graph, source)
    seen: set[str] = set()
    for vi in graph.input:
        if vi.name in seen:
            raise OnnxImportError(
                f"{source}: graph input {vi.name!r} is listed twice in graph "
                f"{graph.name!r}; remove the duplicate or give each input its own name"
            )
        seen.add(vi.name)
    declared = {vi.name: dims_of(vi.type) for vi in graph.input}
    for tensor in graph.initializer:
        if tensor.name not in declared:
            continue
        dims, elem_type = declared[tensor.name]
        shape = tuple(int(d) for d in tensor.dims)
        differs = dims is not None and (
            len(dims) != len(shape)
            or any(isinstance(d, int) and d != s for d, s in zip(dims, shape, strict=True))
        )
        if differs or (elem_type and elem_type != tensor.data_type):
            listed = "?" if dims is None else ",".join(str(d) for d in dims) or "scalar"
            raise OnnxImportError(
                f"{source}: initializer {tensor.name!r} "
                f"({element_type_name(tensor.data_type)}, shape "
                f"{','.join(map(str, shape)) or 'scalar'}) disagrees with the graph input "
                f"of that name ({element_type_name(elem_type)}, shape {listed}); make the "
                "input's declared type and shape match the initializer, or drop it from "
                "the graph inputs"
            )


def node_names(nodes: Sequence[Any]) -> list[str]:
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


def _second_producer(
    out: str,
    index: int,
    first: int | None,
    nodes: Sequence[Any],
    names: Sequence[str],
    initializers: Collection[str],
    source: str,
) -> OnnxImportError:
    """The error for tensor ``out`` made by node ``index`` when ``first`` (a node, or
    None for a graph input or initializer) already makes it."""
    node = names[index]
    if first == index:
        return OnnxImportError(
            f"{source}: node {node!r} ({nodes[index].op_type}) lists output {out!r} twice; "
            "give each output its own name"
        )
    if first is None:
        what = "an initializer" if out in initializers else "a graph input"
        return OnnxImportError(
            f"{source}: tensor {out!r} is produced by node {node!r} but is also {what}; an "
            "ONNX tensor has one producer: rename the node's output and its readers"
        )
    return OnnxImportError(
        f"{source}: tensor {out!r} is produced by both {names[first]!r} and {node!r}; an "
        "ONNX tensor has one producer"
    )


def topological_order(
    nodes: Sequence[Any],
    names: Sequence[str],
    available: set[str],
    source: str,
    initializers: Collection[str] = (),
) -> list[int]:
    """Node indices in a topological order (the file's order when it already is one).

    ``available`` are the graph inputs and initializers (``initializers`` names the
    latter, for messages).
    """
    producer: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for out in node.output:
            if out:
                if out in producer or out in available:
                    raise _second_producer(
                        out, index, producer.get(out), nodes, names, initializers, source
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


def check_graph_outputs(graph: onnx.GraphProto, source: str) -> None:
    """Every graph output must be made by a node, or be a graph input or initializer.

    An output naming nothing (renamed or truncated model) would leave the model's real
    result unmarked: the plan would drop it after its last read.

    Raises:
        OnnxImportError: naming the first such output.
    """
    made = {out for node in graph.node for out in node.output if out}
    made |= {t.name for t in graph.initializer} | {vi.name for vi in graph.input}
    made |= {sparse.values.name for sparse in graph.sparse_initializer}
    for vi in graph.output:
        if vi.name not in made:
            raise OnnxImportError(
                f"{source}: graph output {vi.name!r} is a tensor that no node produces and "
                "is neither a graph input nor an initializer (a truncated or corrupt model, "
                "or an output renamed after export?); make the output name the tensor "
                "that holds the model's result"
            )


def sort_nodes(graph: onnx.GraphProto, source: str) -> list[str]:
    """Put ``graph.node`` in a topological order (in place) and return the node names.

    The names are unique (see :func:`node_names`) and listed in the new order; a graph
    already in a topological order (nearly every exported model) is left as it is.
    Every tensor read and every graph output must be made by a node, or be a graph
    input or initializer (:func:`check_graph_outputs`).
    """
    nodes = list(graph.node)
    names = node_names(nodes)
    initializers = {t.name for t in graph.initializer}
    available = initializers | {vi.name for vi in graph.input}
    order = topological_order(nodes, names, available, source, initializers)
    check_graph_outputs(graph, source)
    if order == list(range(len(nodes))):
        return names
    ordered = [type(nodes[i])() for i in order]
    for copy, i in zip(ordered, order, strict=True):
        copy.CopyFrom(nodes[i])
    del graph.node[:]
    graph.node.extend(ordered)
    return [names[i] for i in order]
