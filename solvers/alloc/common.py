"""Helpers shared by the allocators: quick infeasibility proofs and result building."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from memplan.dsa import AllocationResult, AllocationStatus, Buffer
from memplan.solvers.alloc.intervals import Packed


def obvious_infeasibility(p: Packed, capacity_bytes: int | None) -> str | None:
    """Return why no packing can fit ``capacity_bytes`` when that is evident, else None.

    Evident means: the max live exceeds the capacity, a buffer is larger than it, or a
    fixed buffer ends above it.
    """
    if capacity_bytes is None:
        return None
    if p.max_live > capacity_bytes:
        return f"max live {p.max_live} B exceeds the capacity {capacity_bytes} B"
    tops = np.where(p.fixed >= 0, p.fixed + p.size, p.size)
    if p.n and int(tops.max()) > capacity_bytes:
        b = int(np.argmax(tops))
        what = "fixed buffer" if p.fixed[b] >= 0 else "buffer"
        return f"{what} #{b} needs bytes up to {int(tops[b])} > capacity {capacity_bytes} B"
    return None


def greedy_result(
    p: Packed,
    offsets: np.ndarray,
    height: int,
    capacity_bytes: int | None,
    algorithm: str,
    start: float,
) -> AllocationResult:
    """Build the result of a heuristic packing (SOLVED if it fits, else TIMEOUT)."""
    optimal = height <= p.max_live
    wall = time.perf_counter() - start
    offs = tuple(offsets.tolist())
    if capacity_bytes is None or height <= capacity_bytes:
        return AllocationResult(
            AllocationStatus.SOLVED, offs, int(height), p.max_live, optimal, algorithm, wall
        )
    why = obvious_infeasibility(p, capacity_bytes)
    if why is not None:
        return AllocationResult(
            AllocationStatus.INFEASIBLE,
            offs,
            int(height),
            p.max_live,
            optimal,
            algorithm,
            wall,
            f"infeasible: {why}",
        )
    return AllocationResult(
        AllocationStatus.TIMEOUT,
        offs,
        int(height),
        p.max_live,
        optimal,
        algorithm,
        wall,
        f"the heuristic packing is {height} B high, above the capacity {capacity_bytes} B; "
        "the exact search may still find one that fits",
    )


def empty_result(buffers: Sequence[Buffer], algorithm: str, start: float) -> AllocationResult:
    """Result for an input without buffers."""
    del buffers
    return AllocationResult(
        AllocationStatus.SOLVED, (), 0, 0, True, algorithm, time.perf_counter() - start
    )
