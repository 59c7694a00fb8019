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

``timing_model`` names how latency is computed: ``serial`` (DMA and compute one after
the other) or ``overlap`` (one DMA engine beside the compute unit, see
:mod:`memplan.timing`); a spec without it means ``serial``.

Named presets live in ``memplan/presets/*.toml`` (see :func:`preset_names`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from memplan.errors import ConfigError, InputFormatError

DEFAULT_PRESET = "edge-npu"

#: Names of the timing models (:mod:`memplan.timing`); the first is a spec's default.
TIMING_MODELS = ("serial", "overlap")


@dataclass(frozen=True, slots=True)
class Accelerator:
    """A scratchpad in front of DRAM, with rates and energies for the cost model."""

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
        if self.capacity_bytes < 0:
            raise ConfigError(
                f"accelerator {self.name!r}: capacity_bytes must be >= 0, got {self.capacity_bytes}"
            )
        if self.alignment_bytes < 1:
            raise ConfigError(
                f"accelerator {self.name!r}: alignment_bytes must be >= 1, "
                f"got {self.alignment_bytes}"
            )
        for field_name in (
            "dram_bytes_per_s",
            "mac_per_s",
        ):
            if getattr(self, field_name) <= 0:
                raise ConfigError(f"accelerator {self.name!r}: {field_name} must be > 0")
        for field_name in ("dram_energy_j_per_byte", "sram_energy_j_per_byte", "mac_energy_j"):
            if getattr(self, field_name) < 0:
                raise ConfigError(f"accelerator {self.name!r}: {field_name} must be >= 0")
        if self.timing_model not in TIMING_MODELS:
            raise ConfigError(
                f"accelerator {self.name!r}: timing_model {self.timing_model!r} is not one of "
                f"{', '.join(TIMING_MODELS)}"
            )

    def with_capacity(self, capacity_bytes: int) -> Accelerator:
        """The same accelerator with another scratchpad size."""
        return dataclasses.replace(self, capacity_bytes=int(capacity_bytes))

    def with_timing_model(self, timing_model: str) -> Accelerator:
        """The same accelerator with another timing model (``serial`` or ``overlap``)."""
        return dataclasses.replace(self, timing_model=timing_model)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the same keys as the TOML form)."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any], source: str = "<accelerator>") -> Accelerator:
        """Build from a dictionary with the TOML form's keys; errors name ``source``."""
        allowed = {f.name for f in dataclasses.fields(Accelerator)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(
                f"{source}: unknown field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        if "capacity_bytes" not in data:
            raise ConfigError(f"{source}: missing field capacity_bytes (scratchpad size in bytes)")
        values = dict(data)
        values.setdefault("name", Path(source).stem)
        key = ""
        try:
            for key in ("capacity_bytes", "alignment_bytes"):
                if key in values:
                    value = values[key]
                    if isinstance(value, bool | str) or int(value) != value:
                        raise ValueError(f"{key} must be an integer, got {value!r}")
                    values[key] = int(value)
            if "timing_model" in values and not isinstance(values["timing_model"], str):
                raise ValueError(f"timing_model must be one of {', '.join(TIMING_MODELS)}")
            numbers = allowed - {"name", "capacity_bytes", "alignment_bytes", "timing_model"}
            for key in sorted(numbers):
                if key in values:
                    value = values[key]
                    if isinstance(value, bool | str):
                        raise ValueError(f"{key} must be a number, got {value!r}")
                    values[key] = float(value)
        except OverflowError:
            raise ConfigError(f"{source}: {key} must be a finite number") from None
        except (TypeError, ValueError) as error:
            message = str(error) if str(error).startswith(key) else f"{key}: {error}"
            raise ConfigError(f"{source}: {message}") from None
        return Accelerator(**values)


def preset_names() -> list[str]:
    """Names of the bundled accelerator presets."""
    folder = resources.files("memplan") / "presets"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_accelerator(name_or_path: str | Path) -> Accelerator:
    """Load a preset by name, or a spec from a ``.toml`` / ``.json`` file."""
    text_name = str(name_or_path)
    if text_name in preset_names():
        resource = resources.files("memplan") / "presets" / f"{text_name}.toml"
        return Accelerator.from_dict(tomllib.loads(resource.read_text()), text_name)
    path = Path(name_or_path)
    if not path.exists():
        raise ConfigError(
            f"accelerator {text_name!r} is neither a preset ({', '.join(preset_names())}) "
            "nor an existing .toml/.json file"
        )
    try:
        raw = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read accelerator spec ({error.strerror})") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise InputFormatError(f"{path}: not a valid accelerator spec: {error}") from None
    return Accelerator.from_dict(data, str(path))
