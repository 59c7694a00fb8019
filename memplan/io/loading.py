"""Load a model file: an ONNX model or a memplan graph JSON file, told apart by content.

:func:`load_model` returns a :class:`LoadedModel` carrying the graph, where it came
from and a SHA-256 fingerprint (of the file, or of the serialized ``ModelProto``) that
plan files record so a plan is never applied to another model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.errors import InputFormatError, OnnxImportError
from memplan.ir import Graph, graph_from_json

if TYPE_CHECKING:
    from memplan.onnx.flags import Scalar
    from memplan.onnx.importer import ImportReport


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A graph and where it came from."""

    graph: Graph  # the scheduling IR
    path: Path | None  # the file it was read from; None for an in-memory ModelProto
    sha256: str  # hex SHA-256 of the file bytes, or of the serialized ModelProto
    report: ImportReport | None  # what the ONNX importer did; None for graph JSON


def _looks_like_json(head: bytes) -> bool:
    """Whether a file's first bytes start a JSON object (after whitespace / BOM)."""
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return stripped.startswith(b"{")


def load_model(
    model: str | Path | Any,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dims: Mapping[str, int] | None = None,
    dtype_bytes: int | None = None,
    aliases: bool = True,
    input_values: Mapping[str, Sequence[Scalar]] | None = None,
) -> LoadedModel:
    """Load an ONNX model (path or ``ModelProto``) or a memplan graph JSON file.

    Args:
        model: a path to an ``.onnx`` file or graph JSON file, or an ``onnx.ModelProto``.
        input_shapes: fixed shapes of graph inputs (ONNX only), in elements.
        dims: sizes of symbolic dimensions by name (ONNX only).
        dtype_bytes: bytes per element overriding the ONNX element types (ONNX only).
        aliases: treat view ops as aliases of their input (ONNX only).
        input_values: fixed values of small graph inputs, e.g. ``{"sr": (16000,)}`` (ONNX
            only); computations and ``If`` branches that depend on them fold.

    Raises:
        OnnxImportError: the file is missing, unreadable, or not a valid model.
        InputFormatError: a graph JSON file is malformed.
    """
    from memplan.onnx.importer import import_model

    if not isinstance(model, (str, Path)):
        result = import_model(
            model,
            input_shapes=input_shapes,
            dims=dims,
            input_values=input_values,
            dtype_bytes=dtype_bytes,
            aliases=aliases,
        )
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
        return LoadedModel(result.graph, None, digest, result.report)
    path = Path(model)
    if path.is_dir():
        raise OnnxImportError(f"{path}: is a directory; pass an .onnx or graph .json file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OnnxImportError(f"{path}: no such file; check the model path") from None
    except OSError as error:
        raise OnnxImportError(
            f"{path}: cannot read the model ({error.strerror}); check the path and permissions"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if _looks_like_json(data[:64]):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputFormatError(f"{path}: not UTF-8 text; not a memplan graph file") from None
        graph = graph_from_json(text, str(path))
        return LoadedModel(graph, path, digest, None)
    result = import_model(
        path,
        input_shapes=input_shapes,
        dims=dims,
        input_values=input_values,
        dtype_bytes=dtype_bytes,
        aliases=aliases,
        model_bytes=data,
    )
    return LoadedModel(result.graph, path, digest, result.report)
