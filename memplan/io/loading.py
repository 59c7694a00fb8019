"""Load a model file: an ONNX model or a memplan graph JSON file, told apart by content
(a ``.json`` file of text is read as JSON, so a malformed one is reported as such).

:func:`load_model` returns a :class:`LoadedModel` carrying the graph, where it came
from, a SHA-256 fingerprint (of the file, or of the serialized ``ModelProto``) that
plan files record so a plan is never applied to another model, and the
:class:`ImportOptions` the ONNX importer ran with, which plan files record too so a
plan is checked against the graph it was made for.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, InputFormatError
from memplan.frozen import refuse_assignment
from memplan.ir import Graph, graph_from_json
from memplan.jsonfields import describe

if TYPE_CHECKING:
    from memplan.onnx.flags import Scalar
    from memplan.onnx.importer import ImportReport


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How an ONNX model is turned into a graph: the importer's options, as given.

    The field names are the keyword arguments of
    :func:`memplan.onnx.importer.import_model`; a name-to-value option is a sorted
    tuple of pairs (hashable, comparable) and becomes a JSON object in plan files. A new
    importer option is added here as a field with its default, and is then passed to
    the importer, recorded in plan files and compared by ``validate`` and ``score``
    without further changes (give it a flag in :data:`IMPORT_FLAGS`).
    """

    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()  # fixed input shapes, elements
    dims: tuple[tuple[str, int], ...] = ()  # sizes of symbolic dims by name, in elements
    input_values: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()  # fixed small input values
    dtype_bytes: int | None = None  # bytes per element for every tensor; None: ONNX types
    aliases: bool = True  # view ops (Reshape, ...) share their input's buffer

    @classmethod
    def create(
        cls,
        *,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        dims: Mapping[str, int] | None = None,
        input_values: Mapping[str, Sequence[Scalar]] | None = None,
        dtype_bytes: int | None = None,
        aliases: bool = True,
    ) -> ImportOptions:
        """Options from the importer's keyword arguments (mappings in any order).

        Raises:
            ConfigError: a value of the wrong type or range, naming the argument and what
                is allowed (see :func:`memplan.onnx.flags.checked_arguments`).
        """
        from memplan.onnx.flags import checked_arguments

        checked = checked_arguments(
            input_shapes=input_shapes,
            dims=dims,
            input_values=input_values,
            dtype_bytes=dtype_bytes,
            aliases=aliases,
        )
        return cls(
            input_shapes=tuple(sorted(checked.input_shapes.items())),
            dims=tuple(sorted(checked.dims.items())),
            input_values=tuple(sorted(checked.input_values.items())),
            dtype_bytes=checked.dtype_bytes,
            aliases=checked.aliases,
        )

    def importer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``import_model`` (pairs become dictionaries)."""
        return {
            f.name: dict(value) if isinstance(value, tuple) else value
            for f in dataclasses.fields(self)
            for value in (getattr(self, f.name),)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field; pairs become an object, tuples lists."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(f.default, tuple):
                out[f.name] = {name: _to_json(v) for name, v in value}
            else:
                out[f.name] = _to_json(value)
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ImportOptions:
        """Read :meth:`to_dict`'s form back (fields left out take their defaults).

        Raises:
            InputFormatError: not an object, an unknown option, or a mistyped value.
        """
        if not isinstance(data, Mapping):
            raise InputFormatError(
                f"{source}: field 'import' must be an object (null for a memplan graph JSON "
                f"model), got {describe(data)}"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise InputFormatError(
                f"{source}: import option(s) {', '.join(unknown)} are not known to this "
                f"memplan (known: {', '.join(fields)}); upgrade memplan or re-plan the model"
            )
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = fields[name].default
            where = f"{source}: import option {name}"
            if isinstance(default, tuple):
                if not isinstance(value, Mapping):
                    raise InputFormatError(f"{where} must be an object, got {value!r}")
                pairs = ((str(k), _from_json(v, where)) for k, v in value.items())
                values[name] = tuple(sorted(pairs))
            else:
                values[name] = _from_json(value, where)
        options = cls(**values)
        options.check(source)
        return options

    def check(self, source: str) -> None:
        """Raise :class:`InputFormatError` unless every value has its type and range."""

        def positive(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value > 0

        bad = [
            f"input_shapes.{name}"
            for name, shape in self.input_shapes
            if not isinstance(shape, tuple) or not all(positive(d) for d in shape)
        ] + [f"dims.{name}" for name, size in self.dims if not positive(size)]
        bad += [
            f"input_values.{name}" for name, values in self.input_values
            if not isinstance(values, tuple) or not values
            or not all(isinstance(v, (int, float)) for v in values)
        ]  # fmt: skip
        if self.dtype_bytes is not None and not positive(self.dtype_bytes):
            bad.append("dtype_bytes")
        if not isinstance(self.aliases, bool):
            bad.append("aliases")
        if bad:
            raise InputFormatError(
                f"{source}: import option {bad[0]} has a wrong value (sizes are positive "
                "whole numbers, input values numbers or true/false, aliases true or false)"
            )

    def flags(self, names: Collection[str] | None = None) -> list[str]:
        """The command-line flags that give these options.

        Args:
            names: the fields to show, even at their defaults ("no --dim"); by default
                every field that differs from its default (none: an empty list).
        """
        words = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (value == f.default) if names is None else (f.name not in names):
                continue
            flag, separator = IMPORT_FLAGS.get(f.name, (f"--{f.name.replace('_', '-')}", "="))
            if isinstance(value, bool):
                words.append(flag if value else f"--no-{flag.removeprefix('--')}")
            elif value is None or value == ():
                words.append(f"no {flag}")
            elif isinstance(f.default, tuple):
                words += [f"{flag} {name}{separator}{_value_text(v)}" for name, v in value]
            else:
                words.append(f"{flag} {_value_text(value)}")
        return words

    def describe(self) -> str:
        """The flags as one string, or 'the default import options'."""
        return " ".join(self.flags()) or "the default import options"

    def differing(self, other: ImportOptions, names: Sequence[str]) -> list[str]:
        """The fields among ``names`` that ``other`` gives otherwise than these options.

        A name-to-value option (``dims``, ``input_shapes``, ``input_values``) of ``other``
        agrees when each entry it gives is one of these options' entries: a plan made
        with ``--dim batch=2 --dim seq=64`` agrees with ``--dim seq=64``, which
        contradicts nothing (it was refused with "made with --dim batch=2 --dim seq=64,
        but this command gives --dim seq=64"). An entry these options lack, or give
        another value, differs.
        """

        def agrees(name: str) -> bool:
            mine, theirs = getattr(self, name), getattr(other, name)
            if isinstance(mine, tuple) and isinstance(theirs, tuple) and theirs:
                return set(theirs) <= set(mine)
            return bool(mine == theirs)

        return [n for n in names if not agrees(n)]


def _value_text(value: Any) -> str:
    """A value as the command line writes it: tuples comma-separated."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


#: Each import option's flag and, for name-to-value options, the separator after the name.
IMPORT_FLAGS: dict[str, tuple[str, str]] = {
    "input_shapes": ("--input-shape", ":"),
    "dims": ("--dim", "="),
    "input_values": ("--input-value", ":"),
    "dtype_bytes": ("--dtype-bytes", ""),
    "aliases": ("--aliases", ""),
}


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any, where: str) -> Any:
    if isinstance(value, list):
        if any(isinstance(v, list) for v in value):  # 900 levels were a RecursionError
            raise InputFormatError(
                f"{where} has a list inside a list; a shape or an input's values are one "
                "flat list of numbers"
            )
        return tuple(_from_json(v, where) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise InputFormatError(f"{where} has a value of the wrong type ({type(value).__name__})")


@refuse_assignment("load the model again with other settings")
@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A graph and where it came from."""

    graph: Graph  # the scheduling IR
    path: Path | None  # the file it was read from; None for an in-memory ModelProto
    sha256: str  # hex SHA-256 of the file bytes, or of the serialized ModelProto
    report: ImportReport | None  # what the ONNX importer did; None for graph JSON
    import_options: ImportOptions | None = None  # the importer's options; None for graph JSON

    def __repr__(self) -> str:
        # Short, not the dataclass repr that prints the whole graph.
        where = str(self.path) if self.path is not None else "an in-memory model"
        return f"LoadedModel({self.graph!r} from {where}, sha256 {self.sha256[:12]}...)"


def _looks_like_json(head: bytes) -> bool:
    """Whether a file's first bytes start a JSON object (after whitespace / BOM)."""
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return stripped.startswith(b"{")


def _looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (no control bytes but whitespace), as a
    malformed graph JSON file is and an ONNX protobuf (first byte a field tag such as
    0x08) is not: a ``.json`` file of text is read as JSON, so its error says why."""
    return all(byte >= 0x20 or byte in b"\t\n\r" for byte in head)


def load_model(
    model: str | Path | Any,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dims: Mapping[str, int] | None = None,
    dtype_bytes: int | None = None,
    aliases: bool = True,
    input_values: Mapping[str, Sequence[Scalar]] | None = None,
    options: ImportOptions | None = None,
) -> LoadedModel:
    """Load an ONNX model (path or ``ModelProto``) or a memplan graph JSON file.

    Args:
        model: a path to an ``.onnx`` file or graph JSON file, a workload name of the
            catalog (``memplan graphs list``), or an ``onnx.ModelProto``.
        input_shapes: fixed shapes of graph inputs (ONNX only), in elements.
        dims: sizes of symbolic dimensions by name (ONNX only).
        dtype_bytes: bytes per element overriding the ONNX element types (ONNX only).
        aliases: treat view ops as aliases of their input (ONNX only).
        input_values: fixed values of small graph inputs, e.g. ``{"sr": (16000,)}`` (ONNX
            only); computations and ``If`` branches that depend on them fold.
        options: all import options in one object, instead of the five above.

    Raises:
        ConfigError: a bare name that is neither a file nor a catalog workload; an import
            option of the wrong type or range (naming the argument), or one that does not
            fit the model (an unknown input or dim name, a changed fixed dim).
        OnnxImportError: the file is missing, unreadable, or not a valid model.
        InputFormatError: a graph JSON file is malformed.
    """
    from memplan.onnx.importer import import_model
    from memplan.onnx.load import read_model_bytes

    if options is None:
        options = ImportOptions.create(
            input_shapes=input_shapes,
            dims=dims,
            input_values=input_values,
            dtype_bytes=dtype_bytes,
            aliases=aliases,
        )
    else:
        options = _checked_options(options)
    model = model_source(model)
    if not isinstance(model, (str, Path)):
        result = import_model(model, **options.importer_kwargs())
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
        return LoadedModel(result.graph, None, digest, result.report, options)
    path = Path(model)
    data = read_model_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    head = data[:64]
    if _looks_like_json(head) or (path.suffix.lower() == ".json" and _looks_like_text(head)):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputFormatError(f"{path}: not UTF-8 text; not a memplan graph file") from None
        graph = graph_from_json(text, str(path))
        return LoadedModel(graph, path, digest, None, None)
    result = import_model(path, **options.importer_kwargs(), model_bytes=data)
    return LoadedModel(result.graph, path, digest, result.report, options)


def _checked_options(options: Any) -> ImportOptions:
    """``options`` (an :class:`ImportOptions` a caller built) with every value checked.

    Raises:
        ConfigError: not an :class:`ImportOptions`, or a field of the wrong type or range.
    """
    if not isinstance(options, ImportOptions):
        raise ConfigError(
            f"options must be an ImportOptions (memplan.io.loading.ImportOptions.create(...)), "
            f"got a {type(options).__name__}"
        )
    pairs = {f.name for f in dataclasses.fields(options) if isinstance(f.default, tuple)}
    for name in pairs:
        value = getattr(options, name)
        if not isinstance(value, tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 for p in value
        ):
            raise ConfigError(
                f"options.{name} must be a tuple of (name, value) pairs; build the options "
                "with ImportOptions.create(...), which takes mappings"
            )
    return ImportOptions.create(**options.importer_kwargs())


def model_source(model: Any) -> Any:
    """Where a model comes from: a path for files and stored workloads, a ``ModelProto``
    for generated workloads (``memplan graphs list``), anything else unchanged.

    Raises:
        ConfigError: a bare name that is neither a file nor a catalog workload.
    """
    name = str(model)
    path = Path(name)
    if not isinstance(model, str) or path.exists() or path.suffix.lower() in (".onnx", ".json"):
        return model
    if "/" in name or "\\" in name:
        return model  # a path that does not exist: the loader names it in its error
    from memplan.graphs import catalog

    try:
        info = catalog.get_workload(name)
    except ConfigError as error:
        raise ConfigError(
            f"model {name!r} is not a file, nor a catalog workload: {error}"
        ) from None
    return str(info.stored_file()) if not info.is_generated else catalog.load_model(name)
