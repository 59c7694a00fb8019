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
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
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


_registered: dict[PluginKind, dict[str, type]] = {kind: {} for kind in PluginKind}


def register(kind: PluginKind, name: str, cls: type) -> None:
    """Register a plug-in class in this process (entry points are the normal way)."""
    _registered[kind][name] = cls


def _entry_points(kind: PluginKind) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=kind.value)}


def available(kind: PluginKind) -> list[str]:
    """Names of every known plug-in of ``kind`` (entry points and registrations)."""
    return sorted(set(_entry_points(kind)) | set(_registered[kind]))


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
    try:
        if ep is not None:
            loaded: type = ep.load()
            return loaded
        if ":" in name:
            module_name, _, attr = name.partition(":")
            found: type = getattr(importlib.import_module(module_name), attr)
            return found
    except ImportError as error:
        extra = required_extra(kind, name)
        hint = f"; install it with: pip install 'memplan[{extra}]'" if extra else ""
        raise ConfigError(f"{kind.noun} {name!r} cannot be loaded ({error}){hint}") from None
    except AttributeError:
        raise ConfigError(f"{kind.noun} path {name!r} names no class") from None
    raise ConfigError(
        f"unknown {kind.noun} {name!r}; available: {', '.join(available(kind)) or 'none'}"
    )


def make_plugin(kind: PluginKind, name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate a plug-in with options; strings are converted to the option's type.

    Raises:
        ConfigError: for an unknown plug-in or option, or a value of the wrong type.
    """
    cls = plugin_class(kind, name)
    infos = {o.name: o for o in describe_options(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in (options or {}).items():
        if key not in infos:
            raise ConfigError(
                f"{kind.noun} {name!r} has no option {key!r}; "
                f"its options: {', '.join(infos) or 'none'}"
            )
        kwargs[key] = option_value(name, infos[key], raw)
    return cls(**kwargs)


def capabilities_of(cls: type) -> frozenset[str]:
    """The capabilities a plug-in class declares (empty when it declares none)."""
    declared: frozenset[str] = getattr(cls, "capabilities", frozenset())
    return frozenset(declared)


def providers(kind: PluginKind, capability: str) -> list[str]:
    """Names of the loadable plug-ins of ``kind`` that declare ``capability``.

    Plug-ins whose optional extra is missing are skipped: they cannot provide anything.
    """
    names = []
    for name in available(kind):
        try:
            cls = plugin_class(kind, name)
        except ConfigError:
            continue
        if capability in capabilities_of(cls):
            names.append(name)
    return names
