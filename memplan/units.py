"""Byte quantities (parsing ``512KiB`` / ``2MB`` / ``65536``, printing them back) and durations."""

from __future__ import annotations

import math
import re

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

_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str, what: str = "size") -> int:
    """Parse a byte quantity: ``65536``, ``512KiB``, ``2MB`` (SI), ``1.5MiB``, ``64k``.

    ``kB/MB/GB`` are powers of 1000, ``KiB/MiB/GiB`` (and bare ``k/M/G``) powers of 1024.
    """
    match = _QUANTITY.match(text)
    if not match:
        raise ConfigError(
            f"{what} {text!r} is not a byte quantity; write e.g. 65536, 512KiB, 2MB or 1.5MiB"
        )
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise ConfigError(
            f"{what} {text!r} has unknown unit {unit!r}; use B, kB, MB, GB, KiB, MiB or GiB"
        )
    value = float(number) * factor
    if value != int(value):
        raise ConfigError(f"{what} {text!r} is not a whole number of bytes")
    return int(value)


def format_bytes(n: float) -> str:
    """Short human form with binary units: ``1.50 MiB``, ``512 B``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def align_up(n: int, alignment: int) -> int:
    """Smallest multiple of ``alignment`` that is >= ``n``."""
    return -(-n // alignment) * alignment


def check_seconds(flag: str, seconds: float, *, allow_zero: bool = False) -> float:
    """Return ``seconds`` if it is a finite duration > 0 (>= 0 with ``allow_zero``).

    NaN and infinity are refused: a NaN limit compares false with every clock reading,
    so a loop guarded by it never stops.

    Raises:
        ConfigError: naming ``flag`` (e.g. ``--time-limit``) and the value.
    """
    low_ok = seconds >= 0 if allow_zero else seconds > 0
    if not (low_ok and math.isfinite(seconds)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{flag} must be a finite number of seconds {bound}, got {seconds}")
    return seconds
