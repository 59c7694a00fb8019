"""Placement kernels of the greedy allocators (Python, or numba-compiled for speed).

Two ways to place buffers one at a time:

* in order (:func:`in_order_steps`): take buffers in a given order; put each into a
  gap between the already placed buffers it overlaps in time: the first gap that fits
  (first fit) or the smallest one (best fit), else on top of them. This is the engine
  of TFLite's greedy-by-size, XLA's heap simulator, ONNX Runtime's arena and first-fit
  decreasing.
* lowest first (:func:`lowest_first_steps`): MiniMalloc's search without backtracking:
  always place the buffer that can sit lowest (ties by a rank), on top of what is under
  it.

Fixed-offset buffers are placed before anything else. A pass is resumable: its state
is ``offsets`` (-1 while unplaced) and the control array ``ctl`` (plus, lowest first,
the lowest offsets and the heap); each ``*_steps`` call places buffers until it has
visited about ``work`` overlap-graph entries, so the caller can look at the clock and
the stop event between calls. On a 62,000-buffer trace with 180 million overlapping
pairs one pass takes a minute; a time limit must be able to cut it.
"""

from __future__ import annotations

import numpy as np

from memplan.solvers.alloc.intervals import Packed, align_up, lowest_fit
from memplan.solvers.jit import kernel

#: Slots of a pass's control array ``ctl``: next position in the order (in order), the
#: height so far, the heap's length (lowest first).
POS, HEIGHT, HEAP_LEN = range(3)
CTL_LEN = 3


@kernel
def _place_fixed(p: Packed, offsets: np.ndarray) -> int:
    """Put fixed buffers (and zero-size ones, at 0) in ``offsets``; return their height."""
    size, fixed = p.size, p.fixed
    height = 0
    for b in range(size.shape[0]):
        if fixed[b] >= 0:
            offsets[b] = fixed[b]
            if size[b] > 0 and fixed[b] + size[b] > height:
                height = fixed[b] + size[b]
        elif size[b] == 0:
            offsets[b] = 0
    return height


@kernel
def start_pass(p: Packed, offsets: np.ndarray, ctl: np.ndarray) -> None:
    """Start a pass: nothing placed but the fixed (and zero-size) buffers."""
    offsets[:] = -1
    ctl[:] = 0
    ctl[HEIGHT] = _place_fixed(p, offsets)


@kernel
def _gap_for(
    p: Packed, b: int, best_fit: bool, offsets: np.ndarray, nb_off: np.ndarray, nb_top: np.ndarray
) -> int:
    """The offset of ``b`` in the first (or best-fitting) gap among its placed neighbours."""
    size, ptr, adj = p.size, p.ptr, p.adj
    k = 0
    for j in range(ptr[b], ptr[b + 1]):
        a = adj[j]
        o = offsets[a]
        if o >= 0:
            nb_off[k] = o
            nb_top[k] = o + size[a]
            k += 1
    s, al = size[b], p.align[b]
    best = -1
    cur = 0
    best_gap = -1
    perm = np.argsort(nb_off[:k], kind="mergesort")
    for t in range(k):
        q = perm[t]
        no = nb_off[q]
        if no > cur:
            cand = align_up(cur, al)
            if cand + s <= no:
                gap = no - cur
                if not best_fit:
                    return cand
                if best_gap < 0 or gap < best_gap:
                    best_gap = gap
                    best = cand
        if nb_top[q] > cur:
            cur = nb_top[q]
    return best if best >= 0 else align_up(cur, al)


@kernel
def in_order_steps(
    p: Packed, order: np.ndarray, best_fit: bool, offsets: np.ndarray, ctl: np.ndarray, work: int
) -> bool:
    """Place the next buffers of ``order`` into gaps; True once the order is done.

    Args:
        p: the buffers and their overlap graph.
        order: buffer indices, each once (fixed and zero-size ones are skipped).
        best_fit: choose the smallest gap that fits (else the lowest).
        offsets: the pass's offsets, int64[n] (see :func:`start_pass`).
        ctl: the pass's control array.
        work: overlap-graph entries to visit in this call, about.
    """
    ptr = p.ptr
    max_deg = 0
    for b in range(ptr.shape[0] - 1):
        max_deg = max(max_deg, ptr[b + 1] - ptr[b])
    nb_off = np.empty(max_deg + 1, np.int64)
    nb_top = np.empty(max_deg + 1, np.int64)
    pos, height, spent = ctl[POS], ctl[HEIGHT], 0
    while pos < order.shape[0] and spent < work:
        b = order[pos]
        pos += 1
        if offsets[b] >= 0:
            continue
        spent += 1 + ptr[b + 1] - ptr[b]
        o = _gap_for(p, b, best_fit, offsets, nb_off, nb_top)
        offsets[b] = o
        height = max(height, o + p.size[b])
    ctl[POS], ctl[HEIGHT] = pos, height
    return pos >= order.shape[0]


@kernel
def _heap_push(heap: np.ndarray, n: int, off: int, rank: int, buf: int) -> int:
    """Push (off, rank, buf) on the min-heap ``heap[:n]`` (by offset, then rank).

    Returns the new length. Parents move down into the hole until the entry fits.
    """
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        p_off, p_rank = heap[parent, 0], heap[parent, 1]
        if p_off < off or (p_off == off and p_rank <= rank):
            break
        heap[i, 0], heap[i, 1], heap[i, 2] = p_off, p_rank, heap[parent, 2]
        i = parent
    heap[i, 0], heap[i, 1], heap[i, 2] = off, rank, buf
    return n + 1


@kernel
def _heap_pop(heap: np.ndarray, n: int) -> int:
    """Remove the root of the heap ``heap[:n]`` (read it first); return the new length.

    The last entry sinks from the root: smaller children move up into the hole.
    """
    n -= 1
    off, rank, buf = heap[n, 0], heap[n, 1], heap[n, 2]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (
            heap[c + 1, 0] < heap[c, 0]
            or (heap[c + 1, 0] == heap[c, 0] and heap[c + 1, 1] < heap[c, 1])
        ):
            c += 1
        if off < heap[c, 0] or (off == heap[c, 0] and rank <= heap[c, 1]):
            break
        heap[i, 0], heap[i, 1], heap[i, 2] = heap[c, 0], heap[c, 1], heap[c, 2]
        i = c
    heap[i, 0], heap[i, 1], heap[i, 2] = off, rank, buf
    return n


@kernel
def start_lowest_first(
    p: Packed,
    rank: np.ndarray,
    offsets: np.ndarray,
    min_off: np.ndarray,
    heap: np.ndarray,
    ctl: np.ndarray,
) -> None:
    """Start a lowest-first pass: every free buffer queued at offset 0.

    ``min_off`` is int64[n] and ``heap`` int64[n + 1, 3]; see :func:`lowest_first_steps`.
    """
    start_pass(p, offsets, ctl)
    min_off[:] = 0
    hn = 0
    for b in range(offsets.shape[0]):
        if offsets[b] < 0:
            hn = _heap_push(heap, hn, 0, rank[b], b)
    ctl[HEAP_LEN] = hn


@kernel
def lowest_first_steps(
    p: Packed,
    rank: np.ndarray,
    offsets: np.ndarray,
    min_off: np.ndarray,
    heap: np.ndarray,
    ctl: np.ndarray,
    work: int,
) -> bool:
    """Repeatedly place the buffer that can sit lowest (ties: lowest ``rank``).

    A buffer's lowest offset is the top of its highest placed neighbour (aligned, and
    pushed past fixed buffers). Lowest offsets only grow, so the heap holds one entry
    per unplaced buffer whose key may lag behind: placing a buffer raises its
    neighbours' ``min_off`` without touching the heap, and an entry that reaches the
    root with an old key goes back in with its current one. The root with a current
    key is then the true minimum. The heap stays at n entries (not one per overlapping
    pair: 730 million on a 62,000-buffer trace). Returns True once every buffer is placed.
    """
    size, align, ptr, adj = p.size, p.align, p.ptr, p.adj
    hn, height, spent = ctl[HEAP_LEN], ctl[HEIGHT], 0
    while hn > 0 and spent < work:
        off = heap[0, 0]
        b = heap[0, 2]
        hn = _heap_pop(heap, hn)
        spent += 1
        if off != min_off[b]:
            hn = _heap_push(heap, hn, min_off[b], rank[b], b)  # an old key: re-queue
            continue
        o = lowest_fit(p, b, off)
        if o != off:
            min_off[b] = o
            hn = _heap_push(heap, hn, o, rank[b], b)
            continue
        offsets[b] = o
        height = max(height, o + size[b])
        top = o + size[b]
        spent += ptr[b + 1] - ptr[b]
        for j in range(ptr[b], ptr[b + 1]):
            a = adj[j]
            if offsets[a] < 0 and min_off[a] < top:
                min_off[a] = align_up(top, align[a])
    ctl[HEAP_LEN], ctl[HEIGHT] = hn, height
    return hn == 0


@kernel
def place_lowest_first(p: Packed, rank: np.ndarray, offsets: np.ndarray) -> int:
    """A whole lowest-first pass (see :func:`lowest_first_steps`); returns the height."""
    n = offsets.shape[0]
    min_off = np.zeros(n, np.int64)
    heap = np.empty((n + 1, 3), np.int64)  # (lowest offset, rank, buffer) per entry
    ctl = np.zeros(CTL_LEN, np.int64)
    start_lowest_first(p, rank, offsets, min_off, heap, ctl)
    lowest_first_steps(p, rank, offsets, min_off, heap, ctl, 1 << 62)
    return ctl[HEIGHT]
