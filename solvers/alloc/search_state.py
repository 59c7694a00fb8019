"""State of the exact search: its constants, set-up, undo and re-ranking helpers.

Used by :mod:`.search_kernel`, whose docstring explains the search. The state lives in
flat arrays so that a numba kernel can stop after a node budget and resume later:

* ``offset``/``minoff`` per buffer (-1: unplaced; lowest offset above placed neighbours),
* ``floor``/``total`` per section, ``cuts`` per section boundary,
* a frame stack (``ftype``, ``fsa``, ...), pools for partition lists and candidates,
* a trail of (kind, index, old value) records to undo placements.
"""

from __future__ import annotations

import numpy as np

from memplan.solvers.alloc._jit import njit
from memplan.solvers.alloc.intervals import align_up

SEARCH, DECOMP = 0, 1
NONE, SUCCESS, FAIL = 0, 1, 2
# Return codes of :func:`run`.
SOLVED, INFEASIBLE, PAUSED, NEED_PLIST, NEED_CAND, NEED_TRAIL = 0, 1, 2, 3, 4, 5
# Trail record kinds.
T_PLACE, T_MINOFF, T_FLOOR, T_RANK = 0, 1, 2, 3
# Slots of the scalar state array ``st``.
(
    ST_DEPTH,
    ST_SIGNAL,
    ST_TRAIL,
    ST_PLIST,
    ST_CAND,
    ST_NODES,
    ST_BACKTRACKS,
    ST_STAMP,
    ST_ATTEMPTS,
) = range(9)
ST_LEN = 9


@njit
def min_offset_of(
    b: int,
    floor_: int,
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    near_fixed: np.ndarray,
) -> int:
    """Lowest aligned offset >= ``floor_`` for ``b`` that misses its fixed neighbours."""
    o = align_up(floor_, align[b])
    if not near_fixed[b]:
        return o
    moved = True
    while moved:
        moved = False
        for j in range(ptr[b], ptr[b + 1]):
            a = adj[j]
            if fixed[a] >= 0 and fixed[a] < o + size[b] and o < fixed[a] + size[a]:
                o = align_up(fixed[a] + size[a], align[b])
                moved = True
    return o


@njit
def init_state(
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    sec_lo: np.ndarray,
    sec_hi: np.ndarray,
    near_fixed: np.ndarray,
    rank: np.ndarray,
    offset: np.ndarray,
    minoff: np.ndarray,
    floor: np.ndarray,
    total: np.ndarray,
    cuts: np.ndarray,
    plist: np.ndarray,
    st: np.ndarray,
    ftype: np.ndarray,
    fsa: np.ndarray,
    fsb: np.ndarray,
    fpl: np.ndarray,
    fpln: np.ndarray,
    fnext: np.ndarray,
    fexp: np.ndarray,
    fpbase: np.ndarray,
    fcbase: np.ndarray,
) -> None:
    """Set up the search state: fixed buffers placed, root DECOMP frame over all sections."""
    n = size.shape[0]
    n_sec = floor.shape[0]
    floor[:] = 0
    total[:] = 0
    cuts[:] = 0
    st[:] = 0
    count = 0
    order = np.argsort(rank)
    for t in range(n):
        b = order[t]
        if fixed[b] >= 0 or size[b] == 0:
            offset[b] = fixed[b] if fixed[b] >= 0 else 0
            continue
        offset[b] = -1
        plist[count] = b
        count += 1
        for s in range(sec_lo[b], sec_hi[b]):
            total[s] += size[b]
        for s in range(sec_lo[b], sec_hi[b] - 1):
            cuts[s] += 1
    for t in range(count):
        b = plist[t]
        minoff[b] = min_offset_of(b, 0, size, align, fixed, ptr, adj, near_fixed)
    for s in range(n_sec):
        floor[s] = -1
    for t in range(count):
        b = plist[t]
        for s in range(sec_lo[b], sec_hi[b]):
            if floor[s] < 0 or minoff[b] < floor[s]:
                floor[s] = minoff[b]
    for s in range(n_sec):
        if floor[s] < 0:
            floor[s] = 0
    st[ST_PLIST] = count
    ftype[0] = DECOMP
    fsa[0] = 0
    fsb[0] = n_sec
    fpl[0] = 0
    fpln[0] = count
    fnext[0] = 0
    fexp[0] = 1
    fpbase[0] = 0
    fcbase[0] = 0
    st[ST_DEPTH] = 1
    st[ST_SIGNAL] = NONE


@njit
def undo(
    mark: int,
    size: np.ndarray,
    sec_lo: np.ndarray,
    sec_hi: np.ndarray,
    offset: np.ndarray,
    minoff: np.ndarray,
    floor: np.ndarray,
    total: np.ndarray,
    cuts: np.ndarray,
    trail_kind: np.ndarray,
    trail_idx: np.ndarray,
    trail_val: np.ndarray,
    st: np.ndarray,
    rank: np.ndarray,
) -> None:
    """Roll the state back to trail length ``mark``."""
    t = st[ST_TRAIL]
    while t > mark:
        t -= 1
        kind = trail_kind[t]
        i = trail_idx[t]
        if kind == T_PLACE:
            offset[i] = -1
            for s in range(sec_lo[i], sec_hi[i]):
                total[s] += size[i]
            for s in range(sec_lo[i], sec_hi[i] - 1):
                cuts[s] += 1
        elif kind == T_MINOFF:
            minoff[i] = trail_val[t]
        elif kind == T_FLOOR:
            floor[i] = trail_val[t]
        else:
            rank[i] = trail_val[t]
    st[ST_TRAIL] = t


@njit
def rerank(
    seg: np.ndarray,
    keys: np.ndarray,
    n_keys: int,
    size: np.ndarray,
    sec_lo: np.ndarray,
    sec_hi: np.ndarray,
    total: np.ndarray,
    width: np.ndarray,
    rank: np.ndarray,
    trail_kind: np.ndarray,
    trail_idx: np.ndarray,
    trail_val: np.ndarray,
    st: np.ndarray,
) -> None:
    """Re-sort a new sub-partition ``seg`` by the pre-ordering ``keys`` and re-rank it.

    Like MiniMalloc's per-partition pre-ordering, the T key (largest section total)
    uses the *current* unplaced totals. Keys (most significant first): 0 = T,
    1 = lifetime W, 2 = area A, 3 = size Z; all descending, ties keep the old order.
    Old ranks go on the trail.
    """
    cnt = seg.shape[0]
    order = np.arange(cnt)
    vals = np.empty(cnt, np.int64)
    for k in range(n_keys - 1, -1, -1):
        code = keys[k]
        for t in range(cnt):
            b = seg[order[t]]
            if code == 0:
                v = 0
                for s in range(sec_lo[b], sec_hi[b]):
                    if total[s] > v:
                        v = total[s]
            elif code == 1:
                v = width[b]
            elif code == 2:
                v = width[b] * size[b]
            else:
                v = size[b]
            vals[t] = -v
        perm = np.argsort(vals, kind="mergesort")
        order = order[perm]
    new = seg[order].copy()
    t0 = st[ST_TRAIL]
    for t in range(cnt):
        b = new[t]
        seg[t] = b
        trail_kind[t0 + t] = T_RANK
        trail_idx[t0 + t] = b
        trail_val[t0 + t] = rank[b]
        rank[b] = t
    st[ST_TRAIL] = t0 + cnt
