"""The allocator conformance suite: what every memplan allocator must do, whoever wrote it.

Call :func:`check_allocator` with a registered name, a ``package.module:Class`` path or
an allocator instance; it runs every check on seeded random instances (with alignments
and fixed offsets) at several capacities, with and without ``minimize``. A failed
check raises ``AssertionError`` naming the instance, capacity and rule.

Checks (all provable for any allocator; nothing assumes it is good):

- protocol: a frozen dataclass with a ``name``, ``seed`` and ``minimize`` options, each
  option documented, unknown options refused;
- the buffers are not mutated; the result echoes the capacity and the max live;
- every packing is valid (:func:`memplan.dsa.validate_packing`): aligned, fixed offsets
  kept, no two buffers live at one step share a byte;
- OPTIMAL and FEASIBLE fit the capacity; INFEASIBLE does not (and needs a capacity);
  OPTIMAL means height = lower bound; the lower bound is at least max live, at most
  the height, and at most the true optimum (brute force on the smallest instances);
- below max live the status is INFEASIBLE; at a capacity nothing can exceed (every
  buffer stacked), a packing that fits comes back;
- the same seed gives the same offsets (unless either run timed out);
- a stop event set before the call (or a time limit of 0) returns within
  :data:`STOP_GRACE_S` with TIMEOUT and no packing.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from memplan.dsa import (
    AllocationResult,
    Buffer,
    allocator_class,
    make_allocator,
    max_live_bytes,
    stacked_height_bytes,
    validate_packing,
)
from memplan.solver import Budget, Status
from memplan.testing.plugins import check_plugin_class

#: Time limit of each allocation of the suite, in seconds.
TIME_LIMIT_S = 2.0

#: Seconds within which a pre-stopped allocation must return.
STOP_GRACE_S = 1.0

#: Instances with at most this many buffers are checked against brute force.
BRUTE_FORCE_MAX = 6


def random_buffers(
    seed: int,
    n: int,
    *,
    horizon: int = 8,
    max_size: int = 6,
    alignments: tuple[int, ...] = (1,),
    fixed_prob: float = 0.0,
) -> list[Buffer]:
    """``n`` seeded random buffers; some get a fixed offset that collides with nothing."""
    rng = random.Random(seed)
    buffers: list[Buffer] = []
    fixed_spots: list[tuple[int, int, int, int]] = []  # lower, upper, offset, top
    for i in range(n):
        lower = rng.randrange(horizon)
        upper = rng.randrange(lower + 1, horizon + 1)
        size = rng.randint(1, max_size)
        align = rng.choice(alignments)
        fixed = None
        if rng.random() < fixed_prob:
            offset = align * rng.randrange(0, 3)
            clash = any(
                lo < upper and lower < up and off < offset + size and offset < top
                for lo, up, off, top in fixed_spots
            )
            if not clash:
                fixed = offset
                fixed_spots.append((lower, upper, offset, offset + size))
        buffers.append(Buffer(i, lower, upper, size, align, fixed))
    return buffers


def brute_force_min_height(buffers: Sequence[Buffer]) -> int:
    """Minimum height, by first fit (lowest aligned hole) over every order of the buffers.

    Exact: in an optimal packing, take buffers by offset; first fit puts each at or
    below its optimal offset (everything before it is at or below its own), so some
    order reproduces a packing no higher than the optimum. Only for a few buffers.
    """
    fixed = {
        i: b.fixed_offset_bytes for i, b in enumerate(buffers) if b.fixed_offset_bytes is not None
    }
    free = [i for i in range(len(buffers)) if i not in fixed]
    base = max((buffers[i].size_bytes + o for i, o in fixed.items()), default=0)
    best = None
    for order in itertools.permutations(free):
        placed: dict[int, int] = dict(fixed)
        height = base
        for i in order:
            o = _lowest_fit(buffers, placed, i)
            placed[i] = o
            height = max(height, o + buffers[i].size_bytes)
            if best is not None and height >= best:
                break
        if best is None or height < best:
            best = height
    return best if best is not None else base


def _lowest_fit(buffers: Sequence[Buffer], placed: dict[int, int], i: int) -> int:
    """Lowest aligned offset where buffer ``i`` collides with no placed buffer."""
    b = buffers[i]
    o = 0
    while True:
        clash = None
        for j, oj in placed.items():
            a = buffers[j]
            if (
                a.lower < b.upper
                and b.lower < a.upper
                and oj < o + b.size_bytes
                and o < oj + a.size_bytes
                and a.size_bytes
                and b.size_bytes
            ):
                clash = oj + a.size_bytes
                break
        if clash is None:
            return o
        o = -(-clash // b.alignment_bytes) * b.alignment_bytes


def instances(seeds: range = range(8)) -> list[tuple[str, list[Buffer]]]:
    """The suite's instances: tiny ones (brute-forced) and larger ones, seeded."""
    found = []
    for seed in seeds:
        tiny = random_buffers(seed, 2 + seed % 5, horizon=6, max_size=5, alignments=(1, 2))
        found.append((f"tiny-{seed}", tiny))
        mixed = random_buffers(
            100 + seed, 10, horizon=12, max_size=40, alignments=(1, 4, 16), fixed_prob=0.15
        )
        found.append((f"mixed-{seed}", mixed))
    return found


def _instance(allocator: Any, **options: Any) -> Any:
    if isinstance(allocator, str):
        return make_allocator(allocator, options)
    return dataclasses.replace(allocator, **options) if options else allocator


def check_allocator_class(allocator: Any) -> None:
    """Protocol checks: a frozen dataclass with a name, seed, minimize, documented options."""
    cls = allocator_class(allocator) if isinstance(allocator, str) else type(allocator)
    ref = allocator if isinstance(allocator, str) else f"{cls.__module__}:{cls.__name__}"
    check_plugin_class(cls, "allocator", ref, make_allocator, ("seed", "minimize"))


def check_result(
    where: str,
    buffers: Sequence[Buffer],
    capacity: int | None,
    result: AllocationResult,
    optimum: int | None = None,
) -> None:
    """Assert the rules of the module docstring for one result."""
    live = max_live_bytes(buffers)
    assert result.capacity_bytes == capacity, f"{where}: capacity not echoed"
    assert result.max_live_bytes == live, f"{where}: max live {result.max_live_bytes} != {live}"
    assert result.lower_bound_bytes >= live, f"{where}: lower bound below max live"
    assert result.wall_s >= 0 and result.algorithm, f"{where}: no wall time or algorithm"
    if optimum is not None:
        assert result.lower_bound_bytes <= optimum, (
            f"{where}: lower bound {result.lower_bound_bytes} above the optimum {optimum}"
        )
    if result.offsets_bytes is not None:
        errors = validate_packing(buffers, result.offsets_bytes)
        assert not errors, f"{where}: invalid packing: {errors[0]}"
        height = max(
            (o + b.size_bytes for o, b in zip(result.offsets_bytes, buffers, strict=True)),
            default=0,
        )
        assert result.height_bytes == height, f"{where}: height {result.height_bytes} != {height}"
        assert result.lower_bound_bytes <= height, f"{where}: lower bound above the height"
    fits = result.offsets_bytes is not None and (capacity is None or height <= capacity)
    assert result.fits == fits, f"{where}: fits says {result.fits}"
    if result.status in (Status.OPTIMAL, Status.FEASIBLE):
        assert fits, f"{where}: {result.status.value} without a packing that fits"
    if result.status is Status.OPTIMAL:
        assert result.height_bytes == result.lower_bound_bytes, f"{where}: OPTIMAL above bound"
        if optimum is not None:
            assert result.height_bytes == optimum, f"{where}: OPTIMAL but optimum is {optimum}"
    if result.status is Status.INFEASIBLE:
        assert capacity is not None and not fits, f"{where}: INFEASIBLE with a fitting packing"
        if optimum is not None:
            assert optimum > capacity, f"{where}: INFEASIBLE but {optimum} B fits {capacity}"


def check_case(
    allocator: Any,
    name: str,
    buffers: list[Buffer],
    minimize: bool,
    time_limit_s: float = TIME_LIMIT_S,
) -> int:
    """Run one instance at every capacity of the suite; return the number of runs."""
    alloc = _instance(allocator, minimize=minimize)
    before = copy.deepcopy(buffers)
    live = max_live_bytes(buffers)
    optimum = brute_force_min_height(buffers) if len(buffers) <= BRUTE_FORCE_MAX else None
    capacities: list[int | None] = [None, stacked_height_bytes(buffers), live, live - 1]
    if optimum is not None:
        capacities += [optimum, optimum - 1]
    runs = 0
    for capacity in capacities:
        if capacity is not None and capacity < 0:
            continue
        where = f"allocator {alloc.name!r} (minimize={minimize}) on {name} at capacity {capacity}"
        result = alloc.allocate(buffers, capacity, Budget(time_limit_s=time_limit_s))
        runs += 1
        assert buffers == before, f"{where}: the buffers were mutated"
        check_result(where, buffers, capacity, result, optimum)
        if capacity is not None and capacity < live:
            assert result.status is Status.INFEASIBLE, f"{where}: below max live gave {result}"
        if capacity is None or capacity >= stacked_height_bytes(buffers):
            assert result.fits or result.status is Status.TIMEOUT, f"{where}: no packing"
        if result.status is not Status.TIMEOUT:
            again = _instance(allocator, minimize=minimize).allocate(
                buffers, capacity, Budget(time_limit_s=time_limit_s)
            )
            if again.status is not Status.TIMEOUT:
                assert again.offsets_bytes == result.offsets_bytes, f"{where}: same seed differs"
    return runs


def check_stop(allocator: Any, buffers: list[Buffer]) -> None:
    """A stop event set before the call, or a zero time limit, ends it at once: TIMEOUT."""
    stopped = threading.Event()
    stopped.set()
    for minimize in (False, True):
        alloc = _instance(allocator, minimize=minimize)
        for budget in (Budget(time_limit_s=60, stop_event=stopped), Budget(time_limit_s=0)):
            for capacity in (None, stacked_height_bytes(buffers)):
                where = f"allocator {alloc.name!r} stopped before it started (cap {capacity})"
                start = time.monotonic()
                result = alloc.allocate(buffers, capacity, budget)
                took = time.monotonic() - start
                assert took <= STOP_GRACE_S, f"{where}: took {took:.2f} s"
                assert result.status is Status.TIMEOUT, f"{where}: status {result.status}"
                assert result.offsets_bytes is None, f"{where}: returned a packing"


def check_allocator(
    allocator: Any,
    *,
    cases: list[tuple[str, list[Buffer]]] | None = None,
    time_limit_s: float = TIME_LIMIT_S,
) -> int:
    """Run the whole suite on ``allocator`` (a name, ``module:Class`` path or instance).

    Returns:
        The number of allocations checked.

    Raises:
        AssertionError: at the first broken rule, naming the case.
    """
    check_allocator_class(allocator)
    runs = 0
    for name, buffers in cases if cases is not None else instances():
        for minimize in (False, True):
            runs += check_case(allocator, name, buffers, minimize, time_limit_s)
    check_stop(allocator, random_buffers(7, 40, horizon=30, max_size=50))
    return runs
