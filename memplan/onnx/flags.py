"""The import options as users write them: ``--input-shape``, ``--dim``, ``--input-value``.

``--input-shape name:1,3,224,224`` fixes a graph input's shape (the syntax onnxsim and
onnxslim use), ``--dim batch=1`` gives a symbolic dimension a size wherever it appears,
and ``--input-value sr:16000`` fixes the *value* of a small graph input (a sample rate,
a flag, a size), so the computations and ``If`` branches that depend on it fold away.
The parsers here check syntax only; :mod:`memplan.onnx.shapes` checks the values against
the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
        return float(word)
    except ValueError:
        raise ConfigError(
            f"--input-value {item!r}: {word!r} is not a number or true/false; "
            "write e.g. --input-value sr:16000"
        ) from None


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
