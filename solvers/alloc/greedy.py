"""The greedy allocators of production compilers, and a best-of-all portfolio.

Each named allocator is one (order, rule) pair run by the kernels in
:mod:`memplan.solvers.alloc.placement`:

=====================  ========================================  =============
name                   order                                     rule
=====================  ========================================  =============
greedy-by-size         size desc, then first use (TFLite)        best-fit gap
best-fit-size          size desc, then lifetime desc (XLA)       best-fit gap
best-fit-duration      lifetime desc, then size desc (XLA)       best-fit gap
online-best-fit        first use, then index (ONNX Runtime)      best-fit gap
first-fit-decreasing   size desc, then first use                 lowest gap
lowest-offset-first    the buffer that can sit lowest goes next  on top
=====================  ========================================  =============

``portfolio`` runs these and more orderings, keeps the lowest packing, then spends a
bounded, deterministic amount of work improving it (:mod:`.improve`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from memplan.dsa import AllocationResult, Buffer
from memplan.solvers.alloc.common import empty_result, greedy_result
from memplan.solvers.alloc.intervals import Packed, pack
from memplan.solvers.alloc.placement import place_in_order, place_lowest_first

I64 = np.int64


def _orders(p: Packed) -> dict[str, np.ndarray]:
    """Return the buffer orders the portfolio tries, by name (each a permutation)."""
    n = p.n
    index = np.arange(n, dtype=I64)
    duration = p.upper - p.lower
    area = duration * p.size
    sec_max = section_pressure(p)
    return {
        "size": np.lexsort((index, p.lower, -p.size)),
        "size-duration": np.lexsort((index, -duration, -p.size)),
        "duration": np.lexsort((index, -p.size, -duration)),
        "time": np.lexsort((index, p.lower)),
        "area": np.lexsort((index, -p.size, -area)),
        "pressure": np.lexsort((index, -area, -sec_max)),
        "pressure-duration": np.lexsort((index, -area, -duration, -sec_max)),
    }


def section_pressure(p: Packed) -> np.ndarray:
    """Return, per buffer, the largest section total among its sections (MiniMalloc's T)."""
    out = np.zeros(p.n, I64)
    if p.sec_total.size == 0:
        return out
    # Sparse-table range maximum over the section totals.
    levels = [p.sec_total]
    while (1 << len(levels)) <= p.sec_total.size:
        prev, half = levels[-1], 1 << (len(levels) - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
    live = p.size > 0
    lo, hi = p.sec_lo[live], p.sec_hi[live]
    k = np.floor(np.log2(hi - lo)).astype(I64)
    res = np.zeros(lo.size, I64)
    for level in np.unique(k):
        sel = k == level
        table = levels[int(level)]
        res[sel] = np.maximum(table[lo[sel]], table[hi[sel] - (1 << int(level))])
    out[live] = res
    return out


def rank_of(order: np.ndarray) -> np.ndarray:
    """Return the inverse permutation of ``order`` (position of each buffer)."""
    rank = np.empty(order.size, I64)
    rank[order] = np.arange(order.size, dtype=I64)
    return rank


def run_in_order(p: Packed, order: np.ndarray, best_fit: bool) -> tuple[np.ndarray, int]:
    """Place buffers in ``order`` by first or best fit; return ``(offsets, height)``."""
    offsets = np.empty(p.n, I64)
    height = place_in_order(order, p.size, p.align, p.fixed, p.ptr, p.adj, best_fit, offsets)
    return offsets, int(height)


def run_lowest_first(p: Packed, rank: np.ndarray) -> tuple[np.ndarray, int]:
    """Place the lowest-sitting buffer first (ties by ``rank``); return ``(offsets, height)``."""
    offsets = np.empty(p.n, I64)
    height = place_lowest_first(rank, p.size, p.align, p.fixed, p.ptr, p.adj, offsets)
    return offsets, int(height)


def _named(algorithm: str, order_name: str, rule: str) -> Callable[..., AllocationResult]:
    """Make the registered allocator running one (order, rule) pair."""

    def allocator(
        buffers: Sequence[Buffer],
        capacity_bytes: int | None,
        *,
        time_limit_s: float = 0.0,
        minimize: bool = False,
        seed: int = 0,
    ) -> AllocationResult:
        del time_limit_s, minimize, seed  # one deterministic pass
        start = time.perf_counter()
        if not buffers:
            return empty_result(buffers, algorithm, start)
        p = pack(buffers)
        order = _orders(p)[order_name]
        if rule == "lowest":
            offsets, height = run_lowest_first(p, rank_of(order))
        else:
            offsets, height = run_in_order(p, order, best_fit=rule == "best")
        return greedy_result(p, offsets, height, capacity_bytes, algorithm, start)

    allocator.__name__ = algorithm.replace("-", "_")
    allocator.__doc__ = (
        f"{algorithm}: place buffers in {order_name} order, rule {rule}; see the module table."
    )
    return allocator


greedy_by_size = _named("greedy-by-size", "size", "best")
best_fit_size = _named("best-fit-size", "size-duration", "best")
best_fit_duration = _named("best-fit-duration", "duration", "best")
online_best_fit = _named("online-best-fit", "time", "best")
first_fit_decreasing = _named("first-fit-decreasing", "size", "first")
lowest_offset_first = _named("lowest-offset-first", "time", "lowest")

#: Every (order, rule) pair the portfolio tries, best first on the MiniMalloc benchmarks.
PORTFOLIO_VARIANTS: tuple[tuple[str, str], ...] = (
    ("time", "lowest"),
    ("pressure", "lowest"),
    ("duration", "lowest"),
    ("pressure-duration", "lowest"),
    ("area", "lowest"),
    ("size", "lowest"),
    ("size", "first"),
    ("size", "best"),
    ("size-duration", "best"),
    ("duration", "best"),
    ("time", "best"),
    ("pressure", "first"),
)


def run_variants(
    p: Packed, capacity_bytes: int | None, stop_when_fits: bool
) -> tuple[np.ndarray, int, str, np.ndarray | None]:
    """Run the portfolio's variants; return the best ``(offsets, height, name, rank)``.

    ``rank`` is the tie-break rank of the best variant if it is a lowest-first one
    (the improvement step perturbs it), else None. With ``stop_when_fits``, stop at the
    first packing within ``capacity_bytes``.
    """
    orders = _orders(p)
    best: tuple[np.ndarray, int, str, np.ndarray | None] | None = None
    for order_name, rule in PORTFOLIO_VARIANTS:
        rank = None
        if rule == "lowest":
            rank = rank_of(orders[order_name])
            offsets, height = run_lowest_first(p, rank)
        else:
            offsets, height = run_in_order(p, orders[order_name], best_fit=rule == "best")
        if best is None or height < best[1]:
            best = (offsets, height, f"{order_name}/{rule}", rank)
        if height <= p.max_live:
            break
        if stop_when_fits and capacity_bytes is not None and height <= capacity_bytes:
            break
    assert best is not None
    return best


def portfolio(
    buffers: Sequence[Buffer],
    capacity_bytes: int | None,
    *,
    time_limit_s: float = 0.0,
    minimize: bool = False,
    seed: int = 0,
) -> AllocationResult:
    """Best of all greedy variants, then a bounded randomised improvement of the best.

    With a capacity and ``minimize=False``, returns as soon as a packing fits. The work
    is bounded by a fixed budget of placement steps (not by the clock), so the same
    ``seed`` gives the same offsets.
    """
    from memplan.solvers.alloc.improve import improve_lowest_first

    del time_limit_s
    start = time.perf_counter()
    if not buffers:
        return empty_result(buffers, "portfolio", start)
    p = pack(buffers)
    stop = capacity_bytes is not None and not minimize
    offsets, height, name, rank = run_variants(p, capacity_bytes, stop)
    fits = capacity_bytes is not None and height <= capacity_bytes
    if height > p.max_live and not (stop and fits):
        target = p.max_live if capacity_bytes is None or minimize else capacity_bytes
        better = improve_lowest_first(p, rank, height, target, seed)
        if better is not None:
            offsets, height = better
            name += "+improved"
    return greedy_result(p, offsets, height, capacity_bytes, f"portfolio:{name}", start)
