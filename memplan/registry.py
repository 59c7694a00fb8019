"""The one plug-in registry: solvers and allocators, found by name, loaded lazily.

Plug-ins register under two entry-point groups of the same shape (pyproject.toml)::

    [project.entry-points."memplan.solvers"]
    greedy = "memplan.solvers.greedy:GreedySolver"
    ilp = "memplan.solvers.ilp:IlpSolver [ilp]"       # [extra]: what pip install adds

    [project.entry-points."memplan.allocators"]
    exact = "memplan.solvers.alloc.exact:ExactAllocator"

A plug-in is a frozen dataclass of options with a ``name`` class attribute; a solver
has ``solve(problem, budget)``, an allocator ``allocate(buffers, capacity_bytes,
budget)``. Nothing is imported until a plug-in is asked for by name, so ``import
memplan`` pulls in no MILP/CP library, numba, torch or gymnasium. A name may also be a
``package.module:Class`` path, or a class registered in this process with
:func:`register`.

*Capabilities* are what a plug-in can do beyond its main method, declared as a class
attribute ``capabilities: ClassVar[frozenset[str]]`` (e.g. :data:`EXACT_MIN_PEAK`). The
core asks "who can do X?" with :func:`providers`, and never calls a plug-in by name.

*Requirements*: a plug-in whose class imports but whose backend is loaded later (the
ILP imports OR-Tools only when it solves) is not usable just because its class loads.
:func:`missing_requirements` imports what the plug-in needs: the modules it declares
in ``requires_modules: ClassVar[tuple[str, ...]]``, and the top-level modules of the
distributions its entry point's ``[extra]`` installs (from the package metadata).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import re
from collections.abc import Mapping
from importlib.metadata import (
    EntryPoint,
    PackageNotFoundError,
    entry_points,
    packages_distributions,
    requires,
    version,
)
from typing import Any

from memplan.errors import ConfigError
from memplan.options import describe_options, option_value

#: Capability: ``cls.exact_min_peak(problem, budget) -> PeakEstimate`` proves M_P.
EXACT_MIN_PEAK = "exact_min_peak"


class PluginKind(enum.Enum):
    """The two kinds of plug-in; the value is the entry-point group."""

    SOLVER = "memplan.solvers"
    ALLOCATOR = "memplan.allocators"

    @property
    def noun(self) -> str:
        """``solver`` or ``allocator``, for messages."""
        return self.name.lower()

    @property
    def method(self) -> str:
        """The method the protocol requires (``solve`` or ``allocate``)."""
        return "solve" if self is PluginKind.SOLVER else "allocate"


_registered: dict[PluginKind, dict[str, type]] = {kind: {} for kind in PluginKind}


def register(kind: PluginKind, name: str, cls: type) -> None:
    """Register a plug-in class in this process (entry points are the normal way)."""
    _registered[kind][name] = cls


def unregister(kind: PluginKind, name: str) -> None:
    """Forget a class registered with :func:`register` (entry points stay)."""
    _registered[kind].pop(name, None)


@functools.cache
def _read_entry_points(kind: PluginKind) -> dict[str, EntryPoint]:
    # Reading them scans every installed distribution's metadata: 16 ms with about a
    # hundred installed, which was 40 % of greedy's 40 ms on light_inception_v1 (every
    # allocation looks its allocator up by name).
    return {ep.name: ep for ep in entry_points(group=kind.value)}


def _entry_points(kind: PluginKind, *, fresh: bool = False) -> dict[str, EntryPoint]:
    """The entry points of ``kind`` by name, read once per process; ``fresh`` reads
    them again (a plug-in installed since, in a long Jupyter session)."""
    if fresh:
        _read_entry_points.cache_clear()
    return _read_entry_points(kind)


def available(kind: PluginKind) -> list[str]:
    """Names of every known plug-in of ``kind`` (entry points and registrations)."""
    return sorted(set(_entry_points(kind, fresh=True)) | set(_registered[kind]))


def is_installed(kind: PluginKind, name: str) -> bool:
    """Whether a plug-in named ``name`` is known, reading the entry points again only for
    a name not seen (a fresh read, as :func:`available` does, scans every installed
    distribution, and greedy checks its allocator on every construction)."""
    if name in _registered[kind] or name in _entry_points(kind):
        return True
    return name in _entry_points(kind, fresh=True)


def required_extra(kind: PluginKind, name: str) -> str | None:
    """The optional-dependency extra a plug-in needs (from its entry point), if any."""
    ep = _entry_points(kind).get(name)
    if ep is None or not ep.extras:
        return None
    return ep.extras[0]


def plugin_class(kind: PluginKind, name: str) -> type:
    """Load a plug-in class by registry name or ``package.module:Class`` path.

    Raises:
        ConfigError: for an unknown name (listing the known ones), or when the plug-in
            cannot be imported (naming the ``pip install`` that fixes a missing extra).
    """
    if name in _registered[kind]:
        return _registered[kind][name]
    ep = _entry_points(kind).get(name)
    if ep is None:  # installed since the entry points were read?
        ep = _entry_points(kind, fresh=True).get(name)
    try:
        if ep is not None:
            loaded: type = ep.load()
            return loaded
        if ":" in name:
            module_name, _, attr = name.partition(":")
            return _checked_class(kind, name, getattr(importlib.import_module(module_name), attr))
    except ImportError as error:
        extra = required_extra(kind, name)
        hint = f"; install it with: pip install 'memplan[{extra}]'" if extra else ""
        raise ConfigError(f"{kind.noun} {name!r} cannot be loaded ({error}){hint}") from None
    except AttributeError:
        raise ConfigError(f"{kind.noun} path {name!r} names no class") from None
    raise ConfigError(
        f"unknown {kind.noun} {name!r}; available: {', '.join(available(kind)) or 'none'}"
    )


def _checked_class(kind: PluginKind, name: str, found: object) -> type:
    """``found`` if it is a plug-in class of ``kind`` (a dataclass with the protocol's
    method); a ``module:Class`` path can name anything (``os:system``).

    Raises:
        ConfigError: it is not one.
    """
    if (
        not isinstance(found, type)
        or not dataclasses.is_dataclass(found)
        or not callable(getattr(found, kind.method, None))
    ):
        what = "a class" if isinstance(found, type) else f"a {type(found).__name__}"
        raise ConfigError(
            f"{kind.noun} path {name!r} names {what} that is not a {kind.noun}: a {kind.noun} "
            f"is a dataclass of options with a {kind.method}() method"
        )
    return found


def make_plugin(kind: PluginKind, name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate a plug-in with options; strings are converted to the option's type.

    Raises:
        ConfigError: for an unknown plug-in or option, or a value of the wrong type.
    """
    if not isinstance(name, str):
        raise ConfigError(f"{kind.noun} name must be a string such as 'greedy', got {name!r}")
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(
            f"{kind.noun} {name!r}: options must be a mapping such as {{'seed': 1}}, "
            f"got {type(options).__name__}"
        )
    cls = plugin_class(kind, name)
    infos = {o.name: o for o in describe_options(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in (options or {}).items():
        if key not in infos:
            prefix, _, bare = key.partition(".")
            hint = f" (give it as {bare}=..., without {prefix}.)" if bare in infos else ""
            raise ConfigError(
                f"{kind.noun} {name!r} has no option {key!r}{hint}; "
                f"its options: {', '.join(infos) or 'none'}"
            )
        kwargs[key] = option_value(name, infos[key], raw)
    return cls(**kwargs)


def capabilities_of(cls: type) -> frozenset[str]:
    """The capabilities a plug-in class declares (empty when it declares none)."""
    declared: frozenset[str] = getattr(cls, "capabilities", frozenset())
    return frozenset(declared)


def providers(kind: PluginKind, capability: str) -> list[str]:
    """Names of the usable plug-ins of ``kind`` that declare ``capability``.

    Plug-ins with a missing requirement (:func:`missing_requirements`) are skipped:
    they cannot provide anything here.
    """
    names = []
    for name in available(kind):
        try:
            cls = plugin_class(kind, name)
        except ConfigError:
            continue
        if capability in capabilities_of(cls) and missing_requirements(kind, name) is None:
            names.append(name)
    return names


def missing_requirements(kind: PluginKind, name: str) -> str | None:
    """Why plug-in ``name`` cannot run in this environment, or None when it can.

    Loads the plug-in class, then imports every module it needs (see the module
    docstring). A module that fails for any reason (missing, or a broken binary wheel)
    makes the plug-in unusable; the reason names it and the ``pip install`` that fixes
    a missing extra.
    """
    try:
        cls = plugin_class(kind, name)
    except ConfigError as error:
        return str(error)
    extra = required_extra(kind, name)
    hint = f"; install it with: pip install 'memplan[{extra}]'" if extra else ""
    modules: list[str] = list(getattr(cls, "requires_modules", ()))
    ep = _entry_points(kind).get(name)
    if extra and ep is not None and ep.dist is not None:
        for distribution in extra_distributions(ep.dist.name, extra):
            found = distribution_modules(distribution)
            if not found:
                return f"{kind.noun} {name!r} needs {distribution!r}, which is not installed{hint}"
            modules.extend(found)
    for module in dict.fromkeys(modules):
        try:
            importlib.import_module(module)
        except Exception as error:  # a broken binary wheel fails in many ways
            return (
                f"{kind.noun} {name!r} needs module {module!r}, which does not import "
                f"({type(error).__name__}: {error}){hint}"
            )
    return None


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _normalized(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_distributions(distribution: str, extra: str) -> list[str]:
    """The distributions that ``pip install 'distribution[extra]'`` adds."""
    try:
        requirements = requires(distribution) or []
    except PackageNotFoundError:
        return []
    names = []
    for requirement in requirements:
        requirement_name, _, marker = requirement.partition(";")
        extras = _EXTRA_MARKER.findall(marker)
        match = _REQUIREMENT_NAME.match(requirement_name)
        if match and _normalized(extra) in {_normalized(e) for e in extras}:
            names.append(match.group(1))
    return names


@functools.cache
def _top_level_owners() -> Mapping[str, list[str]]:
    """Top-level module -> distributions, read once per process.

    Scanning every installed distribution takes about half a second, and solvers ask
    who provides a capability on every solve (``dnc`` looks up its part solver).
    """
    return packages_distributions()


def distribution_modules(distribution: str) -> list[str]:
    """Top-level modules an installed distribution provides (empty when not installed).

    When one of them is named like the distribution, only that one is returned: the
    others are helpers it ships (OR-Tools ships ``pybind11_abseil``).
    """
    try:
        version(distribution)
    except PackageNotFoundError:
        return []
    wanted = _normalized(distribution)
    modules = sorted(
        module
        for module, owners in _top_level_owners().items()
        if not module.startswith("_") and wanted in {_normalized(o) for o in owners}
    )
    named = [m for m in modules if _normalized(m) == wanted]
    return named or modules
