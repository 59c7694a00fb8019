"""Offsets for plans that choose only what stays on chip: interval plans and searched orders.

The order search (:mod:`.order_search`) and dnc's windows without placement decide which
tensors stay on chip when, with only the live bytes per step bounded; the plan becomes
valid once every residency gets an offset. :func:`pack` gives them (the allocator
portfolio, then the exact search); :func:`pack_stays` packs Belady's stays for an order;
:func:`pack_trail` falls back on the latest order of a search's trail whose stays pack,
when the best order's do not (a plan whose live bytes touch the capacity at many steps
often does not pack; the search does not see placement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from memplan.dsa import Buffer, allocate
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.order_search import Reordered
from memplan.solvers.replacement import scoped_touched, simulate
from memplan.validate import validate

#: Seconds the allocator may take to pack one order of a search's trail.
TRAIL_PACK_S = 0.3

#: Tries of :func:`pack_repaired`, and the seconds of the exact search in each (the
#: portfolio comes first; the exact search finds a packing within a fraction of a second
#: or not at all in practice).
REPAIR_TRIES, REPAIR_EXACT_S = 12, 0.2


def pack(problem: Problem, plan: Plan, time_limit_s: float, seed: int) -> Plan | None:
    """Offsets for every residency of an interval plan within the capacity (or None).

    The residencies are the buffers of :func:`memplan.dsa.allocate` (aligned sizes,
    steps ``[start, end)``); ``auto`` tries the greedy portfolio, then the exact search.
    """
    sizes = problem.aligned_sizes_bytes
    buffers = [
        Buffer(i, r.start, r.end, sizes[r.tensor], problem.alignment_bytes)
        for i, r in enumerate(plan.residencies)
    ]
    limit = Budget(time_limit_s=max(time_limit_s, 0.01))
    result = allocate(buffers, problem.capacity_bytes, budget=limit, seed=seed)
    if not result.fits or result.offsets_bytes is None:
        return None
    return _placed(problem, plan, result.offsets_bytes)


def pack_stays(
    problem: Problem, order: Sequence[int], search_capacity: int, limit_s: float, seed: int
) -> Plan | None:
    """Belady's stays for ``order`` at ``search_capacity``, packed at the problem's
    capacity within ``limit_s`` seconds (None when they do not pack)."""
    stays = simulate(problem, order, search_capacity)
    return pack(problem, stays.plan(order), limit_s, seed)


def pack_repaired(
    problem: Problem,
    order: Sequence[int],
    search_capacity: int,
    budget: Budget,
    seed: int,
) -> Plan | None:
    """Belady's stays for ``order`` at ``search_capacity``, made to pack at the problem's
    capacity by lowering the bound only at the steps where a packing overflows (None
    when none packs before ``budget`` ends or :data:`REPAIR_TRIES` tries).

    Each try packs the stays (the allocator portfolio, then a short exact search); when
    they do not fit, the portfolio's lowest packing without a capacity shows the steps
    whose buffers stand above the capacity, and the bound drops there by the overflow
    (twice as much each time the same overflow comes back), never below the step's
    working set; Belady then chooses the stays again. Lowering the capacity everywhere
    (greedy's retries) evicts where nothing overflowed: on the order search's best
    orders (40,000 moves from greedy's order) this packs
    pnasnet5_cifar (all, M_H) at 3.54 MB where the retries planned 7.47 MB and the trail
    6.49 MB, pnasnet5_large (all, M_R) at 52.4 MB against 136.7 and 64.5 MB; on other
    orders the trail is lower (darts_v2_cifar, activations, M_H: 8.55 against 2.95 MB),
    so both are candidates.
    """
    capacity, alignment = problem.capacity_bytes, problem.alignment_bytes
    sizes = problem.aligned_sizes_bytes
    touched = scoped_touched(problem)
    floor = [sum(sizes[t] for t in touched[op]) for op in order]
    bounds = [max(search_capacity, low) for low in floor]
    overflow_before: tuple[int, int] | None = None
    repeats = 0
    for _ in range(REPAIR_TRIES):
        if budget.should_stop():
            return None
        stays = simulate(problem, order, search_capacity, capacity_by_step=bounds)
        plan = stays.plan(order)
        buffers = [
            Buffer(i, r.start, r.end, sizes[r.tensor], alignment)
            for i, r in enumerate(plan.residencies)
        ]
        exact_s = min(REPAIR_EXACT_S, budget.remaining_s())
        exact_budget = Budget(time_limit_s=max(exact_s, 0.01), stop_event=budget.stop_event)
        fitted = allocate(buffers, capacity, budget=exact_budget, seed=seed)
        offsets = fitted.offsets_bytes if fitted.fits else None
        lowest = None
        if offsets is None:
            lowest = allocate(
                buffers, None, algorithm="portfolio", budget=_share_of(budget), seed=seed
            )
            if lowest.offsets_bytes is not None and (lowest.height_bytes or 0) <= capacity:
                offsets = lowest.offsets_bytes
        if offsets is not None:
            return _placed(problem, plan, offsets)
        if lowest is None or lowest.offsets_bytes is None:
            return None
        over = [0] * len(order)
        for buffer, offset in zip(buffers, lowest.offsets_bytes, strict=True):
            excess = offset + buffer.size_bytes - capacity
            if excess > 0:
                for step in range(buffer.lower, buffer.upper):
                    over[step] = max(over[step], excess)
        overflow = (max(over), sum(1 for excess in over if excess))
        repeats = repeats + 1 if overflow == overflow_before else 0
        overflow_before = overflow
        lowered = [
            max(low, bound - ((-(-excess // alignment) * alignment) << repeats))
            if excess
            else bound
            for low, bound, excess in zip(floor, bounds, over, strict=True)
        ]
        if lowered == bounds:  # every overflowing step is down to its working set
            return None
        bounds = lowered
    return None


def _share_of(budget: Budget) -> Budget:
    """What is left of ``budget`` as a fresh budget (a heuristic allocator's limit)."""
    left = budget.remaining_s()
    limit = None if left == float("inf") else max(left, 0.01)
    return Budget(time_limit_s=limit, stop_event=budget.stop_event)


def _placed(problem: Problem, plan: Plan, offsets: Sequence[int]) -> Plan | None:
    """``plan`` with ``offsets``, when valid (None otherwise)."""
    placed = [
        dataclasses.replace(r, offset=offset)
        for r, offset in zip(plan.residencies, offsets, strict=True)
    ]
    packed = Plan.make(plan.order, placed)
    return packed if not validate(problem, packed) else None


def pack_trail(
    problem: Problem,
    found: Reordered,
    search_capacity: int,
    should_stop: Callable[[], bool],
    seed: int,
) -> Plan | None:
    """The packed plan of the latest order on the search's trail whose Belady stays
    pack (the best order's excepted: it is the one that did not), or None.

    Bisection, :data:`TRAIL_PACK_S` per try: packing mostly gets harder as the search
    fills the capacity. At M_R, where the capacity cannot drop to leave the allocator
    slack, this is what rescues a search: darts_v2_cifar (all, MR) searched 12 s from
    rpo's order, Belady 7.74 MB does not pack, the trail's next order (8.04 MB) does,
    where the greedy stack on the best order (no smaller capacity to retry at) spills
    15.1 MB.
    """
    orders = [order for _, order in found.trail[:-1]]
    return latest_packed(
        len(orders),
        lambda k: pack_stays(problem, orders[k], search_capacity, TRAIL_PACK_S, seed),
        should_stop,
    )


def latest_packed(
    count: int, attempt: Callable[[int], Plan | None], should_stop: Callable[[], bool]
) -> Plan | None:
    """The packed plan of the latest of ``count`` trail entries that ``attempt`` packs
    (None when none does before ``should_stop``), by bisection: along a trail that fills
    the capacity as it goes, packing mostly gets harder."""
    low, high = 0, count - 1
    packed: Plan | None = None
    while low <= high and not should_stop():
        middle = (low + high) // 2
        found = attempt(middle)
        if found is None:
            high = middle - 1
        else:
            packed, low = found, middle + 1
    return packed


__all__ = [
    "REPAIR_EXACT_S",
    "REPAIR_TRIES",
    "TRAIL_PACK_S",
    "latest_packed",
    "pack",
    "pack_repaired",
    "pack_stays",
    "pack_trail",
]
