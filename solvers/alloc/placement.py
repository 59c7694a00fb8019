"""Placement kernels of the greedy allocators (numba-compiled when available).

Two ways to place buffers one at a time:

* :func:`place_in_order`: take buffers in a given order; put each into a gap between
  the already placed buffers it overlaps in time: the first gap that fits (first fit)
  or the smallest one (best fit), else on top of them. This is the engine of TFLite's
  greedy-by-size, XLA's heap simulator, ONNX Runtime's arena and first-fit decreasing.
* :func:`place_lowest_first`: MiniMalloc's search without backtracking: always place
  the buffer that can sit lowest (ties by a rank), on top of what is under it.

Fixed-offset buffers are placed before anything else.
"""

from __future__ import annotations

import numpy as np

from memplan.solvers.alloc._jit import njit
from memplan.solvers.alloc.intervals import align_up, lowest_fit


@njit
def _place_fixed(size: np.ndarray, fixed: np.ndarray, offsets: np.ndarray) -> int:
    """Put fixed buffers (and zero-size ones, at 0) in ``offsets``; return their height."""
    height = 0
    for b in range(size.shape[0]):
        if fixed[b] >= 0:
            offsets[b] = fixed[b]
            if size[b] > 0 and fixed[b] + size[b] > height:
                height = fixed[b] + size[b]
        elif size[b] == 0:
            offsets[b] = 0
    return height


@njit
def place_in_order(
    order: np.ndarray,
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    best_fit: bool,
    offsets: np.ndarray,
) -> int:
    """Place buffers in ``order`` into gaps; fill ``offsets`` and return the height.

    Args:
        order: buffer indices, each once (fixed and zero-size ones are skipped).
        size, align, fixed: per-buffer bytes, alignment, fixed offset or -1.
        ptr, adj: the overlap graph in CSR form.
        best_fit: choose the smallest gap that fits (else the lowest).
        offsets: output, int64[n].
    """
    n = size.shape[0]
    offsets[:] = -1
    height = _place_fixed(size, fixed, offsets)
    max_deg = 0
    for b in range(n):
        d = ptr[b + 1] - ptr[b]
        if d > max_deg:
            max_deg = d
    nb_off = np.empty(max_deg + 1, np.int64)
    nb_top = np.empty(max_deg + 1, np.int64)
    for b in order:
        if offsets[b] >= 0:
            continue
        k = 0
        for j in range(ptr[b], ptr[b + 1]):
            a = adj[j]
            o = offsets[a]
            if o >= 0:
                nb_off[k] = o
                nb_top[k] = o + size[a]
                k += 1
        s = size[b]
        al = align[b]
        best = -1
        if k > 0:
            perm = np.argsort(nb_off[:k])
            cur = 0
            best_gap = -1
            for t in range(k):
                q = perm[t]
                no = nb_off[q]
                if no > cur:
                    cand = align_up(cur, al)
                    if cand + s <= no:
                        gap = no - cur
                        if not best_fit:
                            best = cand
                            break
                        if best_gap < 0 or gap < best_gap:
                            best_gap = gap
                            best = cand
                if nb_top[q] > cur:
                    cur = nb_top[q]
            if best < 0:
                best = align_up(cur, al)
        else:
            best = 0
        offsets[b] = best
        if best + s > height:
            height = best + s
    return height


@njit
def _heap_push(
    heap_off: np.ndarray,
    heap_rank: np.ndarray,
    heap_buf: np.ndarray,
    n: int,
    off: int,
    rank: int,
    buf: int,
) -> int:
    """Push (off, rank, buf) on the binary min-heap of length ``n``; return the new length."""
    i = n
    heap_off[i] = off
    heap_rank[i] = rank
    heap_buf[i] = buf
    while i > 0:
        p = (i - 1) >> 1
        if heap_off[p] < heap_off[i] or (
            heap_off[p] == heap_off[i] and heap_rank[p] <= heap_rank[i]
        ):
            break
        heap_off[p], heap_off[i] = heap_off[i], heap_off[p]
        heap_rank[p], heap_rank[i] = heap_rank[i], heap_rank[p]
        heap_buf[p], heap_buf[i] = heap_buf[i], heap_buf[p]
        i = p
    return n + 1


@njit
def _heap_pop(heap_off: np.ndarray, heap_rank: np.ndarray, heap_buf: np.ndarray, n: int) -> int:
    """Remove the root of the heap of length ``n`` (read it first); return the new length."""
    n -= 1
    heap_off[0] = heap_off[n]
    heap_rank[0] = heap_rank[n]
    heap_buf[0] = heap_buf[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (
            heap_off[c + 1] < heap_off[c]
            or (heap_off[c + 1] == heap_off[c] and heap_rank[c + 1] < heap_rank[c])
        ):
            c += 1
        if heap_off[i] < heap_off[c] or (
            heap_off[i] == heap_off[c] and heap_rank[i] <= heap_rank[c]
        ):
            break
        heap_off[c], heap_off[i] = heap_off[i], heap_off[c]
        heap_rank[c], heap_rank[i] = heap_rank[i], heap_rank[c]
        heap_buf[c], heap_buf[i] = heap_buf[i], heap_buf[c]
        i = c
    return n


@njit
def place_lowest_first(
    rank: np.ndarray,
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    offsets: np.ndarray,
) -> int:
    """Repeatedly place the buffer that can sit lowest (ties: lowest ``rank``).

    A buffer's lowest offset is the top of its highest placed neighbour (aligned, and
    pushed past fixed buffers). Uses a heap with lazy deletion: O(pairs log n).
    Fills ``offsets`` and returns the height.
    """
    n = size.shape[0]
    offsets[:] = -1
    height = _place_fixed(size, fixed, offsets)
    min_off = np.zeros(n, np.int64)
    cap = 2 * (n + ptr[n]) + 1
    heap_off = np.empty(cap, np.int64)
    heap_rank = np.empty(cap, np.int64)
    heap_buf = np.empty(cap, np.int64)
    hn = 0
    for b in range(n):
        if offsets[b] < 0:
            hn = _heap_push(heap_off, heap_rank, heap_buf, hn, 0, rank[b], b)
    while hn > 0:
        off = heap_off[0]
        b = heap_buf[0]
        hn = _heap_pop(heap_off, heap_rank, heap_buf, hn)
        if offsets[b] >= 0 or off != min_off[b]:
            continue  # placed already, or a stale entry
        o = lowest_fit(b, off, size, align, offsets, ptr, adj, fixed)
        if o != off:
            min_off[b] = o
            hn = _heap_push(heap_off, heap_rank, heap_buf, hn, o, rank[b], b)
            continue
        offsets[b] = o
        top = o + size[b]
        if top > height:
            height = top
        for j in range(ptr[b], ptr[b + 1]):
            a = adj[j]
            if offsets[a] < 0 and min_off[a] < top:
                min_off[a] = align_up(top, align[a])
                hn = _heap_push(heap_off, heap_rank, heap_buf, hn, min_off[a], rank[a], a)
    return height
