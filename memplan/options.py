"""Options of plug-ins: documented dataclass fields, checked and converted in one place.

A plug-in's options are the fields of its frozen dataclass; each field's
``metadata["help"]`` says what it means, its unit and its allowed values. This module
lists them (``memplan solvers``, ``--help``), converts command-line strings to the
field's type, and holds the checks plug-ins run in ``__post_init__``.

Options every plug-in shares are defined here once, so they mean and accept the same
for every solver and allocator: ``seed`` (:func:`seed_field`, :func:`check_seed`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import typing
from dataclasses import dataclass
from typing import Any

from memplan.errors import ConfigError

#: Largest accepted ``seed``: every plug-in takes 0 .. 2**31 - 1, which every backend's
#: own seed accepts (CP-SAT's int32 ``random_seed``, numpy's and Python's generators).
SEED_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """One documented plug-in option."""

    name: str  # option name as given on the command line (--option name=value)
    type_name: str  # int, float, bool or str
    default: Any  # default value
    help: str  # meaning, unit and allowed values


def describe_options(plugin_cls: type) -> list[OptionInfo]:
    """Options of a plug-in class, from its dataclass fields' ``metadata['help']``."""
    return list(_described(plugin_cls))


_DESCRIBED: dict[type, tuple[OptionInfo, ...]] = {}


def _described(plugin_cls: type) -> tuple[OptionInfo, ...]:
    """:func:`describe_options`, read once per class (type hints are slow to resolve)."""
    if plugin_cls in _DESCRIBED:
        return _DESCRIBED[plugin_cls]
    hints = typing.get_type_hints(plugin_cls)
    infos = []
    for f in dataclasses.fields(plugin_cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        infos.append(
            OptionInfo(f.name, _type_name(hints.get(f.name)), default, f.metadata.get("help", ""))
        )
    _DESCRIBED[plugin_cls] = tuple(infos)
    return _DESCRIBED[plugin_cls]


def type_options(plugin: Any) -> None:
    """Give each option of a plug-in instance its declared type, in place; the first
    call of its ``__post_init__``.

    The class called directly (``GreedySolver(seed=np.int64(3))``, ``max_retries=2.0``)
    then takes and refuses what :func:`memplan.solver.make_solver` takes and refuses: a
    numpy number becomes the Python number, and a value of another type is refused.
    """
    name = str(getattr(plugin, "name", type(plugin).__name__))
    for info in _described(type(plugin)):
        value = getattr(plugin, info.name)
        typed = _typed_value(name, info, value)
        if typed is not value:
            object.__setattr__(plugin, info.name, typed)  # frozen: only in __post_init__


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def option_values(plugin: Any) -> dict[str, Any]:
    """The option values of a plug-in instance, JSON-ready."""
    values = {}
    for f in dataclasses.fields(plugin):
        value = getattr(plugin, f.name)
        values[f.name] = value.value if isinstance(value, enum.Enum) else value
    return values


def option_value(plugin_name: str, info: OptionInfo, raw: Any) -> Any:
    """Convert a command-line string to the option's type; a Python value must already
    have it (an int is taken for a float; 2.5 for an int, or "x" typed as a number, is
    refused as the command line refuses it)."""
    if not isinstance(raw, str):
        return _typed_value(plugin_name, info, raw)
    try:
        if info.type_name == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if info.type_name == "int":
            return int(raw)
        if info.type_name == "float":
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(raw)
            return number
    except ValueError:
        raise ConfigError(
            f"{plugin_name!r}: option {info.name}={raw!r} is not a valid {info.type_name}"
            + (" (a finite number)" if info.type_name == "float" else "")
        ) from None
    return raw


def _typed_value(plugin_name: str, info: OptionInfo, value: Any) -> Any:
    """``value`` if it has the option's type (see :func:`option_value`), as that type.

    A numpy integer is taken for an int (and an int or numpy number for a float), as
    :class:`memplan.solver.Budget` takes them, and converted to the Python type, so the
    plug-in (and a seed given to :mod:`random`) sees an int.
    """
    expected = info.type_name
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = {
        "bool": isinstance(value, bool),
        "int": whole,
        "float": isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value),
        "str": isinstance(value, str),
    }.get(expected, True)
    if not ok:
        raise ConfigError(
            f"{plugin_name!r}: option {info.name}={value!r} is not a valid {expected}"
            + (" (a finite number)" if expected == "float" else "")
        )
    if expected == "float":
        return float(value)
    return int(value) if expected == "int" else value


def parse_option_pairs(pairs: list[str] | None) -> dict[str, str]:
    """Parse ``["order=dfs", "seed=3"]`` from ``--option`` flags."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option {pair!r} must look like NAME=VALUE (e.g. order=dfs)")
        result[key.strip()] = value.strip()
    return result


def check_choice(plugin_name: str, option: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(
            f"{plugin_name!r}: option {option}={value!r} is not allowed; "
            f"use one of {', '.join(allowed)}"
        )


def check_range(
    plugin_name: str, option: str, value: float, low: float, high: float | None = None
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value (<= high)`` (NaN never is)."""
    # Written as "not inside" so that NaN, which compares false both ways, is refused.
    if not (value >= low and (high is None or value <= high)):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{plugin_name!r}: option {option}={value!r} must be {bound}")


def seed_field(help_text: str = "random seed; same seed, same plan") -> Any:
    """The ``seed`` option field every plug-in declares (default 0, see :data:`SEED_MAX`).

    Args:
        help_text: what the seed drives in this plug-in; the accepted range is appended.
    """
    return dataclasses.field(
        default=0, metadata={"help": f"{help_text}; an integer 0 .. {SEED_MAX}"}
    )


def check_seed(plugin_name: str, seed: int) -> None:
    """Raise :class:`ConfigError` unless ``seed`` is an integer in ``0 .. SEED_MAX``."""
    # A numpy integer has been converted by type_options: random.Random takes only an int.
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{plugin_name!r}: option seed={seed!r} must be an integer")
    check_range(plugin_name, "seed", seed, 0, SEED_MAX)
