"""Dynamic storage allocation (DSA): the problem types, checks and the allocator registry.

The MiniMalloc CSV exchange format lives in :mod:`memplan.io.buffers_csv`.

A *buffer* occupies ``size_bytes`` contiguous bytes of the scratchpad during the
half-open step interval ``[lower, upper)``. An allocator chooses an offset for every
buffer so that two buffers that are live at the same step never share a byte::

    offset
      ^
    C +-------------------------------------  capacity
      |          +--------+
      |          |   b2   |        +-----+
      |  +-------+--+-----+        | b4  |
      |  |   b1     |   +----------+-----+
      |  +----------+   |     b3         |
    0 +--+----------+---+----------------+-->  step
         0          4   5               11

Here ``b1 = [0, 4)`` and ``b2 = [3, 6)`` overlap in time, so they are stacked; ``b3``
reuses the bytes of ``b1`` once it is dead. The *height* of a packing is the highest
byte used; *max live* (the largest sum of sizes live at one step) bounds it from below.

This module is the core side: it never imports a solver. Allocators register under the
entry-point group ``memplan.allocators`` and are loaded lazily by :func:`allocate`.
Every allocator is a callable ``fn(buffers, capacity_bytes, *, time_limit_s, minimize,
seed) -> AllocationResult``.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from memplan.errors import ConfigError, InputFormatError

#: Entry-point group under which allocators register.
ENTRY_POINT_GROUP = "memplan.allocators"

#: Default time limit of an exact search, in seconds.
DEFAULT_TIME_LIMIT_S = 60.0


@dataclass(frozen=True, slots=True)
class Buffer:
    """One block of scratchpad memory that must be live during ``[lower, upper)``."""

    id: int | str  # caller's name for the buffer (CSV ids are kept as written)
    lower: int  # first step at which the buffer is live (inclusive)
    upper: int  # first step at which it is dead again (exclusive), > lower
    size_bytes: int  # bytes occupied, >= 0
    alignment_bytes: int = 1  # the offset must be a multiple of this, >= 1
    fixed_offset_bytes: int | None = None  # offset imposed by the caller, or None

    def __post_init__(self) -> None:
        problem = buffer_problem(
            self.lower, self.upper, self.size_bytes, self.alignment_bytes, self.fixed_offset_bytes
        )
        if problem:
            raise InputFormatError(f"buffer {self.id!r}: {problem}")

    def __str__(self) -> str:
        extra = f" align {self.alignment_bytes}" if self.alignment_bytes != 1 else ""
        if self.fixed_offset_bytes is not None:
            extra += f" @ {self.fixed_offset_bytes}"
        return f"{self.id}: [{self.lower}, {self.upper}) {self.size_bytes} B{extra}"


def buffer_problem(
    lower: int, upper: int, size: int, alignment: int, fixed: int | None
) -> str | None:
    """Return what is wrong with one buffer's fields, or None when they are sound."""
    if lower >= upper:
        return f"empty lifetime [{lower}, {upper}): lower must be < upper"
    if size < 0:
        return f"negative size {size}: sizes are bytes >= 0"
    if alignment < 1:
        return f"alignment {alignment} must be >= 1"
    if fixed is not None:
        if fixed < 0:
            return f"fixed offset {fixed} must be >= 0"
        if fixed % alignment:
            return f"fixed offset {fixed} is not a multiple of its alignment {alignment}"
    return None


class AllocationStatus(enum.Enum):
    """Outcome of an allocation."""

    SOLVED = "solved"  # offsets found (within the capacity, if one was given)
    INFEASIBLE = "infeasible"  # proven: no packing fits the capacity
    TIMEOUT = "timeout"  # time ran out before a packing within the capacity was found


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """What an allocator returns; offsets are aligned with the input buffer order."""

    status: AllocationStatus  # SOLVED, INFEASIBLE or TIMEOUT
    offsets_bytes: tuple[int, ...] | None  # one offset per input buffer; best found, or None
    height_bytes: int | None  # highest byte used by offsets_bytes (max offset + size)
    max_live_bytes: int  # lower bound on any height: largest sum of sizes live at one step
    proven_optimal: bool  # height_bytes is the minimum possible height
    algorithm: str  # name of the algorithm that produced offsets_bytes
    wall_s: float  # wall-clock seconds spent
    message: str = ""  # human-readable detail (why infeasible, what timed out)

    @property
    def ratio(self) -> float | None:
        """Height divided by max live (1.0 is a perfect packing), or None."""
        if self.height_bytes is None:
            return None
        if self.max_live_bytes == 0:
            return 1.0
        return self.height_bytes / self.max_live_bytes


class Allocator(Protocol):
    """The calling convention of every registered allocator."""

    def __call__(
        self,
        buffers: Sequence[Buffer],
        capacity_bytes: int | None,
        *,
        time_limit_s: float,
        minimize: bool,
        seed: int,
    ) -> AllocationResult:
        """Place ``buffers`` within ``capacity_bytes`` (None: minimise the height)."""
        ...


# --------------------------------------------------------------------------- bounds


def max_live_bytes(buffers: Sequence[Buffer]) -> int:
    """Return the largest total size of buffers live at one step (a sweep, O(n log n))."""
    events: list[tuple[int, int]] = []
    for b in buffers:
        events.append((b.lower, b.size_bytes))
        events.append((b.upper, -b.size_bytes))
    events.sort()  # at equal steps, ends (negative) come before starts: half-open
    live = best = 0
    for _, delta in events:
        live += delta
        best = max(best, live)
    return best


def packing_height(buffers: Sequence[Buffer], offsets: Sequence[int]) -> int:
    """Return the highest byte used by a packing (0 for no buffers)."""
    return max((o + b.size_bytes for b, o in zip(buffers, offsets, strict=True)), default=0)


def validate_packing(
    buffers: Sequence[Buffer], offsets: Sequence[int], capacity_bytes: int | None = None
) -> list[str]:
    """Check a packing and return one message per violation (empty: the packing is valid).

    Checks every offset is a non-negative multiple of its buffer's alignment, equals its
    fixed offset if any, fits below ``capacity_bytes`` (if given), and that no two
    buffers live at the same step share a byte. A sweep over steps keeps the live
    buffers sorted by offset, so each new buffer is checked against its two neighbours
    only: O(n log n), not all pairs.
    """
    if len(offsets) != len(buffers):
        return [f"{len(offsets)} offsets for {len(buffers)} buffers"]
    errors: list[str] = []
    for b, o in zip(buffers, offsets, strict=True):
        if o < 0:
            errors.append(f"buffer {b.id}: negative offset {o}")
        if o % b.alignment_bytes:
            errors.append(f"buffer {b.id}: offset {o} breaks its alignment {b.alignment_bytes}")
        if b.fixed_offset_bytes is not None and o != b.fixed_offset_bytes:
            errors.append(f"buffer {b.id}: offset {o} differs from its fixed offset")
        if capacity_bytes is not None and o + b.size_bytes > capacity_bytes:
            errors.append(
                f"buffer {b.id}: [{o}, {o + b.size_bytes}) exceeds the capacity {capacity_bytes}"
            )
    for j, i in overlapping_pairs(buffers, offsets):
        a, b = buffers[j], buffers[i]
        errors.append(
            f"buffers {a.id} and {b.id} overlap: both live at step {max(a.lower, b.lower)}, "
            f"bytes [{offsets[j]}, {offsets[j] + a.size_bytes}) and "
            f"[{offsets[i]}, {offsets[i] + b.size_bytes})"
        )
    return errors


def overlapping_pairs(buffers: Sequence[Buffer], offsets: Sequence[int]) -> list[tuple[int, int]]:
    """Return index pairs of buffers live at one step that share a byte.

    Sweeps the buffers by ``lower`` while the live ones are kept sorted by offset; as
    long as they do not overlap, a new buffer can only collide with its two neighbours
    in that order. A buffer found colliding is reported and left out of the live set, so
    every invalid packing yields at least one pair (each real collision with the
    well-placed buffers is found).
    """
    order = sorted(
        (i for i, b in enumerate(buffers) if b.size_bytes > 0), key=lambda i: buffers[i].lower
    )
    pairs: list[tuple[int, int]] = []
    ends: list[tuple[int, int]] = []  # heap of (upper, index) of live buffers
    live_offsets: list[int] = []  # offsets of live buffers, sorted
    live_index: list[int] = []  # buffer index of each entry of live_offsets
    for i in order:
        b = buffers[i]
        while ends and ends[0][0] <= b.lower:
            _, j = heapq.heappop(ends)
            k = bisect.bisect_left(live_offsets, offsets[j])
            while live_index[k] != j:
                k += 1
            del live_offsets[k]
            del live_index[k]
        o, top = offsets[i], offsets[i] + b.size_bytes
        k = bisect.bisect_left(live_offsets, o)
        clash = False
        for nb in (k - 1, k):
            if 0 <= nb < len(live_offsets):
                j = live_index[nb]
                if offsets[j] < top and o < offsets[j] + buffers[j].size_bytes:
                    pairs.append((j, i))
                    clash = True
        if not clash:
            live_offsets.insert(k, o)
            live_index.insert(k, i)
            heapq.heappush(ends, (b.upper, i))
    return pairs


# --------------------------------------------------------------------------- registry


def available_allocators() -> list[str]:
    """Return the registered allocator names (plus ``auto``), sorted."""
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names | {"auto"})


def load_allocator(name: str) -> Allocator:
    """Load the allocator registered as ``name``.

    Raises:
        ConfigError: if no allocator has that name (the message lists the known ones).
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            loaded: Allocator = ep.load()
            return loaded
    raise ConfigError(
        f"unknown allocator {name!r}; choose one of: {', '.join(available_allocators())}"
    )


def allocate(
    buffers: Sequence[Buffer],
    capacity_bytes: int | None,
    *,
    algorithm: str = "auto",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    minimize: bool = False,
    seed: int = 0,
) -> AllocationResult:
    """Choose an offset for every buffer.

    Args:
        buffers: the buffers; the result's offsets follow this order.
        capacity_bytes: the scratchpad size, or None to minimise the height.
        algorithm: ``auto`` (greedy portfolio, then the exact search when the portfolio
            does not fit or, with ``minimize``, to improve its height), ``exact``, or a
            greedy name from :func:`available_allocators`.
        time_limit_s: wall-clock limit of an exact search, in seconds.
        minimize: look for the lowest height (at most ``capacity_bytes`` if given) and
            report whether it is proven optimal, instead of any packing that fits.
        seed: seed of any randomised step; same seed, same offsets.

    Returns:
        SOLVED with offsets within the capacity; INFEASIBLE when proven impossible;
        TIMEOUT with the best offsets found (possibly above the capacity) otherwise.

    Raises:
        ConfigError: for an unknown algorithm, a negative capacity or time limit.

    Speed (2 shared cores): with a capacity and ``minimize=False``, ``auto`` returns as
    soon as one greedy variant fits (about 1-2 s for 100,000 buffers, mostly building
    the overlap graph); the full ``portfolio`` takes about 5 s for 60,000 buffers;
    ``exact`` and ``minimize`` may use the whole ``time_limit_s``. The first call in a
    process loads the compiled kernels (numba's disk cache; the very first run in a
    checkout compiles them, about 10-20 s).
    """
    if capacity_bytes is not None and capacity_bytes < 0:
        raise ConfigError(f"capacity {capacity_bytes} bytes must be >= 0")
    if not (time_limit_s >= 0 and math.isfinite(time_limit_s)):
        raise ConfigError(f"time limit {time_limit_s} s must be a finite number >= 0")
    if algorithm != "auto":
        fn = load_allocator(algorithm)
        return fn(buffers, capacity_bytes, time_limit_s=time_limit_s, minimize=minimize, seed=seed)
    return _allocate_auto(buffers, capacity_bytes, time_limit_s, minimize, seed)


def _allocate_auto(
    buffers: Sequence[Buffer],
    capacity_bytes: int | None,
    time_limit_s: float,
    minimize: bool,
    seed: int,
) -> AllocationResult:
    """Greedy portfolio first; the exact search only where the portfolio falls short.

    With ``minimize``, the exact allocator's minimiser does both steps itself: it starts
    from the portfolio's packing and searches lower heights until proven or out of time.
    """
    start = time.perf_counter()
    if minimize:
        result = load_allocator("exact")(
            buffers, capacity_bytes, time_limit_s=time_limit_s, minimize=True, seed=seed
        )
        return _relabel(result, f"auto:{result.algorithm}", start)
    greedy = load_allocator("portfolio")(
        buffers, capacity_bytes, time_limit_s=time_limit_s, minimize=False, seed=seed
    )
    if greedy.status is not AllocationStatus.TIMEOUT:  # it fits, or cannot fit at all
        return _relabel(greedy, f"auto:{greedy.algorithm}", start)
    remaining = max(0.0, time_limit_s - (time.perf_counter() - start))
    result = load_allocator("exact")(
        buffers, capacity_bytes, time_limit_s=remaining, minimize=False, seed=seed
    )
    if result.status is AllocationStatus.SOLVED:
        return _relabel(result, f"auto:{result.algorithm}", start)
    # Infeasible or out of time: keep the portfolio's packing as the best partial answer.
    return _relabel(_with_offsets(result, greedy), f"auto:{result.algorithm}", start)


def _with_offsets(result: AllocationResult, source: AllocationResult) -> AllocationResult:
    """Return ``result`` carrying the offsets and height of ``source``."""
    return AllocationResult(
        result.status,
        source.offsets_bytes,
        source.height_bytes,
        result.max_live_bytes,
        result.proven_optimal,
        result.algorithm,
        result.wall_s,
        result.message,
    )


def _relabel(result: AllocationResult, algorithm: str, start: float) -> AllocationResult:
    """Return ``result`` named ``algorithm`` with the wall time measured from ``start``."""
    return AllocationResult(
        result.status,
        result.offsets_bytes,
        result.height_bytes,
        result.max_live_bytes,
        result.proven_optimal,
        algorithm,
        time.perf_counter() - start,
        result.message,
    )
