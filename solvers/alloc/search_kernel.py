"""The depth-first search of the exact allocator, as one resumable numba kernel.

The search decides whether the *free* buffers (neither fixed nor empty) fit below a
capacity, with MiniMalloc's ideas:

* Lowest-offset placement: a buffer is only ever placed at its lowest offset above the
  placed buffers it overlaps (``minoff``), aligned and pushed past fixed buffers.
* Canonical order: placements are made in increasing (offset, rank) order, so each
  packing is reached once.
* Dominance: never place a buffer at or above the lowest top any unplaced buffer could
  reach (``min_height``); that buffer could always drop into the gap below.
* Section inference: in every section (a maximal set of simultaneously live buffers),
  max(floor, current offset) + the sizes still unplaced there must fit the capacity;
  a section's floor is also raised to the lowest ``minoff`` of its unplaced buffers.
* Canonical floor: after a placement at (o, rank r) a buffer of lower rank cannot
  start at o any more, so a section at or below o needs an unplaced buffer that may
  still start low enough. In a perfect packing (every section tight) a choice that
  leaves a section at o without such a buffer fails at once, not after the search
  has filled the rest of level o (MiniMalloc waits until a placement above o).
* Level tiling: the sections with no slack at o are filled exactly from o up, so
  buffers that may still start at o, time-disjoint, must cover all of them.
* Dynamic decomposition: ``cuts[s]`` counts unplaced buffers that cross the boundary
  between sections s and s+1; when it drops to 0 the remaining buffers on either side
  are independent and are solved one after the other, without backtracking between.
  Each new sub-partition is re-ranked with its current section totals.
* Hatless pruning: if the buffer just tried overlaps no unplaced buffer, it sits at
  that offset in every completion, so once it fails no later candidate can succeed.
* Offset cut-off: a placement at offset o leaves every section at least o + its
  unplaced total, so candidates above capacity - (largest unplaced total) are skipped.

Recursion is replaced by an explicit frame stack and an undo trail kept in arrays
(laid out in :mod:`.search_state`),
so a call can stop after a node budget and a later call resumes exactly where it
stopped (the Python driver checks the clock between calls and round-robins several
static rank orders, as MiniMalloc's restarts do, without repeating work).

Frame kinds: SEARCH (choose the next buffer of a partition) and DECOMP (solve the
independent sub-ranges of a partition one by one). Signals passed from a popped frame
to its parent: NONE, SUCCESS, FAIL.
"""

from __future__ import annotations

import numpy as np

from memplan.solvers.alloc.intervals import align_up
from memplan.solvers.alloc.search_state import (
    B_ADJ_HI,
    B_ADJ_LO,
    B_ALIGN,
    B_SEC_HI,
    B_SEC_LO,
    B_SIZE,
    CAND,
    CANDN,
    CBASE,
    CONTINUE,
    CUTS,
    DECOMP,
    EXPANDED,
    FAIL,
    FIXED_SEC,
    FLOOR,
    HAT,
    INFEASIBLE,
    KIND,
    LAST_OFF,
    LAST_RANK,
    MARK,
    MEM_HI,
    MEM_LO,
    MINH,
    MINOFF,
    NEED_POOL,
    NEED_TRAIL,
    NEXT,
    NONE,
    OFFSET,
    P_CAND_BUF,
    P_CAND_OFF,
    P_LIST,
    PAUSED,
    PBASE,
    PL,
    PLN,
    RANK,
    SA,
    SB,
    SEARCH,
    SOLVED,
    ST_ATTEMPT_LIMIT,
    ST_ATTEMPTS,
    ST_BACKTRACKS,
    ST_CAND,
    ST_CAP,
    ST_DEPTH,
    ST_FLOOR_ON,
    ST_N_KEYS,
    ST_NODE_LIMIT,
    ST_NODES,
    ST_PLIST,
    ST_SIGNAL,
    ST_STAMP,
    ST_TRAIL,
    STAMP,
    SUCCESS,
    T_FLOOR,
    T_MINOFF,
    T_PLACE,
    TOTAL,
    min_offset_of,
    record,
    rerank,
    undo,
)
from memplan.solvers.jit import inline_kernel, kernel


@kernel
def run(
    buf: np.ndarray,
    adj: np.ndarray,
    members: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
) -> int:
    """Advance the search until ``st[ST_NODE_LIMIT]`` nodes are expanded or
    ``st[ST_ATTEMPT_LIMIT]`` placements tried; return a code.

    SOLVED: ``bst[OFFSET]`` holds a packing of every free buffer below the capacity.
    INFEASIBLE: the search space is exhausted. PAUSED: a limit is reached (raise it,
    call again to resume; pausing never changes the search's path). NEED_POOL /
    NEED_TRAIL: that array is too small (grow it, call again; the state is untouched).
    """
    while True:
        depth = st[ST_DEPTH]
        if depth == 0:
            return SOLVED if st[ST_SIGNAL] == SUCCESS else INFEASIBLE
        d = depth - 1
        if fr[KIND, d] == DECOMP:
            code = _decomp_step(buf, bst, sec, fr, pool, trail, st, d)
        else:
            code = _search_step(buf, adj, members, bst, sec, fr, pool, trail, st, d)
        if code != CONTINUE:
            return code


@inline_kernel
def _pop(fr: np.ndarray, st: np.ndarray, d: int, signal: int) -> None:
    """Pop frame ``d`` (release its pool entries) and pass ``signal`` to its parent."""
    st[ST_DEPTH] = d
    st[ST_PLIST] = fr[PBASE, d]
    st[ST_CAND] = fr[CBASE, d]
    st[ST_SIGNAL] = signal


@inline_kernel
def _decomp_step(
    buf: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
    d: int,
) -> int:
    """DECOMP frame ``d``: push a SEARCH frame for its next independent sub-range.

    Pops with FAIL when a sub-range failed, with SUCCESS once all are solved.
    """
    if st[ST_SIGNAL] == FAIL:
        _pop(fr, st, d, FAIL)
        return CONTINUE
    plist = pool[P_LIST]
    # Fresh, or the previous sub-range was solved: start the next non-empty one.
    ra, sb, pl, pln = fr[NEXT, d], fr[SB, d], fr[PL, d], fr[PLN, d]
    while ra < sb:
        rb = ra + 1
        while rb < sb and sec[CUTS, rb - 1] > 0:
            rb += 1
        start = st[ST_PLIST]
        if start + pln > plist.shape[0]:
            return NEED_POOL
        if st[ST_TRAIL] + pln > trail.shape[1]:
            return NEED_TRAIL
        cnt = 0
        for t in range(pl, pl + pln):
            b = plist[t]
            lo = buf[B_SEC_LO, b]
            if bst[OFFSET, b] < 0 and ra <= lo and lo < rb:
                plist[start + cnt] = b
                cnt += 1
        fr[NEXT, d] = rb
        if cnt > 1 and st[ST_N_KEYS] > 0:
            rerank(buf, bst, sec, trail, st, plist[start : start + cnt])
        if cnt > 0:
            _push_partition(fr, st, d + 1, ra, rb, start, cnt)
            return CONTINUE
        ra = rb
    _pop(fr, st, d, SUCCESS)
    return CONTINUE


@inline_kernel
def _push_partition(
    fr: np.ndarray, st: np.ndarray, e: int, ra: int, rb: int, start: int, cnt: int
) -> None:
    """Push SEARCH frame ``e`` over sections ``[ra, rb)`` and ``plist[start:start+cnt]``."""
    fr[KIND, e] = SEARCH
    fr[SA, e] = ra
    fr[SB, e] = rb
    fr[PL, e] = start
    fr[PLN, e] = cnt
    fr[EXPANDED, e] = 0
    fr[LAST_OFF, e] = -1
    fr[LAST_RANK, e] = -1
    fr[PBASE, e] = start
    fr[CBASE, e] = st[ST_CAND]
    st[ST_PLIST] = start + cnt
    st[ST_DEPTH] = e + 1
    st[ST_SIGNAL] = NONE


@inline_kernel
def _search_step(
    buf: np.ndarray,
    adj: np.ndarray,
    members: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
    d: int,
) -> int:
    """SEARCH frame ``d``: place its next candidate and push the child, or pop FAIL."""
    signal = st[ST_SIGNAL]
    if signal == SUCCESS:
        _pop(fr, st, d, SUCCESS)
        return CONTINUE
    if signal == FAIL:
        undo(buf, bst, sec, trail, st, fr[MARK, d])
        st[ST_SIGNAL] = NONE
        if fr[HAT, d] == 0:
            # Hatless pruning: the failed buffer overlapped no unplaced buffer, so it
            # sits at this offset in every completion; later candidates cannot work.
            fr[NEXT, d] = fr[CANDN, d]
    if fr[EXPANDED, d] == 0:
        code = _expand(buf, bst, sec, fr, pool, st, d)
        if code != CONTINUE:
            return code
        if st[ST_DEPTH] == d:  # nothing left to place: popped with SUCCESS
            return CONTINUE
    placed = _place_next_candidate(buf, adj, members, bst, sec, fr, pool, trail, st, d)
    if placed == -2:
        return NEED_TRAIL
    if placed == -3:
        return PAUSED
    if placed < 0:
        _pop(fr, st, d, FAIL)
        st[ST_BACKTRACKS] += 1
        return CONTINUE
    _push_child(buf, bst, sec, fr, pool, st, d, placed)
    return CONTINUE


@inline_kernel
def _expand(
    buf: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    st: np.ndarray,
    d: int,
) -> int:
    """Count a node and build frame ``d``'s viable candidates, in (minoff, rank) order.

    Returns PAUSED (node limit reached), NEED_POOL, or CONTINUE; pops the frame with
    SUCCESS when all of its buffers are placed.
    """
    if st[ST_NODES] >= st[ST_NODE_LIMIT]:
        return PAUSED
    plist, cand_buf, cand_off = pool[P_LIST], pool[P_CAND_BUF], pool[P_CAND_OFF]
    start, pl, pln = st[ST_CAND], fr[PL, d], fr[PLN, d]
    if start + pln > cand_buf.shape[0]:
        return NEED_POOL
    st[ST_NODES] += 1
    unplaced = 0
    minh = -1
    for t in range(pl, pl + pln):
        b = plist[t]
        if bst[OFFSET, b] < 0:
            unplaced += 1
            h = bst[MINOFF, b] + buf[B_SIZE, b]
            if minh < 0 or h < minh:
                minh = h
    if unplaced == 0:
        _pop(fr, st, d, SUCCESS)
        return CONTINUE
    # Dominance: nothing goes at or above the lowest top an unplaced buffer can reach.
    # And any placement at o leaves every section at least o + its unplaced total, so
    # offsets above cap - (largest unplaced total) fail too.
    most = 0
    for k in range(fr[SA, d], fr[SB, d]):
        most = max(most, sec[TOTAL, k])
    cutoff = min(minh, st[ST_CAP] - most + 1)
    # Keep only the viable candidates: below the cutoff and canonical (after the
    # placement that created the frame, in (offset, rank) order).
    cnt = 0
    last_off, last_rank = fr[LAST_OFF, d], fr[LAST_RANK, d]
    for t in range(pl, pl + pln):
        b = plist[t]
        o = bst[MINOFF, b]
        canonical = o > last_off or (o == last_off and bst[RANK, b] > last_rank)
        if bst[OFFSET, b] < 0 and o < cutoff and canonical:
            cand_buf[start + cnt] = b
            cand_off[start + cnt] = o
            cnt += 1
    # Order candidates by (minoff, rank): plist is in rank order, the sort is stable.
    if cnt > 1:
        perm = np.argsort(cand_off[start : start + cnt], kind="mergesort")
        by_buf = cand_buf[start : start + cnt].copy()
        by_off = cand_off[start : start + cnt].copy()
        for t in range(cnt):
            cand_buf[start + t] = by_buf[perm[t]]
            cand_off[start + t] = by_off[perm[t]]
    fr[CAND, d] = start
    fr[CANDN, d] = cnt
    fr[NEXT, d] = 0
    fr[MINH, d] = cutoff
    fr[EXPANDED, d] = 1
    st[ST_CAND] = start + cnt
    return CONTINUE


@inline_kernel
def _place_next_candidate(
    buf: np.ndarray,
    adj: np.ndarray,
    members: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
    d: int,
) -> int:
    """Place frame ``d``'s next candidate that survives inference; return it.

    Returns -1 when no candidate is left, -2 when the trail is too small, -3 when the
    attempt limit is reached (in both, the frame is left as it was: a call resumes it).
    """
    room = trail.shape[1] - 1 - 2 * sec.shape[1]  # trail left for neighbour records
    while fr[NEXT, d] < fr[CANDN, d]:
        # A node can try thousands of placements (randwire_ws_large at M_H: 180 per node
        # on average, 36 us each), so calls are also cut by attempts, not only by nodes.
        if st[ST_ATTEMPTS] >= st[ST_ATTEMPT_LIMIT]:
            return -3
        i = fr[CAND, d] + fr[NEXT, d]
        fr[NEXT, d] += 1
        c, o = pool[P_CAND_BUF, i], pool[P_CAND_OFF, i]
        if o >= fr[MINH, d]:
            fr[NEXT, d] = fr[CANDN, d]
            break
        last_off = fr[LAST_OFF, d]
        if o < last_off or (o == last_off and bst[RANK, c] < fr[LAST_RANK, d]):
            continue  # before the frame's own placement: not canonical (ranks moved)
        if o + buf[B_SIZE, c] > st[ST_CAP]:
            continue
        if st[ST_TRAIL] + buf[B_ADJ_HI, c] - buf[B_ADJ_LO, c] > room:
            fr[NEXT, d] -= 1
            return -2
        mark = st[ST_TRAIL]
        fr[MARK, d] = mark
        hat = _place(buf, adj, bst, sec, trail, st, c, o)
        ok = hat >= 0
        hat = max(hat, 0) if ok else -hat - 1
        st[ST_ATTEMPTS] += 1
        if ok and st[ST_FLOOR_ON]:
            ok = _raise_floors(members, bst, sec, fr, trail, st, d)
        if ok:
            ok = _sections_fit(sec, fr, st, d, o)
        if ok and st[ST_FLOOR_ON]:
            ok = _canonical_floors_fit(buf, members, bst, sec, fr, st, d, o, bst[RANK, c])
        if ok and st[ST_FLOOR_ON]:
            ok = _level_tiles(buf, bst, sec, fr, pool, st, d, o, bst[RANK, c])
        if ok:
            fr[HAT, d] = hat
            return c
        undo(buf, bst, sec, trail, st, mark)
        if hat == 0:
            fr[NEXT, d] = fr[CANDN, d]
            break
    return -1


@inline_kernel
def _place(
    buf: np.ndarray,
    adj: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
    c: int,
    o: int,
) -> int:
    """Put buffer ``c`` at offset ``o``: floors, totals, cuts and neighbours' minoff.

    Returns ``hat`` (1 if ``c`` overlaps an unplaced buffer, else 0), or ``-hat - 1``
    when a neighbour can no longer fit below the capacity. Marks the sections of the
    neighbours whose minoff rose with a new stamp.
    """
    size = buf[B_SIZE, c]
    top = o + size
    bst[OFFSET, c] = o
    t = record(trail, st[ST_TRAIL], T_PLACE, c, 0)
    for k in range(buf[B_SEC_LO, c], buf[B_SEC_HI, c]):
        t = record(trail, t, T_FLOOR, k, sec[FLOOR, k])
        sec[FLOOR, k] = top
        sec[TOTAL, k] -= size
    for k in range(buf[B_SEC_LO, c], buf[B_SEC_HI, c] - 1):
        sec[CUTS, k] -= 1
    hat = 0
    st[ST_STAMP] += 1
    stamp = st[ST_STAMP]
    for j in range(buf[B_ADJ_LO, c], buf[B_ADJ_HI, c]):
        a = adj[j]
        if bst[OFFSET, a] >= 0:
            continue
        hat = 1
        if bst[MINOFF, a] < top:
            t = record(trail, t, T_MINOFF, a, bst[MINOFF, a])
            bst[MINOFF, a] = min_offset_of(buf, adj, a, top)
            if bst[MINOFF, a] + buf[B_SIZE, a] > st[ST_CAP]:
                st[ST_TRAIL] = t
                return -hat - 1
            for k in range(buf[B_SEC_LO, a], buf[B_SEC_HI, a]):
                sec[STAMP, k] = stamp
    st[ST_TRAIL] = t
    return hat


@inline_kernel
def _raise_floors(
    members: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    trail: np.ndarray,
    st: np.ndarray,
    d: int,
) -> bool:
    """Unallocated floor: raise each stamped section's floor to its lowest unplaced minoff.

    Returns False when the trail has no room left (the placement is then undone).
    """
    stamp = st[ST_STAMP]
    t = st[ST_TRAIL]
    ok = True
    for k in range(fr[SA, d], fr[SB, d]):
        if sec[STAMP, k] != stamp:
            continue
        low = -1
        for m in range(sec[MEM_LO, k], sec[MEM_HI, k]):
            a = members[m]
            if bst[OFFSET, a] < 0 and (low < 0 or bst[MINOFF, a] < low):
                low = bst[MINOFF, a]
        if low > sec[FLOOR, k]:
            if t >= trail.shape[1]:
                ok = False
                break
            t = record(trail, t, T_FLOOR, k, sec[FLOOR, k])
            sec[FLOOR, k] = low
    st[ST_TRAIL] = t
    return ok


@inline_kernel
def _sections_fit(sec: np.ndarray, fr: np.ndarray, st: np.ndarray, d: int, o: int) -> bool:
    """Section inference over frame ``d``: max(floor, o) + unplaced total <= capacity."""
    cap = st[ST_CAP]
    for k in range(fr[SA, d], fr[SB, d]):
        if sec[FIXED_SEC, k]:
            continue
        f = sec[FLOOR, k]
        if sec[TOTAL, k] > 0 and o > f:
            f = o
        if f + sec[TOTAL, k] > cap:
            return False
    return True


@inline_kernel
def _canonical_floors_fit(
    buf: np.ndarray,
    members: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    st: np.ndarray,
    d: int,
    o: int,
    r: int,
) -> bool:
    """Canonical floor: after a placement at (``o``, rank ``r``), fill the sections at ``o``.

    Every later placement comes after (o, r) in (offset, rank) order (sub-partitions
    too: the packing's canonical path places their buffers after this one), so an
    unplaced buffer of rank below ``r`` can no longer start at ``o`` or below: its
    lowest offset is the next aligned one above ``o``. A section whose floor is at or
    below ``o`` then needs max(o, lowest such offset of its unplaced buffers) + its
    unplaced total <= capacity. In a tight section (no slack) this fails as soon as
    no buffer that may still start at ``o`` covers it, where the plain check waits
    until a placement above ``o``.
    """
    cap = st[ST_CAP]
    for k in range(fr[SA, d], fr[SB, d]):
        total = sec[TOTAL, k]
        # A floor above o is at or below every unplaced member's minoff: nothing new.
        if total == 0 or sec[FIXED_SEC, k] or sec[FLOOR, k] > o:
            continue
        need = cap - total  # the section fits if one member can start at or below
        fits = False
        for m in range(sec[MEM_LO, k], sec[MEM_HI, k]):
            a = members[m]
            if bst[OFFSET, a] >= 0:
                continue
            e = max(bst[MINOFF, a], o)
            if e == o and bst[RANK, a] < r:
                e = align_up(o + 1, buf[B_ALIGN, a])  # not canonical at o any more
            if e <= need:
                fits = True
                break
        if not fits:
            return False
    return True


@inline_kernel
def _level_tiles(
    buf: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    st: np.ndarray,
    d: int,
    o: int,
    r: int,
) -> bool:
    """Level tiling: the sections with no slack at ``o`` need disjoint buffers at ``o``.

    A section with o + its unplaced total = capacity is filled exactly from ``o`` up,
    so one of its buffers starts at ``o``; buffers at one offset never overlap in
    time. So disjoint lifetimes of buffers that may still start at ``o`` (minoff <= o,
    aligned, rank above ``r``) must cover every such section: a walk over the
    sections in time order decides it.
    """
    cap = st[ST_CAP]
    sa, sb = fr[SA, d], fr[SB, d]
    plist = pool[P_LIST]
    pl, pln = fr[PL, d], fr[PLN, d]
    starts = np.empty(pln, np.int64)
    ends = np.empty(pln, np.int64)
    m = 0
    for t in range(pl, pl + pln):
        a = plist[t]
        free = bst[OFFSET, a] < 0 and bst[MINOFF, a] <= o
        if free and bst[RANK, a] > r and o % buf[B_ALIGN, a] == 0:
            starts[m] = buf[B_SEC_LO, a]
            ends[m] = buf[B_SEC_HI, a]
            m += 1
    order = np.argsort(starts[:m], kind="mergesort")
    reach = np.zeros(sb - sa + 1, np.bool_)  # sections before k are tiled
    reach[0] = True
    j = 0
    for k in range(sa, sb):
        while j < m and starts[order[j]] < k:
            j += 1
        if not reach[k - sa]:
            continue
        i = j
        while i < m and starts[order[i]] == k:
            reach[ends[order[i]] - sa] = True
            i += 1
        total = sec[TOTAL, k]
        tight = total > 0 and not sec[FIXED_SEC, k] and sec[FLOOR, k] <= o
        if not (tight and o + total >= cap):
            reach[k + 1 - sa] = True  # the section may stay open at o
    return bool(reach[sb - sa])


@inline_kernel
def _push_child(
    buf: np.ndarray,
    bst: np.ndarray,
    sec: np.ndarray,
    fr: np.ndarray,
    pool: np.ndarray,
    st: np.ndarray,
    d: int,
    placed: int,
) -> None:
    """Push the frame after placing ``placed``: DECOMP if the partition fell apart."""
    # Decompose if a boundary inside the partition lost its last crossing buffer.
    split = False
    lo = max(buf[B_SEC_LO, placed], fr[SA, d])
    hi = min(buf[B_SEC_HI, placed] - 1, fr[SB, d] - 1)
    for k in range(lo, hi):
        if sec[CUTS, k] == 0:
            split = True
            break
    e = d + 1
    for row in (SA, SB, PL, PLN):
        fr[row, e] = fr[row, d]
    fr[PBASE, e] = st[ST_PLIST]
    fr[CBASE, e] = st[ST_CAND]
    if split:
        fr[KIND, e] = DECOMP
        fr[NEXT, e] = fr[SA, d]
        fr[EXPANDED, e] = 1
    else:
        fr[KIND, e] = SEARCH
        fr[EXPANDED, e] = 0
        fr[LAST_OFF, e] = pool[P_CAND_OFF, fr[CAND, d] + fr[NEXT, d] - 1]
        fr[LAST_RANK, e] = bst[RANK, placed]
    st[ST_DEPTH] = e + 1
    st[ST_SIGNAL] = NONE
