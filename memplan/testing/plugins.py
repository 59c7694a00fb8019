"""Protocol checks every plug-in class passes, whatever its kind (solver or allocator).

A plug-in is a frozen dataclass with a ``name``, its options documented in
``metadata["help"]``, unknown options refused, and the one seed range of
:data:`memplan.options.SEED_MAX` accepted (and nothing outside it).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memplan.errors import ConfigError
from memplan.options import SEED_MAX, describe_options

#: ``make(reference, options)``: builds a plug-in from a registry name or module:Class path.
Make = Callable[[str, Mapping[str, Any]], Any]


def check_plugin_class(cls: type, noun: str, ref: str, make: Make, required: Sequence[str]) -> None:
    """Assert the protocol of plug-in class ``cls`` (see the module docstring).

    Args:
        cls: the plug-in class.
        noun: ``solver`` or ``allocator``, for the messages.
        ref: how ``make`` finds it (a registry name or a ``module:Class`` path).
        make: the kind's factory (``make_solver`` or ``make_allocator``).
        required: the options every plug-in of the kind has.
    """
    assert dataclasses.is_dataclass(cls), f"{cls.__name__} must be a dataclass"
    params = getattr(cls, "__dataclass_params__", None)
    assert params is not None and params.frozen, f"{cls.__name__} must be frozen"
    assert isinstance(getattr(cls, "name", None), str), f"{cls.__name__}.name must be a str"
    hints = typing.get_type_hints(cls)
    for option in required:
        assert option in hints, f"{cls.__name__} must have a {option} option"
    for info in describe_options(cls):
        assert info.help, f"{cls.__name__}: option {info.name!r} has no metadata['help']"
    name = str(getattr(cls, "name", cls.__name__))
    try:
        make(ref, {"no_such_option_xyz": "1"})
    except ConfigError as error:
        assert "no_such_option_xyz" in str(error)
    else:
        raise AssertionError(f"{noun} {name!r} accepted an unknown option")
    for seed in (0, SEED_MAX):
        try:
            make(ref, {"seed": seed})
        except ConfigError as error:
            raise AssertionError(
                f"{noun} {name!r} refused seed={seed} (every {noun} accepts 0 .. {SEED_MAX}): "
                f"{error}"
            ) from None
    for seed in (-1, SEED_MAX + 1):
        try:
            make(ref, {"seed": seed})
        except ConfigError:
            continue
        raise AssertionError(f"{noun} {name!r} accepted seed={seed} (allowed: 0 .. {SEED_MAX})")
