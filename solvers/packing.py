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
from memplan.solvers.replacement import simulate
from memplan.validate import validate

#: Seconds the allocator may take to pack one order of a search's trail.
TRAIL_PACK_S = 0.3


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
    placed = [
        dataclasses.replace(r, offset=offset)
        for r, offset in zip(plan.residencies, result.offsets_bytes, strict=True)
    ]
    packed = Plan.make(plan.order, placed)
    return packed if not validate(problem, packed) else None


def pack_stays(
    problem: Problem, order: Sequence[int], search_capacity: int, limit_s: float, seed: int
) -> Plan | None:
    """Belady's stays for ``order`` at ``search_capacity``, packed at the problem's
    capacity within ``limit_s`` seconds (None when they do not pack)."""
    stays = simulate(problem, order, search_capacity)
    return pack(problem, stays.plan(order), limit_s, seed)


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


__all__ = ["TRAIL_PACK_S", "latest_packed", "pack", "pack_stays", "pack_trail"]
