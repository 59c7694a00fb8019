"""The workload catalog: what ``graphs/index.toml`` lists, and how to get each model.

A workload is either a stored ONNX file (inside an installed package such as onnx, or
under ``graphs/``), checked against the sha256 the index records, or a generator in
this package with its parameters, run when the model is asked for::

    index.toml ──► WorkloadInfo ──┬─ stored:    read file ─► check sha256 ─► bytes
                                  └─ generated: module.function(name=..., **params) ─► bytes
                                                         │
    load_model(name) ◄── onnx.load_from_string ◄─────────┘  (bytes cached per name)

Named suites group workloads (``light``, ``small``, ``nas``...); the suite ``all``
holds every workload. Unknown workload or suite names raise
:class:`~memplan.errors.ConfigError` listing the known ones.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, InputFormatError
from memplan.io.files import atomic_write_bytes

if TYPE_CHECKING:
    import onnx

#: The index file shipped with this package.
INDEX_PATH = Path(__file__).with_name("index.toml")
#: The implicit suite holding every workload.
ALL_SUITE = "all"
#: Modules of memplan.graphs that an index may name as generators.
GENERATOR_MODULES = ("nas", "randwire", "transformers", "cnn")

_WORKLOAD_KEYS = {"name", "family", "description", "source", "licence", "ops"}
_STORED_KEYS = {"package", "path", "sha256"}
_GENERATED_KEYS = {"generator", "params"}


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """One entry of the workload index."""

    name: str  # unique workload name, e.g. "darts_v2_cifar"
    family: str  # architecture family, e.g. "darts", "resnet"
    description: str  # one line: what the model is, its sizes and input
    source: str  # where the architecture or file comes from (paper, package)
    licence: str  # licence of the stored file or of the generator
    ops: int  # compute ONNX nodes (weight-making nodes excluded), as the index records
    suites: tuple[str, ...]  # named suites listing it (besides "all"), in index order
    generator: str | None = None  # "module.function" in memplan.graphs; None when stored
    params: Mapping[str, Any] = field(  # generator keyword arguments (read-only)
        default_factory=lambda: MappingProxyType({})
    )
    package: str | None = None  # package a stored file ships in; None for graphs/ itself
    path: str | None = None  # stored file's path inside that package
    sha256: str | None = None  # expected hex sha256 of the stored file

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def is_generated(self) -> bool:
        """True when a generator builds the model at run time."""
        return self.generator is not None

    def stored_file(self) -> Path:
        """Where a stored workload's file is on disk (it may be missing).

        Raises:
            ConfigError: the workload is generated, or its package is not installed.
        """
        if self.path is None:
            raise ConfigError(f"workload {self.name!r} is generated; it has no stored file")
        if self.package is None:
            return INDEX_PATH.parent / self.path
        try:
            root = resources.files(self.package)
        except ModuleNotFoundError:
            raise ConfigError(
                f"workload {self.name!r} ships in the package {self.package!r}, which is not "
                f"installed; pip install {self.package}"
            ) from None
        return Path(str(root.joinpath(self.path)))


@dataclass(frozen=True, slots=True)
class Suite:
    """A named group of workloads."""

    name: str  # suite name, e.g. "small"
    description: str  # what the suite is for
    workloads: tuple[str, ...]  # member workload names, in index order


@dataclass(frozen=True, slots=True)
class Index:
    """The parsed workload index."""

    workloads: tuple[WorkloadInfo, ...]  # every workload, in index order
    suites: tuple[Suite, ...]  # named suites, "all" first

    def by_name(self) -> dict[str, WorkloadInfo]:
        """Workloads keyed by name."""
        return {w.name: w for w in self.workloads}


# ------------------------------------------------------------------ reading the index


def read_index(path: str | os.PathLike[str] = INDEX_PATH) -> Index:
    """Parse and check a workload index file.

    Raises:
        InputFormatError: the file is not valid TOML or an entry is malformed.
    """
    where = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputFormatError(f"{where}: workload index not found") from None
    except tomllib.TOMLDecodeError as error:
        raise InputFormatError(f"{where}: not valid TOML: {error}") from None
    if data.get("format_version") != 1:
        raise InputFormatError(
            f"{where}: format_version must be 1, got {data.get('format_version')!r}"
        )
    entries = data.get("workload", [])
    if not isinstance(entries, list) or not entries:
        raise InputFormatError(f"{where}: no [[workload]] entries")
    raw_suites = data.get("suites", {})
    if not isinstance(raw_suites, dict):
        raise InputFormatError(f"{where}: [suites] must be a table of suite tables")
    suites = [_read_suite(where, name, body) for name, body in raw_suites.items()]
    membership: dict[str, list[str]] = {}
    for suite in suites:
        for member in suite.workloads:
            membership.setdefault(member, []).append(suite.name)
    workloads: list[WorkloadInfo] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        info = _read_workload(where, number, entry, membership)
        if info.name in seen:
            raise InputFormatError(f"{where}: workload {info.name!r} is listed twice")
        seen.add(info.name)
        workloads.append(info)
    for suite in suites:
        unknown = [m for m in suite.workloads if m not in seen]
        if unknown:
            raise InputFormatError(
                f"{where}: suite {suite.name!r} lists unknown workloads {unknown}; "
                "add them as [[workload]] entries or remove them from the suite"
            )
    everything = Suite(ALL_SUITE, "every workload", tuple(w.name for w in workloads))
    return Index(tuple(workloads), (everything, *suites))


def _read_suite(where: str, name: str, body: Any) -> Suite:
    if name == ALL_SUITE:
        raise InputFormatError(f"{where}: suite {ALL_SUITE!r} is implicit; do not define it")
    if not isinstance(body, dict) or not isinstance(body.get("workloads"), list):
        raise InputFormatError(f"{where}: [suites.{name}] needs a 'workloads' list of names")
    members = body["workloads"]
    if not all(isinstance(m, str) for m in members) or len(set(members)) != len(members):
        raise InputFormatError(f"{where}: [suites.{name}] workloads must be distinct names")
    return Suite(name, str(body.get("description", "")), tuple(members))


def _read_workload(
    where: str, number: int, entry: Any, membership: Mapping[str, list[str]]
) -> WorkloadInfo:
    label = f"{where}: [[workload]] #{number}"
    if not isinstance(entry, dict):
        raise InputFormatError(f"{label}: must be a table")
    if isinstance(entry.get("name"), str):
        label = f"{where}: workload {entry['name']!r}"
    missing = sorted(k for k in _WORKLOAD_KEYS if k not in entry)
    if missing:
        raise InputFormatError(f"{label}: missing field(s) {', '.join(missing)}")
    stored = _STORED_KEYS & entry.keys()
    generated = _GENERATED_KEYS & entry.keys()
    unknown = sorted(entry.keys() - _WORKLOAD_KEYS - _STORED_KEYS - _GENERATED_KEYS)
    if unknown:
        raise InputFormatError(f"{label}: unknown field(s) {', '.join(unknown)}")
    for key in ("name", "family", "description", "source", "licence"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise InputFormatError(f"{label}: {key} must be a non-empty string")
    if not isinstance(entry["ops"], int) or entry["ops"] < 0:
        raise InputFormatError(f"{label}: ops must be a non-negative integer")
    common = {
        "name": entry["name"],
        "family": entry["family"],
        "description": entry["description"],
        "source": entry["source"],
        "licence": entry["licence"],
        "ops": entry["ops"],
        "suites": tuple(membership.get(entry["name"], ())),
    }
    if generated and not stored:
        generator = entry.get("generator")
        params = entry.get("params", {})
        if not isinstance(generator, str) or generator.count(".") != 1:
            raise InputFormatError(f"{label}: generator must be 'module.function'")
        module = generator.split(".")[0]
        if module not in GENERATOR_MODULES:
            raise InputFormatError(
                f"{label}: generator module {module!r} is not one of {', '.join(GENERATOR_MODULES)}"
            )
        if not isinstance(params, dict) or "name" in params:
            raise InputFormatError(
                f"{label}: params must be a table of keyword arguments (without 'name')"
            )
        return WorkloadInfo(**common, generator=generator, params=MappingProxyType(dict(params)))
    if stored and not generated:
        path, sha256 = entry.get("path"), entry.get("sha256")
        package = entry.get("package")
        if not isinstance(path, str) or not path:
            raise InputFormatError(f"{label}: a stored workload needs a 'path'")
        if not isinstance(sha256, str) or len(sha256) != 64:
            raise InputFormatError(f"{label}: sha256 must be 64 hex digits")
        if package is not None and not isinstance(package, str):
            raise InputFormatError(f"{label}: package must be a package name")
        return WorkloadInfo(**common, package=package, path=path, sha256=sha256.lower())
    raise InputFormatError(
        f"{label}: give either generator + params or path + sha256 (+ package), not both"
    )


@functools.lru_cache(maxsize=1)
def _index() -> Index:
    return read_index(INDEX_PATH)


# ---------------------------------------------------------------------- public API


def suite_names() -> list[str]:
    """Names of the suites, ``all`` first, then in index order."""
    return [suite.name for suite in _index().suites]


def list_workloads(suite: str | None = None) -> list[WorkloadInfo]:
    """Workloads of ``suite`` (every workload when ``None`` or ``"all"``), in index order.

    Raises:
        ConfigError: ``suite`` is not a known suite.
    """
    index = _index()
    if suite is None or suite == ALL_SUITE:
        return list(index.workloads)
    for candidate in index.suites:
        if candidate.name == suite:
            by_name = index.by_name()
            return [by_name[name] for name in candidate.workloads]
    raise ConfigError(_unknown("suite", suite, suite_names()))


def get_workload(name: str) -> WorkloadInfo:
    """The index entry of workload ``name``.

    Raises:
        ConfigError: no workload has that name (the message lists the known ones).
    """
    info = _index().by_name().get(name)
    if info is None:
        raise ConfigError(_unknown("workload", name, [w.name for w in _index().workloads]))
    return info


def load_model(name: str) -> onnx.ModelProto:
    """The ONNX model of workload ``name`` (generated, or read and sha256-checked).

    Each call returns a fresh ``ModelProto``; the serialized bytes are cached.
    """
    import onnx

    return onnx.load_from_string(model_bytes(name))


def model_bytes(name: str) -> bytes:
    """The serialized model of workload ``name`` (cached; see :func:`load_model`)."""
    return _cached_bytes(get_workload(name).name)


@functools.lru_cache(maxsize=8)
def _cached_bytes(name: str) -> bytes:
    return build_model_bytes(get_workload(name))


def build_model_bytes(info: WorkloadInfo) -> bytes:
    """Produce a workload's serialized model without the cache.

    Stored files are checked against the recorded sha256; generated models are built
    from scratch (tests hash two builds to check that generators are deterministic).

    Raises:
        ConfigError: a stored file is missing or a generator rejects its parameters.
        InputFormatError: a stored file's sha256 differs from the index.
    """
    if info.generator is None:
        return _read_stored(info)
    module_name, function_name = info.generator.split(".")
    module = importlib.import_module(f"memplan.graphs.{module_name}")
    function = getattr(module, function_name, None)
    if function is None:
        raise ConfigError(
            f"workload {info.name!r}: memplan.graphs.{module_name} has no generator "
            f"{function_name!r}; fix 'generator' in {INDEX_PATH}"
        )
    try:
        model = function(name=info.name, **dict(info.params))
    except TypeError as error:
        raise ConfigError(
            f"workload {info.name!r}: bad generator parameters for {info.generator}: {error}; "
            f"fix 'params' in {INDEX_PATH}"
        ) from error
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def _read_stored(info: WorkloadInfo) -> bytes:
    path = info.stored_file()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        where = f"the installed {info.package!r} package" if info.package else "graphs/"
        raise ConfigError(
            f"workload {info.name!r}: {path} is missing from {where}; reinstall it "
            f"(pip install --force-reinstall {info.package or 'memplan'})"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != info.sha256:
        raise InputFormatError(
            f"workload {info.name!r}: {path} has sha256 {digest}, the index records "
            f"{info.sha256}; the file changed (another {info.package or 'memplan'} version?): "
            f"check it and update {INDEX_PATH}"
        )
    return data


def export_model(name: str, path: str | os.PathLike[str]) -> Path:
    """Write workload ``name`` as an ONNX file at ``path`` (atomically); return the path."""
    target = Path(path)
    atomic_write_bytes(target, model_bytes(name), create_folders=True)
    return target


def count_ops(model: onnx.ModelProto) -> int:
    """Compute nodes of a model: all but the weight-making ones (the index's ``ops``)."""
    from memplan.graphs.onnx_builder import compute_node_count

    return compute_node_count(model)


def _unknown(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; known {kind}s: {', '.join(known)}"
