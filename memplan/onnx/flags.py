"""The import options as users write them: ``--input-shape``, ``--dim``, ``--input-value``.

``--input-shape name:1,3,224,224`` fixes a graph input's shape (the syntax onnxsim and
onnxslim use), ``--dim batch=1`` gives a symbolic dimension a size wherever it appears,
and ``--input-value sr:16000`` fixes the *value* of a small graph input (a sample rate,
a flag, a size), so the computations and ``If`` branches that depend on it fold away.
The parsers here check syntax only, and :func:`checked_arguments` checks the types and
ranges of the options a Python caller passes (``dims={"batch": "x"}`` is a
:class:`~memplan.errors.ConfigError` naming the argument, not a ``TypeError`` deep inside);
:mod:`memplan.onnx.shapes` checks the values against the model.
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from memplan.errors import ConfigError

#: A value given with ``--input-value``: a whole number, a real number or a truth value.
Scalar = int | float | bool

_NAME_SHAPE = re.compile(r"^(?P<name>.+):(?P<dims>-?\d+(?:\s*,\s*-?\d+)*)?$")
_TRUTH = {"true": True, "false": False}


def parse_input_shapes(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME:D1,D2,...`` strings (``--input-shape``) into a name -> shape map.

    The name may itself contain ``:``; the shape is what follows the last one. An empty
    shape (``name:``) means a scalar.

    Raises:
        ConfigError: a malformed item, a non-positive dim, or a name given twice.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        text = item.strip()
        match = _NAME_SHAPE.match(text)
        if not match:
            raise ConfigError(
                f"--input-shape {item!r} is not NAME:D1,D2,...; "
                "write e.g. --input-shape input:1,3,224,224"
            )
        name = match.group("name")
        dims_text = match.group("dims")
        dims = tuple(int(d) for d in dims_text.split(",")) if dims_text else ()
        if any(d <= 0 for d in dims):
            raise ConfigError(
                f"--input-shape {item!r}: every dim must be a positive number of elements"
            )
        if name in shapes:
            raise ConfigError(f"--input-shape gives input {name!r} twice; give it once")
        shapes[name] = dims
    return shapes


def parse_dims(items: Iterable[str]) -> dict[str, int]:
    """Parse ``NAME=VALUE`` strings (``--dim``) into a symbolic-dim -> size map.

    Raises:
        ConfigError: a malformed item, a non-positive value, or a name given twice.
    """
    dims: dict[str, int] = {}
    for item in items:
        name, sep, value = item.strip().partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--dim {item!r} is not NAME=VALUE; write e.g. --dim batch=1")
        try:
            size = int(value.strip())
        except ValueError:
            raise ConfigError(
                f"--dim {item!r}: {value.strip()!r} is not a whole number; write e.g. --dim batch=1"
            ) from None
        if size <= 0:
            raise ConfigError(f"--dim {item!r}: the size must be a positive number of elements")
        if name in dims:
            raise ConfigError(f"--dim gives {name!r} twice; give it once")
        dims[name] = size
    return dims


def _scalar(text: str, item: str) -> Scalar:
    word = text.strip()
    if word.lower() in _TRUTH:
        return _TRUTH[word.lower()]
    try:
        return int(word)
    except ValueError:
        pass
    try:
        number = float(word)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(
            f"--input-value {item!r}: {word!r} is not a finite number or true/false; "
            "write e.g. --input-value sr:16000"
        )
    return number


def parse_input_values(items: Iterable[str]) -> dict[str, tuple[Scalar, ...]]:
    """Parse ``NAME:V1,V2,...`` strings (``--input-value``) into a name -> values map.

    One value fixes a scalar (or one-element) input; several fix a 1-D input or, in
    row-major order, an input whose shape is known. As with ``--input-shape`` the name may
    contain ``:``; the values follow the last one.

    Raises:
        ConfigError: a malformed item, a value that is not a number, or a name given twice.
    """
    values: dict[str, tuple[Scalar, ...]] = {}
    for item in items:
        name, sep, text = item.strip().rpartition(":")
        if not sep or not name or not text.strip():
            raise ConfigError(
                f"--input-value {item!r} is not NAME:VALUE[,VALUE...]; "
                "write e.g. --input-value sr:16000"
            )
        if name in values:
            raise ConfigError(f"--input-value gives input {name!r} twice; give it once")
        values[name] = tuple(_scalar(word, item) for word in text.split(","))
    return values


@dataclass(frozen=True, slots=True)
class ImportArguments:
    """The importer's options after :func:`checked_arguments`: plain Python values."""

    input_shapes: dict[str, tuple[int, ...]]  # fixed input shapes by input name, elements
    dims: dict[str, int]  # sizes of symbolic dims by name, in elements
    input_values: dict[str, tuple[Scalar, ...]]  # fixed values of small inputs by name
    dtype_bytes: int | None  # bytes per element for every tensor; None: the ONNX types
    aliases: bool  # view ops share their input's buffer


def _is_bool(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy bool."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"


def _positive_int(value: Any) -> int | None:
    """``value`` as an ``int`` if it is a positive whole number (an ``int`` or a numpy
    integer; never a bool, float or string), else None."""
    if _is_bool(value):
        return None
    try:
        number = operator.index(value)
    except TypeError:
        return None
    return number if number > 0 else None


def _scalar_value(value: Any) -> Scalar | None:
    """``value`` as a plain bool, int or finite float (numpy scalars too), else None."""
    if _is_bool(value):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return None


def _named(value: Any, argument: str, what: str, example: str) -> Mapping[str, Any]:
    """``value`` (None: empty) checked to be a mapping with non-empty string keys."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{argument} must be a mapping of {what}, e.g. {example}, got a {type(value).__name__}"
        )
    for key in value:
        if not isinstance(key, str) or not key:
            raise ConfigError(
                f"{argument} has the key {key!r}; the keys are names (non-empty strings), "
                f"e.g. {example}"
            )
    return value


def _sequence(value: Any) -> list[Any] | None:
    """The items of a list, tuple or array ``value`` (not a string or mapping), else None."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return None
    if getattr(value, "ndim", 1) == 0:
        return None
    return list(value)


def checked_arguments(
    *,
    input_shapes: Any = None,
    dims: Any = None,
    input_values: Any = None,
    dtype_bytes: Any = None,
    aliases: Any = True,
) -> ImportArguments:
    """Check the import options a Python caller passes and return them as plain values.

    Args:
        input_shapes: None or a mapping of input name to a sequence of positive whole
            numbers (an empty sequence: a scalar).
        dims: None or a mapping of symbolic dim name to a positive whole number.
        input_values: None or a mapping of input name to a non-empty sequence of numbers
            or bools.
        dtype_bytes: None or a positive whole number.
        aliases: True or False.

    Raises:
        ConfigError: naming the argument (and key) at fault and what is allowed.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    example = "{'input': (1, 3, 224, 224)}"
    given_shapes = _named(input_shapes, "input_shapes", "input name to shape", example)
    for name, shape in given_shapes.items():
        items = _sequence(shape)
        sizes = [_positive_int(d) for d in items] if items is not None else [None]
        if items is None or None in sizes:
            raise ConfigError(
                f"input_shapes[{name!r}] is {shape!r}; a shape is a sequence of positive whole "
                f"numbers of elements, e.g. {example}"
            )
        shapes[name] = tuple(d for d in sizes if d is not None)
    sizes_by_dim: dict[str, int] = {}
    for name, size in _named(dims, "dims", "symbolic dim name to size", "{'batch': 1}").items():
        number = _positive_int(size)
        if number is None:
            raise ConfigError(
                f"dims[{name!r}] is {size!r}; a dim size is a positive whole number of "
                f"elements, e.g. {{{name!r}: 1}}"
            )
        sizes_by_dim[name] = number
    values: dict[str, tuple[Scalar, ...]] = {}
    example = "{'sr': [16000]}"
    given_values = _named(input_values, "input_values", "input name to values", example)
    for name, given in given_values.items():
        items = _sequence(given)
        scalars = [_scalar_value(v) for v in items] if items else [None]
        if None in scalars:
            raise ConfigError(
                f"input_values[{name!r}] is {given!r}; the values are a non-empty sequence of "
                f"finite numbers or bools, e.g. {example}"
            )
        values[name] = tuple(v for v in scalars if v is not None)
    dtype = None
    if dtype_bytes is not None:
        dtype = _positive_int(dtype_bytes)
        if dtype is None:
            raise ConfigError(
                f"dtype_bytes is {dtype_bytes!r}; give a positive whole number of bytes per "
                "element (e.g. 1 for int8 hardware) or None for the ONNX element sizes"
            )
    if not isinstance(aliases, bool):
        raise ConfigError(f"aliases is {aliases!r}; give True or False")
    return ImportArguments(shapes, sizes_by_dim, values, dtype, aliases)
