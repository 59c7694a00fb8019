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
* Dynamic decomposition: ``cuts[s]`` counts unplaced buffers that cross the boundary
  between sections s and s+1; when it drops to 0 the remaining buffers on either side
  are independent and are solved one after the other, without backtracking between.
  Each new sub-partition is re-ranked with its current section totals.
* Hatless pruning: if the buffer just tried overlaps no unplaced buffer, it sits at
  that offset in every completion, so once it fails no later candidate can succeed.
* Offset cut-off: a placement at offset o leaves every section at least o + its
  unplaced total, so candidates above capacity - (largest unplaced total) are skipped.

Recursion is replaced by an explicit frame stack and an undo trail kept in arrays,
so a call can stop after a node budget and a later call resumes exactly where it
stopped (the Python driver checks the clock between calls and round-robins several
static rank orders, as MiniMalloc's restarts do, without repeating work).

Frame kinds: SEARCH (choose the next buffer of a partition) and DECOMP (solve the
independent sub-ranges of a partition one by one). Signals passed from a popped frame
to its parent: NONE, SUCCESS, FAIL.
"""

from __future__ import annotations

import numpy as np

from memplan.solvers.alloc._jit import njit
from memplan.solvers.alloc.search_state import (
    DECOMP,
    FAIL,
    INFEASIBLE,
    NEED_CAND,
    NEED_PLIST,
    NEED_TRAIL,
    NONE,
    PAUSED,
    SEARCH,
    SOLVED,
    ST_ATTEMPTS,
    ST_BACKTRACKS,
    ST_CAND,
    ST_DEPTH,
    ST_NODES,
    ST_PLIST,
    ST_SIGNAL,
    ST_STAMP,
    ST_TRAIL,
    SUCCESS,
    T_FLOOR,
    T_MINOFF,
    T_PLACE,
    min_offset_of,
    rerank,
    undo,
)


@njit
def run(
    cap: int,
    budget: int,
    unalloc_floor: bool,
    keys: np.ndarray,
    n_keys: int,
    width: np.ndarray,
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    sec_lo: np.ndarray,
    sec_hi: np.ndarray,
    sec_ptr: np.ndarray,
    sec_buf: np.ndarray,
    fixed_sec: np.ndarray,
    near_fixed: np.ndarray,
    rank: np.ndarray,
    offset: np.ndarray,
    minoff: np.ndarray,
    floor: np.ndarray,
    total: np.ndarray,
    cuts: np.ndarray,
    sec_stamp: np.ndarray,
    ftype: np.ndarray,
    fsa: np.ndarray,
    fsb: np.ndarray,
    fpl: np.ndarray,
    fpln: np.ndarray,
    fcand: np.ndarray,
    fcandn: np.ndarray,
    fnext: np.ndarray,
    flast_off: np.ndarray,
    flast_rank: np.ndarray,
    fmark: np.ndarray,
    fminh: np.ndarray,
    fexp: np.ndarray,
    fpbase: np.ndarray,
    fcbase: np.ndarray,
    fhat: np.ndarray,
    plist: np.ndarray,
    cand_buf: np.ndarray,
    cand_off: np.ndarray,
    trail_kind: np.ndarray,
    trail_idx: np.ndarray,
    trail_val: np.ndarray,
    st: np.ndarray,
) -> int:
    """Advance the search by at most ``budget`` expanded nodes; return a status code.

    SOLVED: ``offset`` holds a packing of every free buffer below ``cap``. INFEASIBLE:
    the search space is exhausted. PAUSED: the budget ran out (call again to resume).
    NEED_PLIST / NEED_CAND / NEED_TRAIL: that pool or the trail is too small (grow it,
    call again; the state is untouched).
    """
    max_trail = trail_kind.shape[0]
    spent = 0
    while True:
        depth = st[ST_DEPTH]
        signal = st[ST_SIGNAL]
        if depth == 0:
            return SOLVED if signal == SUCCESS else INFEASIBLE
        d = depth - 1
        if ftype[d] == DECOMP:
            if signal == FAIL:
                st[ST_DEPTH] = d
                st[ST_PLIST] = fpbase[d]
                st[ST_CAND] = fcbase[d]
                continue
            # Fresh, or the previous sub-range was solved: start the next non-empty one.
            ra = fnext[d]
            pushed = False
            while ra < fsb[d] and not pushed:
                rb = ra + 1
                while rb < fsb[d] and cuts[rb - 1] > 0:
                    rb += 1
                start = st[ST_PLIST]
                if start + fpln[d] > plist.shape[0]:
                    return NEED_PLIST
                if st[ST_TRAIL] + fpln[d] > max_trail:
                    return NEED_TRAIL
                cnt = 0
                for t in range(fpl[d], fpl[d] + fpln[d]):
                    b = plist[t]
                    if offset[b] < 0 and ra <= sec_lo[b] and sec_lo[b] < rb:
                        plist[start + cnt] = b
                        cnt += 1
                fnext[d] = rb
                if cnt > 1 and n_keys > 0:
                    rerank(
                        plist[start : start + cnt],
                        keys,
                        n_keys,
                        size,
                        sec_lo,
                        sec_hi,
                        total,
                        width,
                        rank,
                        trail_kind,
                        trail_idx,
                        trail_val,
                        st,
                    )
                if cnt > 0:
                    e = depth
                    ftype[e] = SEARCH
                    fsa[e] = ra
                    fsb[e] = rb
                    fpl[e] = start
                    fpln[e] = cnt
                    fexp[e] = 0
                    flast_off[e] = -1
                    flast_rank[e] = -1
                    fpbase[e] = start
                    fcbase[e] = st[ST_CAND]
                    st[ST_PLIST] = start + cnt
                    st[ST_DEPTH] = depth + 1
                    st[ST_SIGNAL] = NONE
                    pushed = True
                ra = rb
            if not pushed:
                st[ST_DEPTH] = d
                st[ST_PLIST] = fpbase[d]
                st[ST_CAND] = fcbase[d]
                st[ST_SIGNAL] = SUCCESS
            continue
        # ---------------------------------------------------------------- SEARCH
        if signal == SUCCESS:
            st[ST_DEPTH] = d
            st[ST_PLIST] = fpbase[d]
            st[ST_CAND] = fcbase[d]
            continue
        if signal == FAIL:
            undo(
                fmark[d],
                size,
                sec_lo,
                sec_hi,
                offset,
                minoff,
                floor,
                total,
                cuts,
                trail_kind,
                trail_idx,
                trail_val,
                st,
                rank,
            )
            st[ST_SIGNAL] = NONE
            if fhat[d] == 0:
                # Hatless pruning: the failed buffer overlapped no unplaced buffer, so it
                # sits at this offset in every completion; later candidates cannot work.
                fnext[d] = fcandn[d]
        if fexp[d] == 0:
            if spent >= budget:
                return PAUSED
            start = st[ST_CAND]
            if start + fpln[d] > cand_buf.shape[0]:
                return NEED_CAND
            spent += 1
            st[ST_NODES] += 1
            unplaced = 0
            minh = -1
            for t in range(fpl[d], fpl[d] + fpln[d]):
                b = plist[t]
                if offset[b] < 0:
                    unplaced += 1
                    h = minoff[b] + size[b]
                    if minh < 0 or h < minh:
                        minh = h
            if unplaced == 0:
                st[ST_DEPTH] = d
                st[ST_PLIST] = fpbase[d]
                st[ST_CAND] = fcbase[d]
                st[ST_SIGNAL] = SUCCESS
                continue
            # Dominance: nothing goes at or above the lowest top an unplaced buffer can
            # reach. And any placement at o leaves every section at least o + its
            # unplaced total, so offsets above cap - (largest unplaced total) fail too.
            most = 0
            for s in range(fsa[d], fsb[d]):
                if total[s] > most:
                    most = total[s]
            cutoff = min(minh, cap - most + 1)
            # Keep only the viable candidates: below the cutoff and canonical.
            cnt = 0
            lo_off = flast_off[d]
            lo_rank = flast_rank[d]
            for t in range(fpl[d], fpl[d] + fpln[d]):
                b = plist[t]
                if offset[b] < 0:
                    o = minoff[b]
                    if o < cutoff and (o > lo_off or (o == lo_off and rank[b] > lo_rank)):
                        cand_buf[start + cnt] = b
                        cand_off[start + cnt] = o
                        cnt += 1
            # Order candidates by (minoff, rank): plist is in rank order, sort is stable.
            if cnt > 1:
                perm = np.argsort(cand_off[start : start + cnt], kind="mergesort")
                tmp_b = cand_buf[start : start + cnt].copy()
                tmp_o = cand_off[start : start + cnt].copy()
                for t in range(cnt):
                    cand_buf[start + t] = tmp_b[perm[t]]
                    cand_off[start + t] = tmp_o[perm[t]]
            fcand[d] = start
            fcandn[d] = cnt
            fnext[d] = 0
            fminh[d] = cutoff
            fexp[d] = 1
            st[ST_CAND] = start + cnt
        placed = -1
        while fnext[d] < fcandn[d]:
            i = fcand[d] + fnext[d]
            fnext[d] += 1
            c = cand_buf[i]
            o = cand_off[i]
            if o >= fminh[d]:
                fnext[d] = fcandn[d]
                break
            if o < flast_off[d] or (o == flast_off[d] and rank[c] < flast_rank[d]):
                continue
            top = o + size[c]
            if top > cap:
                continue
            need = st[ST_TRAIL] + 1 + 2 * floor.shape[0] + (ptr[c + 1] - ptr[c])
            if need > max_trail:
                fnext[d] -= 1
                return NEED_TRAIL
            mark = st[ST_TRAIL]
            fmark[d] = mark
            t = mark
            # Place c.
            offset[c] = o
            trail_kind[t] = T_PLACE
            trail_idx[t] = c
            t += 1
            for s in range(sec_lo[c], sec_hi[c]):
                trail_kind[t] = T_FLOOR
                trail_idx[t] = s
                trail_val[t] = floor[s]
                t += 1
                floor[s] = top
                total[s] -= size[c]
            for s in range(sec_lo[c], sec_hi[c] - 1):
                cuts[s] -= 1
            ok = True
            hat = 0
            st[ST_STAMP] += 1
            stamp = st[ST_STAMP]
            for j in range(ptr[c], ptr[c + 1]):
                a = adj[j]
                if offset[a] < 0:
                    hat = 1
                if offset[a] < 0 and minoff[a] < top:
                    trail_kind[t] = T_MINOFF
                    trail_idx[t] = a
                    trail_val[t] = minoff[a]
                    t += 1
                    minoff[a] = min_offset_of(a, top, size, align, fixed, ptr, adj, near_fixed)
                    if minoff[a] + size[a] > cap:
                        ok = False
                        break
                    for s in range(sec_lo[a], sec_hi[a]):
                        sec_stamp[s] = stamp
            st[ST_TRAIL] = t
            st[ST_ATTEMPTS] += 1
            if ok and unalloc_floor:
                # Unallocated floor: a section's floor is at least its lowest minoff.
                for s in range(fsa[d], fsb[d]):
                    if sec_stamp[s] != stamp:
                        continue
                    low = -1
                    for k in range(sec_ptr[s], sec_ptr[s + 1]):
                        a = sec_buf[k]
                        if offset[a] < 0 and (low < 0 or minoff[a] < low):
                            low = minoff[a]
                    if low > floor[s]:
                        if t >= max_trail:
                            ok = False
                            break
                        trail_kind[t] = T_FLOOR
                        trail_idx[t] = s
                        trail_val[t] = floor[s]
                        t += 1
                        floor[s] = low
                st[ST_TRAIL] = t
            if ok:
                # Section inference over the partition.
                for s in range(fsa[d], fsb[d]):
                    if fixed_sec[s]:
                        continue
                    f = floor[s]
                    if total[s] > 0 and o > f:
                        f = o
                    if f + total[s] > cap:
                        ok = False
                        break
            if not ok:
                undo(
                    mark,
                    size,
                    sec_lo,
                    sec_hi,
                    offset,
                    minoff,
                    floor,
                    total,
                    cuts,
                    trail_kind,
                    trail_idx,
                    trail_val,
                    st,
                    rank,
                )
                if hat == 0:
                    fnext[d] = fcandn[d]
                    break
                continue
            fhat[d] = hat
            placed = c
            break
        if placed < 0:
            st[ST_DEPTH] = d
            st[ST_PLIST] = fpbase[d]
            st[ST_CAND] = fcbase[d]
            st[ST_SIGNAL] = FAIL
            st[ST_BACKTRACKS] += 1
            continue
        # Decompose if a boundary inside the partition lost its last crossing buffer.
        split = False
        lo = max(sec_lo[placed], fsa[d])
        hi = min(sec_hi[placed] - 1, fsb[d] - 1)
        for s in range(lo, hi):
            if cuts[s] == 0:
                split = True
                break
        e = depth
        fsa[e] = fsa[d]
        fsb[e] = fsb[d]
        fpl[e] = fpl[d]
        fpln[e] = fpln[d]
        fpbase[e] = st[ST_PLIST]
        fcbase[e] = st[ST_CAND]
        if split:
            ftype[e] = DECOMP
            fnext[e] = fsa[d]
            fexp[e] = 1
        else:
            ftype[e] = SEARCH
            fexp[e] = 0
            flast_off[e] = cand_off[fcand[d] + fnext[d] - 1]
            flast_rank[e] = rank[placed]
        st[ST_DEPTH] = depth + 1
        st[ST_SIGNAL] = NONE
    return INFEASIBLE
