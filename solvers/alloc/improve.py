"""A cheap local improvement of a lowest-offset-first packing.

The lowest-first greedy takes, among the buffers that can sit lowest, the one with the
smallest rank. The improvement is a hill climb over ranks: move a buffer that reaches
the current peak (a "squeaky wheel") or a random one to an earlier rank, re-run the
greedy, and keep the move when the height does not grow. The number of steps comes
from a fixed work budget, not the clock, so a seed always yields the same packing.
"""

from __future__ import annotations

import numpy as np

from memplan.solvers.alloc._jit import njit
from memplan.solvers.alloc.intervals import Packed
from memplan.solvers.alloc.placement import place_lowest_first

#: Work budget of one improvement, in overlap-graph entries visited (about 0.3 s).
WORK_BUDGET = 15_000_000

#: Most hill-climbing steps, whatever the budget allows.
MAX_STEPS = 1000


@njit
def _hill_climb(
    order: np.ndarray,
    size: np.ndarray,
    align: np.ndarray,
    fixed: np.ndarray,
    ptr: np.ndarray,
    adj: np.ndarray,
    height: int,
    target: int,
    steps: int,
    seed: int,
    best_offsets: np.ndarray,
) -> int:
    """Climb from ``order``; write the best packing to ``best_offsets``; return its height."""
    np.random.seed(seed)
    n = order.shape[0]
    cur = order.copy()
    cand = np.empty(n, np.int64)
    rank = np.empty(n, np.int64)
    offsets = np.empty(n, np.int64)
    cur_offsets = np.zeros(n, np.int64)
    pos = np.empty(n, np.int64)
    best = height + 1  # force the first evaluation to record offsets
    cur_h = height + 1
    for step in range(steps + 1):
        cand[:] = cur
        if step > 0:
            for i in range(n):
                pos[cur[i]] = i
            if np.random.random() < 0.6:
                # Squeaky wheel: a buffer reaching the peak moves earlier.
                k = 0
                for b in range(n):
                    if fixed[b] < 0 and cur_offsets[b] + size[b] == cur_h:
                        k += 1
                pick = np.random.randint(0, max(k, 1))
                src = -1
                for b in range(n):
                    if fixed[b] < 0 and cur_offsets[b] + size[b] == cur_h:
                        if pick == 0:
                            src = pos[b]
                            break
                        pick -= 1
                if src < 0:
                    src = np.random.randint(0, n)
            else:
                src = np.random.randint(0, n)
            dst = np.random.randint(0, src + 1)
            moved = cand[src]
            for i in range(src, dst, -1):
                cand[i] = cand[i - 1]
            cand[dst] = moved
        for i in range(n):
            rank[cand[i]] = i
        h = place_lowest_first(rank, size, align, fixed, ptr, adj, offsets)
        if h <= cur_h:
            cur[:] = cand
            cur_offsets[:] = offsets
            cur_h = h
            if h < best:
                best = h
                best_offsets[:] = offsets
                if best <= target:
                    break
    return best


def improve_lowest_first(
    p: Packed, rank: np.ndarray | None, height: int, target: int, seed: int
) -> tuple[np.ndarray, int] | None:
    """Try to lower a packing of ``height``; return ``(offsets, height)`` if it got lower.

    Args:
        p: the packed problem.
        rank: the tie-break rank of the lowest-first packing to start from (None: first
            use order).
        height: the height to beat.
        target: stop once the height is at or below this.
        seed: random seed.
    """
    if p.n < 2:
        return None
    steps = min(MAX_STEPS, WORK_BUDGET // (p.n + int(p.ptr[-1]) + 1))
    if steps < 1:
        return None
    order = (
        np.argsort(rank, kind="stable")
        if rank is not None
        else np.lexsort((np.arange(p.n), p.lower))
    )
    offsets = np.empty(p.n, np.int64)
    best = _hill_climb(
        order.astype(np.int64),
        p.size,
        p.align,
        p.fixed,
        p.ptr,
        p.adj,
        height,
        target,
        steps,
        seed,
        offsets,
    )
    if best < height:
        return offsets, int(best)
    return None
