"""A packing without the overlap graph: best fit during one sweep over time.

The greedy and exact allocators work on the overlap graph, which has one entry per
pair of buffers live at a common step: quadratic in the buffers on a dense instance
(20,000 buffers all live at once: 200 million pairs, 1.6 GB and about 20 s to build).
This sweep needs only the buffers live at the current step. It visits the starts and
ends of the free buffers in time order (ends first at equal steps: lifetimes are
half-open; at one step larger buffers start first) and keeps the free address ranges
of that step, the way a ``malloc`` free list does: a start takes the smallest free range
that fits (best fit; the lowest of equal ones), an end gives its range back, merged
with its free neighbours. A buffer placed at its start is live in the list until its end, so
every later buffer avoids it: the packing is valid by construction.

Fixed buffers are left where they are and the free ones go above the highest of them
(simple and always valid; the sweep is the fallback of dense instances, which rarely
fix offsets). Zero-size buffers sit at offset 0 (or their fixed offset).

The work is O(n log n) (sorted lists: the inserts move memory, quickly) plus the
ranges that fit by size but not by alignment. The budget is checked every
:data:`CHECK_WORK` steps; a stopped sweep falls back to :func:`stacked_offsets`, the
free buffers one above the other (O(n), always valid), so a packing always comes back.
"""

from __future__ import annotations

import bisect

import numpy as np

from memplan.solver import Budget

I64 = np.int64

#: Sweep steps (events plus free ranges scanned) between two looks at the budget.
CHECK_WORK = 50_000

#: The end of the highest free range, which has no end (above every 64-bit offset).
UNBOUNDED = 1 << 64


def _add_range(
    lo: int, hi: int, ends: dict[int, int], starts: list[int], by_length: list[tuple[int, int]]
) -> None:
    """Record the free range ``[lo, hi)``."""
    ends[lo] = hi
    bisect.insort(starts, lo)
    bisect.insort(by_length, (hi - lo, lo))


def _drop_range(
    lo: int, ends: dict[int, int], starts: list[int], by_length: list[tuple[int, int]]
) -> int:
    """Forget the free range starting at ``lo``; return its end."""
    hi = ends.pop(lo)
    del starts[bisect.bisect_left(starts, lo)]
    del by_length[bisect.bisect_left(by_length, (hi - lo, lo))]
    return hi


def fixed_top(size: np.ndarray, fixed: np.ndarray) -> int:
    """The highest byte used by a fixed buffer (0 without any)."""
    placed = (fixed >= 0) & (size > 0)
    return int((fixed[placed] + size[placed]).max()) if placed.any() else 0


def stacked_offsets(size: np.ndarray, align: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Every free buffer above the previous one (aligned), all above the fixed ones."""
    offsets = np.where(fixed >= 0, fixed, 0).astype(I64)
    top = fixed_top(size, fixed)
    for b in np.nonzero((fixed < 0) & (size > 0))[0].tolist():
        a = int(align[b])
        o = -(-top // a) * a
        offsets[b] = o
        top = o + int(size[b])
    return offsets


def sweep_offsets(
    lower: np.ndarray,
    upper: np.ndarray,
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    budget: Budget,
) -> tuple[np.ndarray, bool]:
    """Return ``(offsets, swept)``: the best-fit sweep's packing (see the module
    docstring), or the stacked one with ``swept`` False when the budget stopped it."""
    offsets = np.where(fixed >= 0, fixed, 0).astype(I64)
    free = np.nonzero((fixed < 0) & (size > 0))[0]
    m = int(free.size)
    if m == 0:
        return offsets, True
    times = np.concatenate([upper[free], lower[free]])
    kinds = np.concatenate([np.zeros(m, I64), np.ones(m, I64)])  # ends first at a step
    sizes = np.concatenate([np.zeros(m, I64), -size[free]])  # larger starts first
    which = np.concatenate([free, free])
    order = np.lexsort((which, sizes, kinds, times))
    events = (which[order] + np.where(kinds[order] == 1, len(size), 0)).tolist()
    n = len(size)
    size_l, align_l = size.tolist(), align.tolist()
    out = [0] * n
    # The free ranges [lo, hi) of the current step, disjoint: ``ends`` maps each lo to
    # its hi, ``starts`` holds the lo's sorted (to find the neighbours of a range given
    # back), ``by_length`` holds (hi - lo, lo) sorted (to find the best fit). The
    # highest range is unbounded: it starts at the top of the live buffers.
    base = fixed_top(size, fixed)
    ends: dict[int, int] = {base: UNBOUNDED}
    starts: list[int] = [base]
    by_length: list[tuple[int, int]] = [(UNBOUNDED - base, base)]
    work = CHECK_WORK  # look at the budget first: a spent one stacks at once
    for e in events:
        if work >= CHECK_WORK:
            work = 0
            if budget.should_stop():
                return stacked_offsets(size, align, fixed), False
        work += 1
        if e >= n:  # a start: the smallest free range it fits in (the lowest of those)
            b = e - n
            s, a = size_l[b], align_l[b]
            first = k = bisect.bisect_left(by_length, (s, -1))
            while True:
                length, lo = by_length[k]
                o = lo if a == 1 else -(-lo // a) * a
                if o + s <= lo + length:
                    break
                k += 1
            work += k - first
            del by_length[k]
            hi = ends.pop(lo)
            del starts[bisect.bisect_left(starts, lo)]
            if o > lo:
                _add_range(lo, o, ends, starts, by_length)
            if o + s < hi:
                _add_range(o + s, hi, ends, starts, by_length)
            out[b] = o
        else:  # an end: give the range back, merged with its free neighbours
            lo = out[e]
            hi = lo + size_l[e]
            k = bisect.bisect_left(starts, lo)
            if k < len(starts) and starts[k] == hi:  # the range above is free
                hi = _drop_range(hi, ends, starts, by_length)
            if k > 0 and ends[starts[k - 1]] == lo:  # the range below is free
                below = starts[k - 1]
                _drop_range(below, ends, starts, by_length)
                lo = below
            _add_range(lo, hi, ends, starts, by_length)
    result = np.asarray(out, dtype=I64)
    keep = ~((fixed < 0) & (size > 0))
    result[keep] = offsets[keep]
    return result, True
