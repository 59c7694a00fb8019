"""Read an ONNX model: the file, its external data, unique node names, a topological order.

Every check here names the file and the node or tensor at fault: a missing, empty,
corrupt or truncated file, external data that is not beside the model, a tensor read
but never produced, two producers of one tensor, a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
        return copy, model_or_path.graph.name or "<ModelProto>", None
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
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise OnnxImportError(
            f"{source}: not an ONNX model (no IR version or an empty graph); "
            "pass an .onnx file exported by a framework"
        )
    return model, source, path.parent


def prepare_external_data(model: onnx.ModelProto, base_dir: Path | None, source: str) -> None:
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


def topological_order(
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


def sort_nodes(graph: onnx.GraphProto, source: str) -> list[str]:
    """Put ``graph.node`` in a topological order (in place) and return the node names.

    The names are unique (see :func:`node_names`) and listed in the new order; a graph
    already in a topological order (nearly every exported model) is left as it is.
    """
    nodes = list(graph.node)
    names = node_names(nodes)
    available = {t.name for t in graph.initializer} | {vi.name for vi in graph.input}
    order = topological_order(nodes, names, available, source)
    if order == list(range(len(nodes))):
        return names
    ordered = [type(nodes[i])() for i in order]
    for copy, i in zip(ordered, order, strict=True):
        copy.CopyFrom(nodes[i])
    del graph.node[:]
    graph.node.extend(ordered)
    return [names[i] for i in order]
