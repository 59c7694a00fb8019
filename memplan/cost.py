"""The cost model (PROBLEM.md section 4): traffic first, then latency and energy.

Traffic counts bytes between DRAM and the scratchpad: ``load`` residencies,
``store`` residencies and, in ``activations`` scope, weights streamed once per use.
``non_compulsory_bytes`` (traffic minus what any plan must move) is the primary score.

The latency comes from a named timing model (:mod:`memplan.timing`): ``serial`` (per
step ``t``, ``macs / mac_per_s`` plus the DMA time of the bytes loaded for ``t``, the
weights streamed for ``t`` and the bytes stored after ``t``) or ``overlap`` (one DMA
engine beside the compute unit). ``latency_s`` is the chosen model's figure (the
accelerator's ``timing_model`` unless the caller names one); the cost reports both.
Energy charges DRAM bytes, scratchpad bytes (each op reads its inputs and writes its
outputs on chip; loads write and stores read the scratchpad) and MACs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memplan.errors import ConfigError, InvalidPlanError
from memplan.frozen import refuse_assignment
from memplan.plan import Plan, check_plan_fields
from memplan.problem import Problem, require_problem
from memplan.timing import check_timing_model, plan_arrays, run_model
from memplan.units import format_bytes, format_joules, format_seconds


@refuse_assignment("a cost is computed by evaluate(problem, plan)")
@dataclass(frozen=True, slots=True)
class Cost:
    """The scores of one plan."""

    traffic_bytes: int  # all DRAM <-> scratchpad bytes (loads + stores + streamed weights)
    loaded_bytes: int  # bytes of 'load' residencies
    stored_bytes: int  # bytes of 'store' residencies
    streamed_weight_bytes: int  # weights read from DRAM per use (activations scope)
    compulsory_bytes: int  # what any valid plan must move
    non_compulsory_bytes: int  # traffic - compulsory: the primary score (COSMA's objective)
    peak_bytes: int  # highest offset + size used: the scratchpad the plan really needs
    max_live_bytes: int  # highest sum of resident sizes at one step
    latency_s: float  # seconds under `timing_model`
    energy_j: float  # DRAM, scratchpad and MAC energy
    timing_model: str = "serial"  # the timing model of latency_s: serial | overlap
    serial_latency_s: float | None = None  # seconds, DMA and compute one after the other
    overlap_latency_s: float | None = None  # seconds, one DMA engine beside the compute

    def latency_under(self, model: str) -> float:
        """Seconds under timing model ``model`` (``serial`` or ``overlap``).

        Raises:
            ConfigError: for an unknown model, or one this cost was not computed under
                (a cost read from an old plan file knows only its own model).
        """
        value = {"serial": self.serial_latency_s, "overlap": self.overlap_latency_s}[
            check_timing_model(model)
        ]
        if model == self.timing_model:
            return self.latency_s
        if value is None:
            raise ConfigError(
                f"this cost has no {model} latency (it was computed under {self.timing_model} "
                "only); score the plan again with memplan score"
            )
        return value

    def latency_text(self, digits: int = 4) -> str:
        """``1.234 ms (overlap; serial 2.345 ms)``: the chosen model's figure first, each
        with ``digits`` significant digits in s, ms, us or ns (a fixed ``0.002 ms`` showed
        a small model's two latencies as equal when they were 2.164 and 2.197 us)."""
        latencies = {"serial": self.serial_latency_s, "overlap": self.overlap_latency_s}
        others = "".join(
            f"; {model} {format_seconds(value, digits)}"
            for model, value in latencies.items()
            if model != self.timing_model and value is not None
        )
        return f"{format_seconds(self.latency_s, digits)} ({self.timing_model}{others})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Cost:
        """Inverse of :meth:`to_dict`; a dictionary without timing fields is ``serial``."""
        values = dict(data)
        if "timing_model" not in values:
            values.setdefault("serial_latency_s", values.get("latency_s"))
        return Cost(**values)

    def to_text(self) -> str:
        """A few readable lines."""
        return "\n".join(
            [
                f"non-compulsory traffic {format_bytes(self.non_compulsory_bytes)} "
                f"({self.non_compulsory_bytes} B)",
                f"compulsory traffic     {format_bytes(self.compulsory_bytes)} "
                f"({self.compulsory_bytes} B)",
                f"total traffic          {format_bytes(self.traffic_bytes)} "
                f"(loads {format_bytes(self.loaded_bytes)}, stores "
                f"{format_bytes(self.stored_bytes)}, streamed weights "
                f"{format_bytes(self.streamed_weight_bytes)})",
                f"peak                   {format_bytes(self.peak_bytes)} "
                f"(max live {format_bytes(self.max_live_bytes)})",
                f"latency                {self.latency_text()}",
                f"energy                 {format_joules(self.energy_j)}",
            ]
        )

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        from memplan.views import html_of

        return html_of(self, "cost")


def evaluate(problem: Problem, plan: Plan, timing_model: str | None = None) -> Cost:
    """Score ``plan`` (assumed valid: see :func:`memplan.validate.validate`).

    Args:
        problem: the problem the plan solves.
        plan: the plan to score.
        timing_model: the model of ``latency_s`` (``serial`` or ``overlap``); default:
            the accelerator's ``timing_model``. Both latencies are reported either way.

    Raises:
        ConfigError: ``problem`` is not a Problem, or the timing model is unknown.
        InvalidPlanError: ``plan`` is not shaped like a plan of ``problem``: a field of
            the wrong type (op names in the order, an ``offset`` of 1.5, an ``arrive``
            that is no :class:`~memplan.plan.Arrive`), an order that is not a
            permutation of its ops, a residency outside its tensors or steps, or one
            that moves fewer bytes than the compulsory ones.
    """
    acc = require_problem(problem, "evaluate").accelerator
    chosen = check_timing_model(acc.timing_model if timing_model is None else timing_model)
    if not isinstance(plan, Plan):
        raise InvalidPlanError(f"evaluate: expected a memplan Plan, got {type(plan).__name__}")
    # Op names in the order failed deep inside (ValueError, TypeError), and an offset of
    # 1.5 or an arrive of "x" was scored as if valid: refuse them as validate does.
    # Measured: 0.6 ms of an 8 ms evaluate of randwire_ws_large's greedy plan (2,117 stays).
    check_plan_fields(plan, "evaluate")
    arrays = plan_arrays(problem, plan)
    n = arrays.num_steps
    sizes = arrays.size_bytes
    loaded = int(sizes[arrays.is_load].sum())
    stored = int(sizes[arrays.is_store].sum())
    streamed = int(arrays.stream_size_bytes.sum())
    peak = int((arrays.offset + sizes).max(initial=0))
    live_delta = np.bincount(arrays.start, sizes, n + 1) - np.bincount(arrays.end, sizes, n + 1)
    max_live = int(np.cumsum(live_delta)[:-1].max()) if n else 0
    # Each op reads its distinct in-scope inputs and writes its outputs on chip.
    tensor_sizes = arrays.tensor_size_bytes
    produced = np.fromiter((p is not None for p in problem.graph.producer), bool, len(tensor_sizes))
    written = tensor_sizes[produced & np.asarray(problem.in_scope, dtype=bool)]
    on_chip_bytes = int(tensor_sizes[arrays.read_tensor].sum() + written.sum())
    traffic = loaded + stored + streamed
    compulsory = problem.compulsory_bytes()
    if traffic < compulsory:  # every valid plan moves them: a negative cost means nothing
        raise InvalidPlanError(
            f"evaluate: the plan moves {traffic} B, less than the {compulsory} B every valid "
            "plan moves (inputs loaded, outputs stored, weights streamed): it is not valid; "
            "memplan.validate lists what is wrong"
        )
    latencies = {model: run_model(problem, arrays, model) for model in ("serial", "overlap")}
    energy = (
        traffic * acc.dram_energy_j_per_byte
        + (on_chip_bytes + loaded + stored) * acc.sram_energy_j_per_byte
        + float(arrays.macs.sum()) * acc.mac_energy_j
    )
    return Cost(
        traffic_bytes=traffic,
        loaded_bytes=loaded,
        stored_bytes=stored,
        streamed_weight_bytes=streamed,
        compulsory_bytes=compulsory,
        non_compulsory_bytes=traffic - compulsory,
        peak_bytes=peak,
        max_live_bytes=max_live,
        latency_s=latencies[chosen],
        energy_j=float(energy),
        timing_model=chosen,
        serial_latency_s=latencies["serial"],
        overlap_latency_s=latencies["overlap"],
    )
