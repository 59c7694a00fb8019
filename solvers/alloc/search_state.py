"""State of the exact search: its layout, set-up, undo and re-ranking.

Used by :mod:`.search_kernel`, whose docstring explains the search. The state lives in
a few grouped int64 arrays, one row per field (``bst[OFFSET, b]``, ``sec[TOTAL, k]``,
``fr[SA, d]``), so that a kernel (Python or numba-compiled) takes about ten arrays,
can stop after a node budget and resume later. Plain arrays rather than named tuples
inside the kernels: numba reference-counts every array taken out of a tuple, which
made the search 1.5-3x slower on the MiniMalloc files.

* ``buf`` (read only, per buffer): size, alignment, fixed offset, sections, overlap
  graph row, lifetime, area, and whether it overlaps a fixed buffer;
* ``bst`` (per buffer): offset (-1 while unplaced), minoff (lowest offset above the
  placed neighbours), rank (order among candidates at one offset);
* ``sec`` (per section): floor, unplaced total, crossing buffers (cuts), stamp of the
  last placement that touched it, fixed flag, membership list bounds;
* ``fr`` (per depth): the frame stack; ``pool``: partition lists and candidates;
  ``trail`` of (kind, index, old value) undo records; ``st`` scalars and settings.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memplan.solvers.alloc.intervals import Packed, align_up
from memplan.solvers.jit import inline_kernel, kernel

I64 = np.int64

SEARCH, DECOMP = 0, 1
NONE, SUCCESS, FAIL = 0, 1, 2
# Return codes of :func:`~.search_kernel.run` (CONTINUE: internal, keep going).
SOLVED, INFEASIBLE, PAUSED, NEED_POOL, NEED_TRAIL, CONTINUE = range(6)
# Trail record kinds; a record is (kind, index, old value) in trail[:, t].
T_PLACE, T_MINOFF, T_FLOOR, T_RANK = 0, 1, 2, 3
# Rows of ``buf`` (read only, per buffer).
B_SIZE, B_ALIGN, B_FIXED, B_SEC_LO, B_SEC_HI, B_ADJ_LO, B_ADJ_HI = range(7)
B_WIDTH, B_AREA, B_NEAR_FIXED = 7, 8, 9
B_LEN = 10
# Rows of ``bst`` (per buffer).
OFFSET, MINOFF, RANK = range(3)
# Rows of ``sec`` (per section).
FLOOR, TOTAL, CUTS, STAMP, FIXED_SEC, MEM_LO, MEM_HI = range(7)
S_LEN = 7
# Rows of ``pool``: partition buffer lists; candidates (buffer, offset).
P_LIST, P_CAND_BUF, P_CAND_OFF = range(3)
# Rows of ``fr`` (per depth), see :class:`Frame` for their meaning.
KIND, SA, SB, PL, PLN, CAND, CANDN, NEXT, LAST_OFF, LAST_RANK = range(10)
MARK, MINH, EXPANDED, PBASE, CBASE, HAT = range(10, 16)
F_LEN = 16
# Slots of the scalar array ``st``.
(
    ST_DEPTH,  # frames on the stack
    ST_SIGNAL,  # NONE, SUCCESS or FAIL, passed from a popped frame to its parent
    ST_TRAIL,  # trail records in use
    ST_PLIST,  # pool[P_LIST] entries in use
    ST_CAND,  # pool[P_CAND_*] entries in use
    ST_NODES,  # nodes expanded so far
    ST_BACKTRACKS,  # frames that failed
    ST_STAMP,  # stamp of the last placement (marks the sections it touched)
    ST_ATTEMPTS,  # placements tried
    ST_NODE_LIMIT,  # ST_NODES at which the current call pauses
    ST_CAP,  # the capacity, in bytes
    ST_FLOOR_ON,  # 1: raise section floors to their unplaced buffers' lowest minoff
    ST_N_KEYS,  # number of re-ranking keys (0: no re-ranking)
    ST_KEYS,  # first of up to 4 re-ranking keys (0=T 1=W 2=A 3=Z)
) = range(14)
#: ST_ATTEMPTS at which the current call pauses (after the keys, so no slot moved: the
#: kernels compiled against the slots above stay right).
ST_ATTEMPT_LIMIT = ST_KEYS + 4
ST_LEN = ST_ATTEMPT_LIMIT + 1
#: An attempt limit no search reaches (the default: calls pause on nodes only).
NO_ATTEMPT_LIMIT = 2**62


class Frame(NamedTuple):
    """Documentation of the rows of ``fr`` (one column per depth)."""

    kind: int  # SEARCH or DECOMP
    sa: int  # first section of the frame's partition
    sb: int  # one past its last section
    pl: int  # start of its buffer list in pool[P_LIST]
    pln: int  # length of that list
    cand: int  # start of its candidates in the candidate pool
    candn: int  # number of candidates
    next: int  # next candidate to try (DECOMP: next section to start from)
    last_off: int  # offset of the placement that created the frame (canonical order)
    last_rank: int  # rank of that placement's buffer
    mark: int  # trail length before the frame's current placement
    minh: int  # candidate cut-off (dominance and capacity)
    expanded: int  # 1 once the candidates are built
    pbase: int  # partition lists in use when the frame was pushed
    cbase: int  # candidates in use when the frame was pushed
    hat: int  # 1 if the placed buffer overlaps an unplaced one


class Instance(NamedTuple):
    """What the search reads and never changes."""

    buf: np.ndarray  # int64[B_LEN, n]: per-buffer constants
    adj: np.ndarray  # int32[2 * pairs]: overlap graph rows (buf[B_ADJ_LO:B_ADJ_HI])
    members: np.ndarray  # int32[spans]: the buffers of each section (may be empty)


class State(NamedTuple):
    """What the search changes."""

    bst: np.ndarray  # int64[3, n]: offset, minoff, rank
    sec: np.ndarray  # int64[S_LEN, S]: per-section state and constants
    fr: np.ndarray  # int64[F_LEN, depth]: the frame stack
    pool: np.ndarray  # int64[3, P]: partition buffer lists; candidate buffers, offsets
    trail: np.ndarray  # int64[3, T]: undo records (kind, index, old value)
    st: np.ndarray  # int64[ST_LEN]: scalars and settings


def instance(
    p: Packed, width: np.ndarray, area: np.ndarray, near_fixed: np.ndarray, members: np.ndarray
) -> Instance:
    """The read-only arrays of a search over ``p``."""
    buf = np.empty((B_LEN, p.n), I64)
    buf[B_SIZE], buf[B_ALIGN], buf[B_FIXED] = p.size, p.align, p.fixed
    buf[B_SEC_LO], buf[B_SEC_HI] = p.sec_lo, p.sec_hi
    buf[B_ADJ_LO], buf[B_ADJ_HI] = p.ptr[:-1], p.ptr[1:]
    buf[B_WIDTH], buf[B_AREA], buf[B_NEAR_FIXED] = width, area, near_fixed
    return Instance(buf, p.adj, members)


def new_state(
    n: int, sec_ptr: np.ndarray, fixed_sec: np.ndarray, cap: int, floor_on: bool, keys: list[int]
) -> State:
    """Zeroed arrays of a search over ``n`` buffers; the settings in ``st``."""
    n_sec = fixed_sec.size
    sec = np.zeros((S_LEN, n_sec), I64)
    sec[FIXED_SEC] = fixed_sec
    sec[MEM_LO], sec[MEM_HI] = sec_ptr[:-1], sec_ptr[1:]
    st = np.zeros(ST_LEN, I64)
    st[ST_CAP], st[ST_FLOOR_ON], st[ST_N_KEYS] = cap, floor_on, len(keys)
    st[ST_KEYS : ST_KEYS + len(keys)] = keys
    st[ST_ATTEMPT_LIMIT] = NO_ATTEMPT_LIMIT
    return State(
        bst=np.zeros((3, n), I64),
        sec=sec,
        fr=np.zeros((F_LEN, 2 * n + 4), I64),
        pool=np.zeros((3, 4 * n + 16), I64),
        trail=np.zeros((3, 4 * (n + 2 * n_sec) + 16), I64),  # grows on demand
        st=st,
    )


def grown(s: State, code: int) -> State:
    """``s`` with the pool or trail that a kernel found too small doubled."""
    field = {NEED_POOL: "pool", NEED_TRAIL: "trail"}[code]
    old = getattr(s, field)
    return s._replace(**{field: np.concatenate([old, np.zeros_like(old)], axis=-1)})


@kernel
def section_members(p: Packed, with_lists: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(sec_ptr, members)``: the non-empty buffers of each section, by index.

    Without ``with_lists`` only the pointers are built (all zero) and the list is empty.
    """
    n_sec = p.sec_total.shape[0]
    sec_ptr = np.zeros(n_sec + 1, np.int64)
    if not with_lists:
        return sec_ptr, np.zeros(0, np.int32)
    size, sec_lo, sec_hi = p.size, p.sec_lo, p.sec_hi
    for b in range(size.shape[0]):
        if size[b] > 0:
            for k in range(sec_lo[b], sec_hi[b]):
                sec_ptr[k + 1] += 1
    for k in range(n_sec):
        sec_ptr[k + 1] += sec_ptr[k]
    fill = sec_ptr[:n_sec].copy()
    members = np.empty(sec_ptr[n_sec], np.int32)
    for b in range(size.shape[0]):
        if size[b] > 0:
            for k in range(sec_lo[b], sec_hi[b]):
                members[fill[k]] = b
                fill[k] += 1
    return sec_ptr, members


@inline_kernel
def min_offset_of(buf: np.ndarray, adj: np.ndarray, b: int, floor_: int) -> int:
    """Lowest aligned offset >= ``floor_`` for ``b`` that misses its fixed neighbours."""
    alignment = buf[B_ALIGN, b]
    o = align_up(floor_, alignment)
    if not buf[B_NEAR_FIXED, b]:
        return o
    moved = True
    while moved:
        moved = False
        for j in range(buf[B_ADJ_LO, b], buf[B_ADJ_HI, b]):
            a = adj[j]
            fixed = buf[B_FIXED, a]
            if fixed >= 0 and fixed < o + buf[B_SIZE, b] and o < fixed + buf[B_SIZE, a]:
                o = align_up(fixed + buf[B_SIZE, a], alignment)
                moved = True
    return o


@kernel
def init_state(inst: Instance, s: State) -> None:
    """Set up the search: fixed buffers placed, root DECOMP frame over all sections.

    ``s.bst[RANK]`` must hold the pre-ordering's ranks.
    """
    buf, bst, sec, plist, fr, st = inst.buf, s.bst, s.sec, s.pool[P_LIST], s.fr, s.st
    n, n_sec = buf.shape[1], sec.shape[1]
    sec[FLOOR, :] = -1
    sec[TOTAL, :] = 0
    sec[CUTS, :] = 0
    count = 0
    order = np.argsort(bst[RANK], kind="mergesort")
    for t in range(n):
        b = order[t]
        fixed, size = buf[B_FIXED, b], buf[B_SIZE, b]
        if fixed >= 0 or size == 0:
            bst[OFFSET, b] = fixed if fixed >= 0 else 0
            continue
        bst[OFFSET, b] = -1
        plist[count] = b
        count += 1
        for k in range(buf[B_SEC_LO, b], buf[B_SEC_HI, b]):
            sec[TOTAL, k] += size
        for k in range(buf[B_SEC_LO, b], buf[B_SEC_HI, b] - 1):
            sec[CUTS, k] += 1
    for t in range(count):
        b = plist[t]
        bst[MINOFF, b] = min_offset_of(buf, inst.adj, b, 0)
        for k in range(buf[B_SEC_LO, b], buf[B_SEC_HI, b]):
            if sec[FLOOR, k] < 0 or bst[MINOFF, b] < sec[FLOOR, k]:
                sec[FLOOR, k] = bst[MINOFF, b]
    for k in range(n_sec):
        sec[FLOOR, k] = max(sec[FLOOR, k], 0)
    for slot in (ST_DEPTH, ST_SIGNAL, ST_TRAIL, ST_CAND, ST_NODES, ST_BACKTRACKS, ST_STAMP):
        st[slot] = 0
    st[ST_ATTEMPTS] = 0
    st[ST_PLIST] = count
    fr[:, 0] = 0
    fr[KIND, 0] = DECOMP
    fr[SB, 0] = n_sec
    fr[PLN, 0] = count
    fr[EXPANDED, 0] = 1
    st[ST_DEPTH] = 1
    st[ST_SIGNAL] = NONE


@inline_kernel
def record(trail: np.ndarray, t: int, kind: int, index: int, old: int) -> int:
    """Write undo record ``t`` (the caller made sure there is room); return ``t + 1``."""
    trail[0, t] = kind
    trail[1, t] = index
    trail[2, t] = old
    return t + 1


@kernel
def undo(
    buf: np.ndarray, bst: np.ndarray, sec: np.ndarray, trail: np.ndarray, st: np.ndarray, mark: int
) -> None:
    """Roll the state back to trail length ``mark``."""
    t = st[ST_TRAIL]
    while t > mark:
        t -= 1
        kind, i, old = trail[0, t], trail[1, t], trail[2, t]
        if kind == T_PLACE:
            bst[OFFSET, i] = -1
            for k in range(buf[B_SEC_LO, i], buf[B_SEC_HI, i]):
                sec[TOTAL, k] += buf[B_SIZE, i]
            for k in range(buf[B_SEC_LO, i], buf[B_SEC_HI, i] - 1):
                sec[CUTS, k] += 1
        elif kind == T_MINOFF:
            bst[MINOFF, i] = old
        elif kind == T_FLOOR:
            sec[FLOOR, i] = old
        else:
            bst[RANK, i] = old
    st[ST_TRAIL] = t


@kernel
def rerank(
    buf: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
    seg: np.ndarray,
) -> None:
    """Re-sort a new sub-partition ``seg`` (a slice of plist) by the keys; re-rank it.

    Like MiniMalloc's per-partition pre-ordering, the T key (largest section total)
    uses the *current* unplaced totals. Keys (most significant first): 0 = T,
    1 = lifetime W, 2 = area A, 3 = size Z; all descending, ties keep the old order.
    Old ranks go on the trail.
    """
    cnt = seg.shape[0]
    order = np.arange(cnt)
    vals = np.empty(cnt, np.int64)
    for k in range(st[ST_N_KEYS] - 1, -1, -1):
        code = st[ST_KEYS + k]
        for t in range(cnt):
            b = seg[order[t]]
            if code == 0:
                v = 0
                for j in range(buf[B_SEC_LO, b], buf[B_SEC_HI, b]):
                    v = max(v, sec[TOTAL, j])
            elif code == 1:
                v = buf[B_WIDTH, b]
            elif code == 2:
                v = buf[B_AREA, b]
            else:
                v = buf[B_SIZE, b]
            vals[t] = -v
        order = order[np.argsort(vals, kind="mergesort")]
    new = seg[order].copy()
    t0 = st[ST_TRAIL]
    for t in range(cnt):
        b = new[t]
        seg[t] = b
        record(trail, t0 + t, T_RANK, b, bst[RANK, b])
        bst[RANK, b] = t
    st[ST_TRAIL] = t0 + cnt
