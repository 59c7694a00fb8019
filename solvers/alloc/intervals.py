"""Interval structures shared by the allocators, built by one sweep over time.

* :class:`Packed`: the buffers as flat int64 arrays (a named tuple: the form every
  kernel takes).
* Overlap graph in CSR form: ``ptr[b]:ptr[b+1]`` indexes the buffers live at some step
  together with ``b``. One sweep, O(n log n + pairs).
* Sections: the maximal sets of buffers live at one step (the maximal cliques of the
  interval graph), in time order. Each buffer spans a contiguous range of sections
  ``[sec_lo, sec_hi)``; any feasible packing must fit every section's total size::

      step    0   1   2   3   4   5
      b0      [=======)
      b1          [===========)
      b2                  [=======)
      section  s0: {b0, b1}   s1: {b1, b2}

Zero-size buffers never collide with anything; callers leave them out of the structures
and place them at offset 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from memplan.dsa import Buffer
from memplan.solvers.jit import Kernel, KernelChoice, inline_kernel, kernel

I64 = np.int64


class Packed(NamedTuple):
    """Buffers as flat arrays, plus the overlap graph and sections of the non-empty ones."""

    lower: np.ndarray  # int64[n]: first live step of each buffer
    upper: np.ndarray  # int64[n]: first dead step (exclusive)
    size: np.ndarray  # int64[n]: bytes
    align: np.ndarray  # int64[n]: required offset alignment in bytes (>= 1)
    fixed: np.ndarray  # int64[n]: imposed offset in bytes, or -1
    ptr: np.ndarray  # int64[n+1]: CSR row pointers of the overlap graph
    adj: np.ndarray  # int32[pairs*2]: CSR neighbours (buffers live at a common step)
    sec_lo: np.ndarray  # int64[n]: first section of each buffer (-1 for size 0)
    sec_hi: np.ndarray  # int64[n]: one past its last section (-1 for size 0)
    sec_total: np.ndarray  # int64[S]: total size of the buffers in each section

    @property
    def n(self) -> int:
        """Number of buffers."""
        return int(self.size.shape[0])

    @property
    def max_live(self) -> int:
        """Largest total size live at one step (the lower bound on any height)."""
        return int(self.sec_total.max()) if self.sec_total.size else 0


def pack(buffers: Sequence[Buffer], kernels: KernelChoice | None = None) -> Packed:
    """Return the flat-array form of ``buffers`` with its overlap graph and sections.

    ``kernels`` picks the Python or compiled sweep (default: Python).
    """
    return pack_arrays(*flat_arrays(buffers), kernels=kernels)


def flat_arrays(
    buffers: Sequence[Buffer],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(lower, upper, size, align, fixed)`` of ``buffers`` as int64 arrays.

    ``fixed`` is -1 for a buffer without a fixed offset.
    """
    n = len(buffers)
    lower = np.fromiter((b.lower for b in buffers), I64, n)
    upper = np.fromiter((b.upper for b in buffers), I64, n)
    size = np.fromiter((b.size_bytes for b in buffers), I64, n)
    align = np.fromiter((b.alignment_bytes for b in buffers), I64, n)
    fixed = np.fromiter(
        (-1 if b.fixed_offset_bytes is None else b.fixed_offset_bytes for b in buffers), I64, n
    )
    return lower, upper, size, align, fixed


def pack_arrays(
    lower: np.ndarray,
    upper: np.ndarray,
    size: np.ndarray,
    align: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    kernels: KernelChoice | None = None,
) -> Packed:
    """Like :func:`pack`, from arrays (``align`` defaults to 1, ``fixed`` to -1)."""
    run = kernels or Kernel.python
    n = int(size.shape[0])
    lower, upper, size = (np.ascontiguousarray(a, dtype=I64) for a in (lower, upper, size))
    align = np.ones(n, I64) if align is None else np.ascontiguousarray(align, dtype=I64)
    fixed = np.full(n, -1, I64) if fixed is None else np.ascontiguousarray(fixed, dtype=I64)
    events = sweep_events(lower, upper, size)
    ptr, adj = run(overlap_csr)(events, n)
    sec_lo, sec_hi, n_sec = run(sections)(events, n)
    diff = np.zeros(n_sec + 1, I64)
    live = size > 0
    np.add.at(diff, sec_lo[live], size[live])
    np.add.at(diff, sec_hi[live], -size[live])
    sec_total = np.cumsum(diff[:n_sec])
    return Packed(lower, upper, size, align, fixed, ptr, adj, sec_lo, sec_hi, sec_total)


def overlap_counts(lower: np.ndarray, upper: np.ndarray, size: np.ndarray) -> tuple[int, int]:
    """Return ``(pairs, spans)`` without building anything big (numpy, O(n log n)).

    ``pairs``: buffers live at a common step (the overlap graph has ``2 * pairs``
    entries). ``spans``: the sum over buffers of the sections each one spans (the size
    of the exact search's section membership lists).
    """
    events = sweep_events(lower, upper, size)
    n = size.shape[0]
    if events.size == 0:
        return 0, 0
    starts = events >= n
    active_before = np.cumsum(np.where(starts, 1, -1)) - np.where(starts, 1, -1)
    pairs = int(active_before[starts].sum())
    # A section closes at the first end after a start: number the sections as the sweep does.
    closes = ~starts & np.concatenate(([False], starts[:-1]))
    section_at = np.cumsum(closes)  # sections closed before or at each event
    first = np.empty(n, I64)
    first[events[starts] - n] = section_at[starts]
    last = np.empty(n, I64)
    last[events[~starts]] = section_at[~starts]
    live = size > 0
    spans = int((last[live] - first[live]).sum())
    return pairs, spans


def sweep_events(lower: np.ndarray, upper: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Return the sweep's events in time order: ``e < n`` ends buffer e, ``e >= n`` starts e-n.

    At equal steps, ends come first (lifetimes are half-open). Zero-size buffers are
    left out.
    """
    n = size.shape[0]
    keep = np.concatenate([size > 0, size > 0])
    times = np.concatenate([upper, lower])
    kinds = np.concatenate([np.zeros(n, I64), np.ones(n, I64)])
    order = np.lexsort((kinds, times))
    return order[keep[order]].astype(I64)


@kernel
def overlap_csr(events: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the overlap graph ``(ptr, adj)`` in CSR form from the sweep ``events``."""
    deg = np.zeros(n, np.int64)
    active = np.empty(n, np.int64)
    pos = np.full(n, -1, np.int64)
    na = 0
    for e in events:
        if e < n:
            p = pos[e]
            last = active[na - 1]
            active[p] = last
            pos[last] = p
            na -= 1
        else:
            b = e - n
            deg[b] += na
            for k in range(na):
                deg[active[k]] += 1
            active[na] = b
            pos[b] = na
            na += 1
    ptr = np.zeros(n + 1, np.int64)
    for b in range(n):
        ptr[b + 1] = ptr[b] + deg[b]
    fill = ptr[:n].copy()
    adj = np.empty(ptr[n], np.int32)
    na = 0
    for e in events:
        if e < n:
            p = pos[e]
            last = active[na - 1]
            active[p] = last
            pos[last] = p
            na -= 1
        else:
            b = e - n
            for k in range(na):
                a = active[k]
                adj[fill[b]] = a
                fill[b] += 1
                adj[fill[a]] = b
                fill[a] += 1
            active[na] = b
            pos[b] = na
            na += 1
    return ptr, adj


@kernel
def sections(events: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(sec_lo, sec_hi, count)``: each buffer's range of maximal cross sections.

    A section closes at the first end that follows a start, so sections are exactly the
    maximal sets of simultaneously live buffers.
    """
    sec_lo = np.full(n, -1, np.int64)
    sec_hi = np.full(n, -1, np.int64)
    count = 0
    pending = False
    for e in events:
        if e >= n:
            sec_lo[e - n] = count
            pending = True
        else:
            if pending:
                count += 1
                pending = False
            sec_hi[e] = count
    return sec_lo, sec_hi, count


@inline_kernel
def align_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment``."""
    r = value % alignment
    return value if r == 0 else value + alignment - r


@kernel
def lowest_fit(p: Packed, b: int, floor: int) -> int:
    """Lowest aligned offset >= ``floor`` where ``b`` misses every *fixed* neighbour."""
    size, align, fixed, ptr, adj = p.size, p.align, p.fixed, p.ptr, p.adj
    o = align_up(floor, align[b])
    moved = True
    while moved:
        moved = False
        top = o + size[b]
        for j in range(ptr[b], ptr[b + 1]):
            a = adj[j]
            if fixed[a] >= 0:
                fo = fixed[a]
                ft = fo + size[a]
                if fo < top and o < ft:
                    o = align_up(ft, align[b])
                    top = o + size[b]
                    moved = True
    return o
