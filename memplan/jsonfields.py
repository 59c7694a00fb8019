"""Reading a parsed JSON object field by field, each field checked for its type once.

Files memplan reads (plan files first) are checked at the boundary: every field is
asked for with the type it must have, and a missing or mistyped field raises an
:class:`~memplan.errors.InputFormatError` of one line that names the file, the field
(by its dotted path) and what is expected::

    fields = JsonObject.of(data, "plan.json")
    budget = fields.optional_object("budget")          # missing or null -> None
    spec = budget.text("spec") if budget else None
    # plan.json: field 'budget' must be an object, got 'MH'
    # plan.json: residency #3: missing field 'leave' (expected drop or store)

JSON numbers are checked strictly: ``true`` is not an integer, ``1.0`` is not an
integer, and ``NaN`` or ``Infinity`` (which Python's JSON reader accepts) are not
numbers.

:func:`parse_json` reads the text of such a file: what Python's JSON reader accepts
without a word (a key given twice in one object: the last one wins) or fails on with a
traceback (nesting thousands of levels deep, an integer of more than 4,300 digits) is
an :class:`~memplan.errors.InputFormatError` of one line instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memplan.errors import InputFormatError

_MISSING: Any = object()


class RepeatedKeyError(Exception):
    """A JSON object names one key twice (raised by :func:`refuse_repeated_keys`; each
    reader words it for its file)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: the object's dict, or :class:`RepeatedKeyError` for a key
    given twice (``{"offset": 0, "offset": 4096}`` was read as offset 4096)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise RepeatedKeyError(key)
        data[key] = value
    return data


def parse_json(text: str, source: str) -> Any:
    """``json.loads(text)`` for a file memplan reads, naming ``source`` in every error.

    A leading UTF-8 byte order mark (which some editors write) is skipped. Malformed JSON
    raises :class:`json.JSONDecodeError`, as ``json.loads`` does, for the caller to word
    with its line and column.

    Raises:
        json.JSONDecodeError: the text is not JSON.
        InputFormatError: a key given twice in one object (``json.loads`` keeps the last
            one silently), lists or objects nested too deeply for the reader, or an
            integer of more digits than Python converts (each a traceback before).
    """
    try:
        return json.loads(text.removeprefix("\ufeff"), object_pairs_hook=refuse_repeated_keys)
    except json.JSONDecodeError:
        raise
    except RepeatedKeyError as error:
        raise InputFormatError(
            f"{source}: field {error.key!r} is given more than once in one JSON object (a "
            "JSON reader keeps the last one without a word); give each field once"
        ) from None
    except RecursionError:
        raise InputFormatError(
            f"{source}: lists or objects nested too deeply to read (thousands of levels); "
            "no memplan file nests more than a few levels, so this one is corrupt"
        ) from None
    except ValueError:  # int() refuses an integer of more than 4,300 digits
        raise InputFormatError(
            f"{source}: an integer of more than 4,300 digits, too long to read; no field "
            "of a memplan file needs more than 20 digits, so this one is corrupt"
        ) from None


def describe(value: Any) -> str:
    """A short JSON-flavoured description of ``value`` for messages: ``'MH'``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True, slots=True)
class JsonObject:
    """A JSON object whose fields are read with their expected types.

    ``where`` names the file and, for a nested object read by position, which one
    (``"plan.json: residency #3"``); ``prefix`` is the dotted path of this object's
    fields (``"budget."``), so messages name ``'budget.capacity_bytes'``.
    """

    data: Mapping[str, Any]  # the parsed JSON object
    where: str  # the file (and item) for messages
    prefix: str = ""  # dotted path to this object, with a trailing dot; "" at the top

    @staticmethod
    def of(value: Any, where: str, name: str = "") -> JsonObject:
        """``value`` as a :class:`JsonObject`; ``name`` is its dotted path ("" for a whole
        file or an item named by ``where``).

        Raises:
            InputFormatError: ``value`` is not a JSON object.
        """
        if not isinstance(value, Mapping):
            what = f": field {name!r}" if name else ""
            raise InputFormatError(f"{where}{what} must be an object, got {describe(value)}")
        return JsonObject(value, where, f"{name}." if name else "")

    def path(self, key: str) -> str:
        """The dotted path of field ``key``, for messages."""
        return self.prefix + key

    def has(self, key: str) -> bool:
        """Whether field ``key`` is present (even as null)."""
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        """Field ``key`` unchecked (``default`` when missing); for free-form content."""
        return self.data.get(key, default)

    def error(self, key: str, expected: str) -> InputFormatError:
        """The error for field ``key`` missing or not being ``expected``."""
        if key not in self.data:
            return InputFormatError(
                f"{self.where}: missing field {self.path(key)!r} (expected {expected})"
            )
        return InputFormatError(
            f"{self.where}: field {self.path(key)!r} must be {expected}, "
            f"got {describe(self.data[key])}"
        )

    def integer(self, key: str, *, minimum: int | None = None, default: Any = _MISSING) -> int:
        """An integer field (``default`` if missing, when given), at least ``minimum``."""
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        value = self.data.get(key, default)
        if not _is_int(value) or (minimum is not None and value < minimum):
            raise self.error(key, expected)
        return int(value)

    def optional_integer(self, key: str, *, minimum: int | None = None) -> int | None:
        """An integer field that may be missing or null (then None)."""
        if self.data.get(key) is None:
            return None
        return self.integer(key, minimum=minimum)

    def number(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        default: Any = _MISSING,
    ) -> float:
        """A finite number (``default`` if missing, when given), from ``minimum`` to
        ``maximum`` (each bound inclusive, when given)."""
        if minimum is not None and maximum is not None:
            expected = f"a finite number from {minimum:g} to {maximum:g}"
        elif minimum is not None:
            expected = f"a finite number >= {minimum:g}"
        elif maximum is not None:
            expected = f"a finite number <= {maximum:g}"
        else:
            expected = "a finite number"
        value = self.data.get(key, default)
        if (
            not _is_number(value)
            or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
        ):
            raise self.error(key, expected)
        return float(value)

    def optional_number(
        self, key: str, *, minimum: float | None = None, maximum: float | None = None
    ) -> float | None:
        """A finite number that may be missing or null (then None)."""
        if self.data.get(key) is None:
            return None
        return self.number(key, minimum=minimum, maximum=maximum)

    def refuse_unknown(self, known: Collection[str]) -> None:
        """Refuse fields other than ``known``: a misspelt optional field (``ofset``)
        would otherwise be ignored without a word.

        Raises:
            InputFormatError: naming the unknown fields by their dotted paths, and the
                known ones.
        """
        unknown = [key for key in self.data if key not in known]
        if unknown:
            names = ", ".join(repr(self.path(str(key))) for key in unknown)
            raise InputFormatError(
                f"{self.where}: unknown field{'s' if len(unknown) > 1 else ''} {names} "
                f"(known: {', '.join(known)}); remove it or correct its spelling"
            )

    def text(
        self, key: str, *, choices: Sequence[str] | None = None, default: Any = _MISSING
    ) -> str:
        """A string field (``default`` if missing, when given), one of ``choices`` if given."""
        expected = f"one of {', '.join(choices)}" if choices else "a string"
        value = self.data.get(key, default)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise self.error(key, expected)
        return value

    def optional_text(self, key: str) -> str | None:
        """A string field that may be missing or null (then None)."""
        if self.data.get(key) is None:
            return None
        return self.text(key)

    def object(self, key: str) -> JsonObject:
        """A required object field."""
        value = self.data.get(key, _MISSING)
        if not isinstance(value, Mapping):
            raise self.error(key, "an object")
        return JsonObject(value, self.where, f"{self.path(key)}.")

    def optional_object(self, key: str) -> JsonObject | None:
        """An object field that may be missing or null (then None)."""
        if self.data.get(key) is None:
            return None
        return self.object(key)

    def array(self, key: str, expected: str = "a list") -> list[Any]:
        """A required list field; ``expected`` describes it for messages."""
        value = self.data.get(key, _MISSING)
        if not isinstance(value, list):
            raise self.error(key, expected)
        return value

    def strings(self, key: str, what: str = "strings") -> list[str]:
        """A required list of strings; ``what`` names them (``"op names"``)."""
        values = self.array(key, f"a list of {what}")
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise InputFormatError(
                    f"{self.where}: field {self.path(key)!r}: item #{i} must be a string, "
                    f"got {describe(value)} (expected a list of {what})"
                )
        return values
