"""The graph's versioned JSON form (``memplan.graph``): writing it, reading it back with
every field checked (a missing or mistyped one is named with its op or tensor), and the
graph's fingerprint (:func:`graph_sha256`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from memplan.errors import GraphError, InputFormatError
from memplan.jsonfields import describe, parse_json

if TYPE_CHECKING:
    pass
from memplan.ir.builder import GraphBuilder
from memplan.ir.graph import Graph, TensorKind, is_whole

#: Version of the graph JSON form; bump when the layout changes.
GRAPH_JSON_VERSION = 1


# --------------------------------------------------------------------- JSON form
def graph_to_dict(graph: Graph) -> dict[str, Any]:
    """Versioned JSON-ready dictionary of a graph."""
    return {
        "format": "memplan.graph",
        "version": GRAPH_JSON_VERSION,
        "name": graph.name,
        "tensors": [
            {
                "name": t.name,
                "size_bytes": t.size_bytes,
                "kind": t.kind.value,
                **({"is_output": True} if t.is_output else {}),
                **({"shape": list(t.shape)} if t.shape else {}),
                **({"dtype": t.dtype} if t.dtype else {}),
            }
            for t in graph.tensors
        ],
        "ops": [
            {
                "name": o.name,
                "op_type": o.op_type,
                "inputs": [graph.tensors[t].name for t in o.inputs],
                "outputs": [graph.tensors[t].name for t in o.outputs],
                **({"macs": o.macs} if o.macs else {}),
            }
            for o in graph.ops
        ],
    }


#: Largest whole float taken as an integer: every whole number up to 2^53 is exact in a
#: double, so ``1e6`` (as tools that compute MACs in floating point write them) means
#: exactly 1,000,000; ``1e+30`` reads as 10^30 + 19,884,624,838,656 and is refused.
EXACT_FLOAT_MAX = 2**53


def _json_whole(value: Any, where: str, field_name: str) -> int:
    """A whole-number field of graph JSON (``macs``, ``size_bytes``, a ``shape`` dim): a
    JSON integer, or a float with no fraction up to :data:`EXACT_FLOAT_MAX` (``1e6``).

    Raises:
        InputFormatError: for NaN, infinity (JSON ``1e400`` reads as infinity), a number
            with a fraction, a float too large to be exact, a string, a boolean or null,
            naming ``where`` and the field.
    """
    if is_whole(value):
        return int(value)
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_FLOAT_MAX:
        return int(value)
    if isinstance(value, float) and math.isinf(value):
        got = "infinity (a number too large for a double, such as 1e400, reads as that)"
    elif isinstance(value, float) and math.isnan(value):
        got = "NaN"
    elif isinstance(value, float) and value.is_integer():
        got = (
            f"{value!r}, a float too large to be exact (over 2^53; write the number in "
            "digits, without '.' or 'e')"
        )
    else:
        got = describe(value)
    raise InputFormatError(
        f"{where}: field {field_name!r} must be a whole number (a JSON integer), got {got}"
    )


def _json_field(item: Mapping[str, Any], key: str, where: str) -> Any:
    """``item[key]``, or :class:`InputFormatError` naming ``where`` and the missing field
    (it was ``malformed graph JSON (KeyError('outputs'))``, naming neither)."""
    if key not in item:
        raise InputFormatError(f"{where}: the field {key!r} is missing; add it")
    return item[key]


def _json_list(
    item: Mapping[str, Any], key: str, where: str, *, optional: bool = False
) -> list[Any]:
    """``item[key]``, which must be a JSON list (an ``optional`` one may be left out).

    Raises:
        InputFormatError: the field is missing or not a list (``"ops": {}`` read as no
            ops, and was reported as a tensor without a producer).
    """
    if optional and key not in item:
        return []
    value = _json_field(item, key, where)
    if not isinstance(value, list):
        raise InputFormatError(f"{where}: the field {key!r} must be a list, got {describe(value)}")
    return value


#: The fields :func:`graph_to_dict` writes, in the file and in each tensor and op; any
#: other is refused (a misspelt ``is_ouput`` made a graph output an ordinary tensor).
GRAPH_FIELDS = ("format", "version", "name", "tensors", "ops")
TENSOR_FIELDS = ("name", "size_bytes", "kind", "is_output", "shape", "dtype")
OP_FIELDS = ("name", "op_type", "inputs", "outputs", "macs")


def _refuse_unknown(item: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    """Refuse a field :func:`graph_to_dict` does not write, naming it and the known ones."""
    unknown = [key for key in item if key not in known]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise InputFormatError(
            f"{where}: unknown field{'s' if len(unknown) > 1 else ''} {names} "
            f"(known: {', '.join(known)}); remove it or correct its spelling"
        )


def _json_text(item: Mapping[str, Any], key: str, where: str, default: Any = None) -> str:
    """``item[key]``, which must be a string (``default`` when missing, if given)."""
    value = item.get(key, default) if default is not None else _json_field(item, key, where)
    if not isinstance(value, str):
        raise InputFormatError(
            f"{where}: the field {key!r} must be a string, got {describe(value)}"
        )
    return value


def _tensor_refs(builder: GraphBuilder, item: Mapping[str, Any], key: str, where: str) -> list[Any]:
    """The tensors an op's ``inputs`` or ``outputs`` name, each a name in ``tensors``."""
    ids = []
    for k, name in enumerate(_json_list(item, key, where)):
        if not isinstance(name, str):
            raise InputFormatError(
                f"{where}: the field {key!r}: item #{k} must be a tensor name (a string), "
                f"got {describe(name)}"
            )
        if not builder.has_tensor(name):
            raise InputFormatError(
                f"{where}: the field {key!r} names tensor {name!r}, which the file's "
                "'tensors' list does not have; add it there or correct the name"
            )
        ids.append(builder.tensor_id(name))
    return ids


def graph_from_dict(data: Mapping[str, Any], source: str = "<graph>") -> Graph:
    """Rebuild a graph from :func:`graph_to_dict`'s form; errors name ``source``.

    Every field is checked for its type, and a field :func:`graph_to_dict` does not
    write is refused.
    """
    if not isinstance(data, Mapping) or data.get("format") != "memplan.graph":
        raise InputFormatError(f"{source}: not a memplan graph file (no format 'memplan.graph')")
    version = data.get("version")
    if type(version) is not int or version != GRAPH_JSON_VERSION:
        raise InputFormatError(
            f"{source}: graph format version {describe(version)} is not supported "
            f"(this memplan reads version {GRAPH_JSON_VERSION})"
        )
    _refuse_unknown(data, GRAPH_FIELDS, source)
    builder = GraphBuilder(_json_text(data, "name", source, default="graph"))
    try:
        for i, t in enumerate(_json_list(data, "tensors", source)):
            if not isinstance(t, Mapping):
                raise InputFormatError(
                    f"{source}: tensor #{i} must be an object, got {describe(t)}"
                )
            where = f"{source}: tensor #{i} {t.get('name')!r}"
            _refuse_unknown(t, TENSOR_FIELDS, where)
            try:
                kind = TensorKind(t.get("kind", "activation"))
            except ValueError:
                allowed = ", ".join(k.value for k in TensorKind)
                raise InputFormatError(
                    f"{source}: tensor #{i} {t.get('name')!r} has kind {t.get('kind')!r}; "
                    f"use one of {allowed}"
                ) from None
            is_output = t.get("is_output", False)
            if not isinstance(is_output, bool):
                raise InputFormatError(
                    f"{where}: field 'is_output' must be true or false, got {describe(is_output)}"
                )
            builder.tensor(
                _json_text(t, "name", where),
                _json_whole(_json_field(t, "size_bytes", where), where, "size_bytes"),
                kind,
                is_output=is_output,
                shape=tuple(
                    _json_whole(d, where, "shape")
                    for d in _json_list(t, "shape", where, optional=True)
                ),
                dtype=_json_text(t, "dtype", where, default=""),
            )
        for j, o in enumerate(_json_list(data, "ops", source)):
            if not isinstance(o, Mapping):
                raise InputFormatError(f"{source}: op #{j} must be an object, got {describe(o)}")
            where = f"{source}: op #{j} {o.get('name')!r}"
            _refuse_unknown(o, OP_FIELDS, where)
            builder.op(
                _json_text(o, "name", where),
                _json_text(o, "op_type", where),
                _tensor_refs(builder, o, "inputs", where),
                _tensor_refs(builder, o, "outputs", where),
                _json_whole(o.get("macs", 0), where, "macs"),
            )
    except (KeyError, TypeError, ValueError) as error:
        raise InputFormatError(f"{source}: malformed graph JSON ({error!r})") from None
    except GraphError as error:  # e.g. two producers of one tensor
        raise GraphError(f"{source}: {error}") from None
    try:
        return builder.build()
    except GraphError as error:
        raise GraphError(f"{source}: {error}") from None


def graph_to_json(graph: Graph) -> str:
    """Graph as versioned JSON text."""
    return json.dumps(graph_to_dict(graph), indent=1)


def graph_sha256(graph: Graph) -> str:
    """Hex SHA-256 of the graph's JSON form (names, sizes, kinds, ops): its fingerprint."""
    return hashlib.sha256(graph_to_json(graph).encode("utf-8")).hexdigest()


def graph_from_json(text: str, source: str = "<graph>") -> Graph:
    """Parse :func:`graph_to_json` output."""
    try:
        data = parse_json(text, source)
    except json.JSONDecodeError as error:
        raise InputFormatError(
            f"{source}: line {error.lineno}: invalid JSON ({error.msg})"
        ) from None
    return graph_from_dict(data, source)
