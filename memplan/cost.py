"""The cost model (PROBLEM.md section 4): traffic first, then latency and energy.

Traffic counts bytes between DRAM and the scratchpad: ``load`` residencies,
``store`` residencies and, in ``activations`` scope, weights streamed once per use.
``non_compulsory_bytes`` (traffic minus what any plan must move) is the primary score.

Per step ``t`` the latency is ``macs / mac_per_s`` plus the DMA time of the bytes
loaded for ``t``, the weights streamed for ``t`` and the bytes stored after ``t``.
Energy charges DRAM bytes, scratchpad bytes (each op reads its inputs and writes its
outputs on chip; loads write and stores read the scratchpad) and MACs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem
from memplan.units import format_bytes


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
    latency_s: float  # compute + DMA time, no overlap between them
    energy_j: float  # DRAM, scratchpad and MAC energy

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Cost:
        """Inverse of :meth:`to_dict`."""
        return Cost(**data)

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
                f"latency                {self.latency_s * 1e3:.3f} ms",
                f"energy                 {self.energy_j * 1e3:.4f} mJ",
            ]
        )

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        from memplan.views import html_of

        return html_of(self, "cost")


def evaluate(problem: Problem, plan: Plan) -> Cost:
    """Score ``plan`` (assumed valid: see :func:`memplan.validate.validate`)."""
    graph, acc = problem.graph, problem.accelerator
    n = len(plan.order)
    sizes = [t.size_bytes for t in graph.tensors]
    dma_bytes = np.zeros(max(n, 1), dtype=np.float64)
    live_delta = np.zeros(n + 1, dtype=np.int64)
    loaded = stored = peak = 0
    for r in plan.residencies:
        size = sizes[r.tensor]
        peak = max(peak, r.offset + size)
        live_delta[r.start] += size
        live_delta[r.end] -= size
        if r.arrive is Arrive.LOAD:
            loaded += size
            dma_bytes[r.start] += size
        if r.leave is Leave.STORE:
            stored += size
            dma_bytes[r.end - 1] += size
    streamed = 0
    macs = np.zeros(max(n, 1), dtype=np.float64)
    on_chip_bytes = 0  # scratchpad bytes read and written by the ops themselves
    for step, op_id in enumerate(plan.order):
        op = graph.ops[op_id]
        weight_bytes = problem.streamed_weight_bytes(op_id)
        streamed += weight_bytes
        dma_bytes[step] += weight_bytes
        macs[step] = op.macs
        on_chip_bytes += sum(
            sizes[t] for t in (*dict.fromkeys(op.inputs), *op.outputs) if problem.in_scope[t]
        )
    traffic = loaded + stored + streamed
    compulsory = problem.compulsory_bytes()
    max_live = int(np.cumsum(live_delta)[:-1].max()) if n else 0
    latency = float((macs / acc.mac_per_s + dma_bytes / acc.dram_bytes_per_s).sum())
    energy = (
        traffic * acc.dram_energy_j_per_byte
        + (on_chip_bytes + loaded + stored) * acc.sram_energy_j_per_byte
        + float(macs.sum()) * acc.mac_energy_j
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
        latency_s=latency,
        energy_j=float(energy),
    )
