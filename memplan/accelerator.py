"""The accelerator spec (PROBLEM.md section 2): scratchpad, DRAM, compute, energy.

Specs are TOML (or JSON) files whose field names carry their units::

    name = "edge-npu"
    capacity_bytes = 1048576          # scratchpad size
    alignment_bytes = 64              # every offset is a multiple of this
    dram_bytes_per_s = 8.5e9          # DRAM <-> scratchpad bandwidth
    mac_per_s = 5.12e11               # compute throughput
    dram_energy_j_per_byte = 100e-12  # energy per byte moved to/from DRAM
    sram_energy_j_per_byte = 5e-12    # energy per scratchpad byte read or written
    mac_energy_j = 0.23e-12           # energy per multiply-accumulate
    timing_model = "overlap"          # latency model: serial | overlap (PROBLEM.md s. 7)

``capacity_bytes`` and ``alignment_bytes`` are integers (``1e6`` or ``64.0`` is refused:
a float cannot hold every byte count exactly), capacity ``0 .. 2^63-1`` and alignment
``1 .. 2^40`` (:data:`MAX_ALIGNMENT_BYTES`); rates are finite and at least 1 per second
(:data:`MIN_RATE`), energies finite, >= 0 and at most 1 J (:data:`MAX_ENERGY_J`). A bad
value is one :class:`~memplan.errors.ConfigError` naming the file and field.

``timing_model`` names how latency is computed: ``serial`` (DMA and compute one after
the other) or ``overlap`` (one DMA engine beside the compute unit, see
:mod:`memplan.timing`); a spec without it means ``serial``.

Named presets live in ``memplan/presets/*.toml`` (see :func:`preset_names`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from memplan.errors import ConfigError, InputFormatError
from memplan.frozen import refuse_assignment
from memplan.jsonfields import RepeatedKeyError, refuse_repeated_keys
from memplan.units import MAX_BYTES, brief_repr

DEFAULT_PRESET = "edge-npu"

#: Names of the timing models (:mod:`memplan.timing`); the first is a spec's default.
TIMING_MODELS = ("serial", "overlap")

#: The largest ``alignment_bytes`` accepted: 2^40 bytes (1 TiB). Real alignments are
#: hardware granules (a cache line, a DMA burst, a bank or a page), far below it. The
#: limit keeps aligned sizes inside the 64-bit range the planner computes in: a graph
#: holds at most 2^50 bytes (:data:`memplan.ir.MAX_GRAPH_BYTES`), and rounding each of
#: up to 2^22 tensors up by less than 2^40 adds less than 2^62, so every sum of aligned
#: sizes (a peak, M_R, the capacity an infeasible result advises) stays below 2^63-1.
MAX_ALIGNMENT_BYTES = 1 << 40

_BYTE_LIMITS = {  # integer fields: (smallest, largest, how the largest is written)
    "capacity_bytes": (0, MAX_BYTES, f"2^63-1 = {MAX_BYTES}"),
    "alignment_bytes": (1, MAX_ALIGNMENT_BYTES, f"2^40 = {MAX_ALIGNMENT_BYTES}"),
}
_RATE_FIELDS = ("dram_bytes_per_s", "mac_per_s")  # finite and >= MIN_RATE
_ENERGY_FIELDS = ("dram_energy_j_per_byte", "sram_energy_j_per_byte", "mac_energy_j")  # >= 0

#: The smallest rate accepted (1 byte or 1 MAC per second), and the largest energy (1 J
#: per byte or MAC). Real figures are GB/s, GMAC/s and pJ, many orders of magnitude
#: inside. The limits keep every latency and energy finite: a graph moves below 2^72
#: bytes and computes below 2^122 MACs (:data:`memplan.ir.MAX_OP_MACS`), so a time or an
#: energy stays below 1e37, where a bandwidth of 1e-320 B/s made the latency ``inf``
#: (written as ``Infinity``, which is no JSON, into plan files that no reader accepted).
MIN_RATE = 1.0
MAX_ENERGY_J = 1.0
_UNITS = {
    "dram_bytes_per_s": "bytes per second",
    "mac_per_s": "MACs per second",
    "dram_energy_j_per_byte": "joules per byte",
    "sram_energy_j_per_byte": "joules per byte",
    "mac_energy_j": "joules per MAC",
}


def _is_finite(value: numbers.Real) -> bool:
    """``math.isfinite`` that also answers for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _field_problem(field_name: str, value: object) -> str | None:
    """What is wrong with ``value`` for ``field_name`` (a phrase naming it), or None."""
    if field_name == "name":
        if not isinstance(value, str):
            return f"name must be a string, got {brief_repr(value)}"
    elif field_name == "timing_model":
        if not isinstance(value, str) or value not in TIMING_MODELS:
            return f"timing_model {brief_repr(value)} is not one of {', '.join(TIMING_MODELS)}"
    elif field_name in _BYTE_LIMITS:
        low, high, high_text = _BYTE_LIMITS[field_name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return (
                f"{field_name} must be an integer, got {brief_repr(value)}; "
                f"write a whole number of bytes from {low} to {high_text}"
            )
        count = int(value)
        if count < low:
            return f"{field_name} must be >= {low}, got {brief_repr(count)}"
        if count > high:
            return f"{field_name} must be <= {high_text}, got {brief_repr(count)}"
    else:
        rate = field_name in _RATE_FIELDS
        allowed = "> 0" if rate else ">= 0"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"{field_name} must be a number {allowed}, got {brief_repr(value)}"
        if not _is_finite(value):
            return f"{field_name} must be a finite number {allowed}, got {brief_repr(value)}"
        if (value <= 0) if rate else (value < 0):
            return f"{field_name} must be {allowed}, got {brief_repr(value)}"
        if rate and float(value) < MIN_RATE:
            return (
                f"{field_name} must be at least {MIN_RATE:g} ({_UNITS[field_name]}), got "
                f"{brief_repr(value)}; the field is in {_UNITS[field_name]} (8.5 GB/s is 8.5e9)"
            )
        if not rate and float(value) > MAX_ENERGY_J:
            return (
                f"{field_name} must be at most {MAX_ENERGY_J:g} ({_UNITS[field_name]}), got "
                f"{brief_repr(value)}; the field is in {_UNITS[field_name]} (100 pJ is 100e-12)"
            )
    return None


def _check_fields(values: Mapping[str, object], where: str) -> None:
    """Raise a :class:`ConfigError` ``"<where>: <field> must ..."`` for the first bad field."""
    for field_name, value in values.items():
        problem = _field_problem(field_name, value)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")


@refuse_assignment("make another: dataclasses.replace(accelerator, capacity_bytes=...)")
@dataclass(frozen=True, slots=True)
class Accelerator:
    """A scratchpad in front of DRAM, with rates and energies for the cost model.

    Every field is checked on construction (:class:`~memplan.errors.ConfigError` naming
    the field): ``capacity_bytes`` an integer in ``0 .. 2^63-1``, ``alignment_bytes`` an
    integer in ``1 .. 2^40`` (:data:`MAX_ALIGNMENT_BYTES`), rates finite and at least 1
    per second, energies finite and from 0 to 1 J (bools and strings are no numbers).
    Integers are stored as ``int`` and rates and energies as ``float`` (a numpy scalar is
    accepted).
    """

    name: str  # spec or preset name
    capacity_bytes: int  # scratchpad size in bytes
    alignment_bytes: int = 64  # every offset is a multiple of this many bytes
    dram_bytes_per_s: float = 8.5e9  # DRAM bandwidth, bytes per second
    mac_per_s: float = 5.12e11  # multiply-accumulates per second
    dram_energy_j_per_byte: float = 100e-12  # joules per byte moved to or from DRAM
    sram_energy_j_per_byte: float = 5e-12  # joules per scratchpad byte read or written
    mac_energy_j: float = 0.23e-12  # joules per multiply-accumulate
    timing_model: str = TIMING_MODELS[0]  # latency model: serial | overlap (no unit)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        _check_fields(values, f"accelerator {brief_repr(self.name)}")
        for field_name in _BYTE_LIMITS:  # a numpy integer becomes an int (JSON-ready)
            object.__setattr__(self, field_name, int(values[field_name]))
        for field_name in _RATE_FIELDS + _ENERGY_FIELDS:
            object.__setattr__(self, field_name, float(values[field_name]))

    def with_capacity(self, capacity_bytes: int) -> Accelerator:
        """The same accelerator with another scratchpad size (an integer, 0 .. 2^63-1).

        Raises:
            ConfigError: ``capacity_bytes`` is no integer (a float, a string, None) or
                out of range; it is checked, not truncated.
        """
        return dataclasses.replace(self, capacity_bytes=capacity_bytes)

    def with_timing_model(self, timing_model: str) -> Accelerator:
        """The same accelerator with another timing model (``serial`` or ``overlap``)."""
        return dataclasses.replace(self, timing_model=timing_model)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the same keys as the TOML form)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: Mapping[str, Any], source: str = "<accelerator>") -> Accelerator:
        """Build from a dictionary with the TOML form's keys; errors name ``source``.

        Raises:
            ConfigError: ``data`` is no mapping, has unknown or missing fields, or a field
                has a bad value; the one-line message names ``source`` and the field.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{source}: not an accelerator spec (expected an object/table of fields, "
                f"got {_kind(data)})"
            )
        allowed = {f.name for f in dataclasses.fields(Accelerator)}
        unknown = sorted(str(key) for key in data if key not in allowed)
        if unknown:
            raise ConfigError(
                f"{source}: unknown field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        if "capacity_bytes" not in data:
            raise ConfigError(f"{source}: missing field capacity_bytes (scratchpad size in bytes)")
        values = dict(data)
        values.setdefault("name", Path(source).stem)
        _check_fields(values, source)
        return Accelerator(**values)


def _kind(value: object) -> str:
    """A JSON/TOML reader's word for the type of ``value`` (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def preset_names() -> list[str]:
    """Names of the bundled accelerator presets."""
    folder = resources.files("memplan") / "presets"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_accelerator(name_or_path: str | Path) -> Accelerator:
    """Load a preset by name, or a spec from a ``.toml`` / ``.json`` file.

    Raises:
        ConfigError: not a preset name or a path (None, a number, an Accelerator), or
            no such preset or file.
        InputFormatError: the file is not UTF-8 text, not valid TOML or JSON, or (JSON)
            gives a field twice.
    """
    if not isinstance(name_or_path, str | os.PathLike):
        raise ConfigError(
            "load_accelerator: pass a preset name "
            f"({', '.join(preset_names())}) or a .toml/.json file path, "
            f"got {type(name_or_path).__name__}"
        )
    text_name = str(name_or_path)
    if text_name in preset_names():
        resource = resources.files("memplan") / "presets" / f"{text_name}.toml"
        return Accelerator.from_dict(tomllib.loads(resource.read_text(encoding="utf-8")), text_name)
    path = Path(name_or_path)
    if not path.exists():
        raise ConfigError(
            f"accelerator {text_name!r} is neither a preset ({', '.join(preset_names())}) "
            "nor an existing .toml/.json file"
        )
    try:
        data_bytes = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read accelerator spec ({error.strerror})") from None
    try:
        raw = data_bytes.decode("utf-8-sig")  # the spec's encoding, whatever the locale's
    except UnicodeDecodeError as error:
        raise InputFormatError(
            f"{path}: not UTF-8 text (byte 0x{data_bytes[error.start]:02x} at offset "
            f"{error.start}), so not a TOML/JSON accelerator spec; pass a preset name "
            f"({', '.join(preset_names())}) or a .toml/.json spec file"
        ) from None
    try:
        data = (
            json.loads(raw, object_pairs_hook=refuse_repeated_keys)
            if path.suffix.lower() == ".json"  # spec.JSON was read as TOML
            else tomllib.loads(raw)
        )
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        how = "JSON" if path.suffix.lower() == ".json" else "TOML (a .json name is read as JSON)"
        raise InputFormatError(
            f"{path}: not a valid accelerator spec: {error}; it was read as {how}"
        ) from None
    except RepeatedKeyError as error:
        raise InputFormatError(
            f"{path}: field {error.key!r} is given more than once (JSON keeps the last, TOML "
            "refuses it); give each field once"
        ) from None
    except RecursionError:  # was a traceback, from either reader
        raise InputFormatError(
            f"{path}: lists or tables nested too deeply to read (thousands of levels); "
            "an accelerator spec is one flat table of numbers, so this file is corrupt"
        ) from None
    except ValueError:  # int() refuses an integer of more than 4,300 digits: a traceback
        raise InputFormatError(
            f"{path}: an integer of more than 4,300 digits, too long to read; no field of "
            "an accelerator spec needs more than 20 digits, so this file is corrupt"
        ) from None
    return Accelerator.from_dict(data, str(path))
