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
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memplan.errors import InputFormatError

_MISSING: Any = object()


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
