"""Byte quantities (parsing ``512KiB`` / ``2MB`` / ``65536``, printing them back) and durations."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

from memplan.errors import ConfigError

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}

#: The largest byte count memplan accepts (2^63-1): sizes, offsets and sums of sizes are
#: computed in 64-bit signed integers (numpy arrays, the allocators' kernels).
MAX_BYTES = (1 << 63) - 1

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str, what: str = "size", *, max_bytes: int | None = MAX_BYTES) -> int:
    """Parse a byte quantity: ``65536``, ``512KiB``, ``2MB`` (SI), ``1.5MiB``, ``64k``.

    ``kB/MB/GB`` are powers of 1000, ``KiB/MiB/GiB`` (and bare ``k/M/G``) powers of 1024.
    The value is computed exactly (decimal digits times the unit, no float rounding), so
    ``9223372036854775807`` stays that number; a fraction must come to a whole number of
    bytes (``1.5MiB`` does, ``1.5`` does not).

    Args:
        text: the quantity as written.
        what: what it is, for messages (e.g. ``"--capacity"``).
        max_bytes: the largest value allowed (default :data:`MAX_BYTES`); None = no limit.

    Raises:
        ConfigError: naming ``what`` and ``text``: bad syntax, an unknown unit, a
            fractional number of bytes, or a value above ``max_bytes``.
    """
    if not isinstance(text, str):
        raise ConfigError(
            f"{what} must be a string such as '65536', '512KiB' or '2MB', got {brief_repr(text)}"
        )
    match = _QUANTITY.match(text)
    if not match:
        raise ConfigError(
            f"{what} {brief_repr(text)} is not a byte quantity; "
            "write e.g. 65536, 512KiB, 2MB or 1.5MiB"
        )
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise ConfigError(
            f"{what} {brief_repr(text)} has unknown unit {unit!r}; "
            "use B, kB, MB, GB, KiB, MiB or GiB"
        )
    value = Fraction(Decimal(number)) * factor  # exact, whatever the number of digits
    if value.denominator != 1:
        raise ConfigError(f"{what} {brief_repr(text)} is not a whole number of bytes")
    if max_bytes is not None and value > max_bytes:
        limit = "2^63-1 = " if max_bytes == MAX_BYTES else ""
        raise ConfigError(
            f"{what} {brief_repr(text)} is above the largest size, {limit}{max_bytes} bytes"
        )
    return int(value)


def brief_repr(value: object, limit: int = 60) -> str:
    """``repr(value)`` for an error message, kept short and always printable.

    An integer too long to print (Python refuses ints of over 4300 digits) or to read
    is shown by its number of digits; any other repr is cut to ``limit`` characters.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"{'-' if value < 0 else ''}<an integer of about {digits} digits>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_bytes(n: float) -> str:
    """Short human form with binary units: ``1.50 MiB``, ``512 B``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_SI_PREFIXES = (("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12))


def format_si(value: float, unit: str, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits in ``unit``, or its milli, micro
    (``u``), nano or pico multiple, whichever puts it at 1 or above: ``2.164 us``,
    ``0 J``. A fixed ``0.002 ms`` hid the difference between two latencies of a
    small model, and a huge one printed as 300 digits."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    for prefix, factor in _SI_PREFIXES:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def format_seconds(value: float, digits: int = 4) -> str:
    """A time in seconds, readable: ``1.5 s``, ``2.164 us`` (see :func:`format_si`)."""
    return format_si(value, "s", digits)


def format_joules(value: float, digits: int = 4) -> str:
    """An energy in joules, readable: ``1.88 uJ`` (see :func:`format_si`)."""
    return format_si(value, "J", digits)


def align_up(n: int, alignment: int) -> int:
    """Smallest multiple of ``alignment`` that is >= ``n``."""
    return -(-n // alignment) * alignment


#: Longest duration a flag takes: a year. Longer ones overflowed the bench worker's
#: watchdog (``OverflowError`` in every cell at ``--time-limit 1e300``).
MAX_SECONDS = 365 * 24 * 3600


def check_seconds(
    flag: str, seconds: float, *, allow_zero: bool = False, alternative: str = ""
) -> float:
    """Return ``seconds`` if it is a finite duration > 0 (>= 0 with ``allow_zero``), at
    most :data:`MAX_SECONDS`.

    NaN and infinity are refused: a NaN limit compares false with every clock reading,
    so a loop guarded by it never stops. ``alternative`` names what the flag takes
    instead of a number (``none``, say), for the messages.

    Raises:
        ConfigError: naming ``flag`` (e.g. ``--time-limit``) and the value.
    """
    low_ok = seconds >= 0 if allow_zero else seconds > 0
    if not (low_ok and math.isfinite(seconds)):
        bound = ">= 0" if allow_zero else "> 0"
        instead = f" (or {alternative})" if alternative else ""
        raise ConfigError(
            f"{flag} must be a finite number of seconds {bound}{instead}, got {seconds:g}"
        )
    if seconds > MAX_SECONDS:
        instead = f", or {alternative}" if alternative else ""
        raise ConfigError(
            f"{flag} {seconds:g}: at most {MAX_SECONDS} seconds (a year); give a shorter "
            f"time{instead}"
        )
    return seconds
