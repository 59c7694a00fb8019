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

Every allocator here is a plug-in class (a frozen dataclass of the options of
:class:`~.common.AllocatorOptions`). A single pass cannot be interrupted half way; the
budget is checked before it starts and, in the portfolio, between variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from memplan.dsa import AllocationResult, Buffer
from memplan.solver import Budget
from memplan.solvers.alloc.common import (
    AllocatorOptions,
    Prepared,
    heuristic_result,
    prepare,
    stopped_mid_pass,
)
from memplan.solvers.alloc.intervals import Packed
from memplan.solvers.alloc.placement import (
    CTL_LEN,
    HEIGHT,
    in_order_steps,
    lowest_first_steps,
    start_lowest_first,
    start_pass,
)
from memplan.solvers.jit import KernelChoice

I64 = np.int64


def _orders(p: Packed) -> dict[str, np.ndarray]:
    """Return the buffer orders the portfolio tries, by name (each a permutation)."""
    n = p.n
    index = np.arange(n, dtype=I64)
    duration = p.upper - p.lower
    area = saturated_area(p)
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


def saturated_area(p: Packed) -> np.ndarray:
    """Lifetime x size per buffer, capped at 2^63-1 (huge lifetimes would wrap around)."""
    duration = p.upper - p.lower
    safe = duration <= np.iinfo(I64).max // np.maximum(p.size, 1)
    return np.where(safe, duration * p.size, np.iinfo(I64).max)


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


#: Overlap-graph entries one kernel call visits between two looks at the clock: about
#: 10 ms compiled, 10 ms in Python.
CHUNK_WORK = 2_000_000
PYTHON_CHUNK_WORK = 5_000


def run_variant(
    p: Packed,
    orders: dict[str, np.ndarray],
    order_name: str,
    rule: str,
    kernels: KernelChoice,
    budget: Budget,
) -> tuple[np.ndarray, int, np.ndarray | None] | None:
    """Run one (order, rule) pair; return ``(offsets, height, rank)``, or None if stopped.

    ``rule``: ``best`` or ``first`` (fit into gaps in the order) or ``lowest`` (lowest
    sitting buffer first, ties by the order's rank; the rank is returned for the
    improvement step, else None). The budget is checked between chunks of work.
    """
    offsets = np.empty(p.n, I64)
    ctl = np.zeros(CTL_LEN, I64)
    order = orders[order_name].astype(I64)

    def chunk() -> int:
        return PYTHON_CHUNK_WORK if kernels.python else CHUNK_WORK

    if rule == "lowest":
        rank = rank_of(order)
        min_off = np.zeros(p.n, I64)
        heap = np.empty((p.n + 1, 3), I64)
        kernels(start_lowest_first)(p, rank, offsets, min_off, heap, ctl)
        while not kernels(lowest_first_steps)(p, rank, offsets, min_off, heap, ctl, chunk()):
            if budget.should_stop():
                return None
        return offsets, int(ctl[HEIGHT]), rank
    kernels(start_pass)(p, offsets, ctl)
    while not kernels(in_order_steps)(p, order, rule == "best", offsets, ctl, chunk()):
        if budget.should_stop():
            return None
    return offsets, int(ctl[HEIGHT]), None


@dataclass(frozen=True, slots=True)
class SingleGreedy(AllocatorOptions):
    """One (order, rule) pair of the module table: one deterministic pass."""

    name: ClassVar[str] = "single-greedy"
    order_name: ClassVar[str] = "size"  # a key of _orders
    rule: ClassVar[str] = "best"  # best, first or lowest

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """Place ``buffers`` in one pass (``minimize`` changes nothing)."""
        job = prepare(self, buffers, capacity_bytes, budget)
        if not isinstance(job, Prepared):
            return job
        budget = job.budget  # keeps back the time the check of the result takes
        orders = _orders(job.packed)
        done = run_variant(job.packed, orders, self.order_name, self.rule, job.kernels, budget)
        if done is None:
            return stopped_mid_pass(self, job, budget)
        return heuristic_result(self, job, done[0], self.name, budget)


@dataclass(frozen=True, slots=True)
class GreedyBySize(SingleGreedy):
    """TFLite's greedy-by-size: size descending, best-fitting gap."""

    name: ClassVar[str] = "greedy-by-size"
    order_name: ClassVar[str] = "size"
    rule: ClassVar[str] = "best"


@dataclass(frozen=True, slots=True)
class BestFitSize(SingleGreedy):
    """XLA's heap simulator by size: size then lifetime descending, best-fitting gap."""

    name: ClassVar[str] = "best-fit-size"
    order_name: ClassVar[str] = "size-duration"
    rule: ClassVar[str] = "best"


@dataclass(frozen=True, slots=True)
class BestFitDuration(SingleGreedy):
    """XLA's heap simulator by duration: lifetime then size descending, best-fitting gap."""

    name: ClassVar[str] = "best-fit-duration"
    order_name: ClassVar[str] = "duration"
    rule: ClassVar[str] = "best"


@dataclass(frozen=True, slots=True)
class OnlineBestFit(SingleGreedy):
    """ONNX Runtime's arena: first use order, best-fitting gap."""

    name: ClassVar[str] = "online-best-fit"
    order_name: ClassVar[str] = "time"
    rule: ClassVar[str] = "best"


@dataclass(frozen=True, slots=True)
class FirstFitDecreasing(SingleGreedy):
    """First-fit decreasing: size descending, lowest gap that fits."""

    name: ClassVar[str] = "first-fit-decreasing"
    order_name: ClassVar[str] = "size"
    rule: ClassVar[str] = "first"


@dataclass(frozen=True, slots=True)
class LowestOffsetFirst(SingleGreedy):
    """MiniMalloc's search without backtracking: the buffer that sits lowest goes next."""

    name: ClassVar[str] = "lowest-offset-first"
    order_name: ClassVar[str] = "time"
    rule: ClassVar[str] = "lowest"


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
    job: Prepared, stop_when_fits: bool, budget: Budget
) -> tuple[np.ndarray, int, str, np.ndarray | None, bool] | None:
    """Run the portfolio's variants; return the best ``(offsets, height, name, rank, all)``.

    ``rank`` is the tie-break rank of the best variant if it is a lowest-first one
    (the improvement step perturbs it), else None; ``all`` is False when the budget
    stopped the run before every variant that would have run. With ``stop_when_fits``,
    stop at the first packing within the capacity. None when the budget stopped the
    first variant before it was complete.
    """
    p = job.packed
    orders = _orders(p)
    best: tuple[np.ndarray, int, str, np.ndarray | None] | None = None
    for order_name, rule in PORTFOLIO_VARIANTS:
        if best is not None and budget.should_stop():
            return (*best, False)
        done = run_variant(p, orders, order_name, rule, job.kernels, budget)
        if done is None:
            return None if best is None else (*best, False)
        offsets, height, rank = done
        if best is None or height < best[1]:
            best = (offsets, height, f"{order_name}/{rule}", rank)
        if height <= p.max_live:
            break
        if stop_when_fits and job.capacity is not None and height <= job.capacity:
            break
    assert best is not None
    return (*best, True)


@dataclass(frozen=True, slots=True)
class Portfolio(AllocatorOptions):
    """Best of all greedy variants, then a bounded randomised improvement of the best.

    With a capacity and ``minimize=False``, returns as soon as a packing fits. The work
    is bounded by a fixed budget of placement steps (not by the clock), so the same
    ``seed`` gives the same offsets, unless the budget stops it first (then the result
    says so).
    """

    name: ClassVar[str] = "portfolio"

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """Run the portfolio (see the class docstring)."""
        job = prepare(self, buffers, capacity_bytes, budget)
        if not isinstance(job, Prepared):
            return job
        budget = job.budget  # keeps back the time the check of the result takes
        found = best_greedy_packing(job, self.minimize, self.seed, budget)
        if found is None:
            return stopped_mid_pass(self, job, budget)
        offsets, name, complete = found
        return heuristic_result(self, job, offsets, f"portfolio:{name}", budget, complete=complete)


def best_greedy_packing(
    job: Prepared, minimize: bool, seed: int, budget: Budget
) -> tuple[np.ndarray, str, bool] | None:
    """The portfolio's packing of ``job``: ``(offsets, variant name, complete)``.

    ``complete`` is False when the budget stopped the variants or the improvement;
    None when it stopped the first variant (no packing yet).
    """
    from memplan.solvers.alloc.improve import improve_lowest_first

    p = job.packed
    stop = job.capacity is not None and not minimize
    found = run_variants(job, stop, budget)
    if found is None:
        return None
    offsets, height, name, rank, complete = found
    fits = job.capacity is not None and height <= job.capacity
    if complete and height > p.max_live and not (stop and fits):
        target = p.max_live if job.capacity is None or minimize else job.capacity
        better, complete = improve_lowest_first(p, rank, height, target, seed, job.kernels, budget)
        if better is not None:
            offsets = better[0]
            name += "+improved"
    return offsets, name, complete
