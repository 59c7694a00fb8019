"""Dynamic storage allocation (DSA): the problem types, checks and the allocator entry.

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

This module is the core side: it never imports a solver. Allocators are plug-ins of
the same shape as solvers (:mod:`memplan.registry`, kind ``ALLOCATOR``): frozen
dataclasses of options with a ``name``, a ``seed`` and ``minimize``, and
``allocate(buffers, capacity_bytes, budget) -> AllocationResult``, reporting the
solvers' :class:`~memplan.solver.Status` and honouring the same
:class:`~memplan.solver.Budget` (time limit and stop event). :func:`allocate` is the
convenience entry; :func:`make_allocation` builds (and validates) every result.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, ClassVar, Protocol, runtime_checkable

from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.frozen import refuse_assignment
from memplan.registry import PluginKind, available, is_installed, make_plugin, plugin_class
from memplan.solver import Budget, Status

#: Entry-point group under which allocators register (see :mod:`memplan.registry`).
ENTRY_POINT_GROUP = PluginKind.ALLOCATOR.value

#: Default time limit of :func:`allocate` when no budget is given, in seconds.
DEFAULT_TIME_LIMIT_S = 60.0

#: Largest value of a 64-bit signed integer: every step, size, offset and sum of sizes
#: must stay at or below it (the allocators' kernels compute in int64).
INT64_MAX = (1 << 63) - 1


#: Buffer fields that are whole numbers, with the names messages use for them.
_INTEGER_FIELDS = (
    ("lower", "lower"),
    ("upper", "upper"),
    ("size_bytes", "size"),
    ("alignment_bytes", "alignment"),
    ("fixed_offset_bytes", "fixed offset"),
)


@refuse_assignment("make another: dataclasses.replace(buffer, size_bytes=...)")
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
        lower, upper, size, align, fixed = (
            self.lower,
            self.upper,
            self.size_bytes,
            self.alignment_bytes,
            self.fixed_offset_bytes,
        )
        if (
            type(lower) is int
            and type(upper) is int
            and type(size) is int
            and type(align) is int
            and (fixed is None or type(fixed) is int)
        ):  # the common case, quickly: whole numbers that need no conversion
            if (
                fixed is None
                and 0 <= lower < upper <= INT64_MAX
                and 0 <= size <= INT64_MAX
                and 1 <= align <= INT64_MAX
            ):
                return  # what buffer_problem accepts, checked in one go
        else:
            self._convert_integers()
        problem = buffer_problem(
            self.lower, self.upper, self.size_bytes, self.alignment_bytes, self.fixed_offset_bytes
        )
        if problem:
            raise InputFormatError(f"buffer {self.id!r}: {problem}")

    def _convert_integers(self) -> None:
        """Make numpy (and other integral) fields ints; refuse anything that is not whole."""
        for name, what in _INTEGER_FIELDS:
            value = getattr(self, name)
            if type(value) is int or (value is None and name == "fixed_offset_bytes"):
                continue
            if isinstance(value, Integral) and not isinstance(value, bool):
                object.__setattr__(self, name, int(value))  # a numpy integer, say
                continue
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise InputFormatError(
                f"buffer {self.id!r}: {what} must be a whole number, got {shown} "
                f"({type(value).__name__})"
            )

    def __str__(self) -> str:
        extra = f" align {self.alignment_bytes}" if self.alignment_bytes != 1 else ""
        if self.fixed_offset_bytes is not None:
            extra += f" @ {self.fixed_offset_bytes}"
        return f"{self.id}: [{self.lower}, {self.upper}) {self.size_bytes} B{extra}"


def buffer_problem(
    lower: int, upper: int, size: int, alignment: int, fixed: int | None
) -> str | None:
    """Return what is wrong with one buffer's fields, or None when they are sound."""
    for what, value in (
        ("lower", lower),
        ("upper", upper),
        ("size", size),
        ("alignment", alignment),
        ("fixed offset", fixed),
    ):
        if value is None and what == "fixed offset":
            continue  # no fixed offset: the allocator chooses one
        if isinstance(value, bool) or not isinstance(value, Integral):
            return f"{what} {value!r} is not a whole number ({type(value).__name__})"
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            return f"{what} {value} is outside the 64-bit range (magnitude below 2^63)"
    if lower >= upper:
        return f"empty lifetime [{lower}, {upper}): lower must be < upper"
    if upper - lower > INT64_MAX:
        return f"lifetime [{lower}, {upper}) is longer than 2^63-1 steps"
    if size < 0:
        return f"negative size {size}: sizes are bytes >= 0"
    if alignment < 1:
        return f"alignment {alignment} must be >= 1"
    if fixed is not None:
        if fixed < 0:
            return f"fixed offset {fixed} must be >= 0"
        if fixed % alignment:
            return f"fixed offset {fixed} is not a multiple of its alignment {alignment}"
        if fixed + size > INT64_MAX:
            return f"fixed offset {fixed} + size {size} ends beyond 2^63-1 bytes"
    return None


def stacked_height_bytes(buffers: Sequence[Buffer]) -> int:
    """Return a height no allocator's packing exceeds: the free buffers stacked, with padding.

    That is the highest fixed buffer's top plus, for every other buffer, its size and
    the most its alignment can skip (``alignment - 1``). A capacity at or above it
    constrains nothing.
    """
    top = 0
    stacked = 0
    for b in buffers:
        if b.fixed_offset_bytes is not None:
            top = max(top, b.fixed_offset_bytes + b.size_bytes)
        elif b.size_bytes:
            stacked += b.size_bytes + b.alignment_bytes - 1
    return top + stacked


def fixed_offset_clash(buffers: Sequence[Buffer]) -> tuple[Buffer, Buffer] | None:
    """Two buffers with fixed offsets that share a byte at one step (the earlier listed
    first), or None: then no packing exists, whatever the capacity."""
    fixed = [b for b in buffers if b.fixed_offset_bytes is not None]
    if len(fixed) < 2:
        return None
    offsets = [b.fixed_offset_bytes or 0 for b in fixed]
    for j, i in overlapping_pairs(fixed, offsets):
        return fixed[j], fixed[i]
    return None


def check_buffers(buffers: Sequence[Buffer], what: str = "the buffers") -> int:
    """Check that every packing of ``buffers`` stays in the 64-bit range; return its bound.

    Returns:
        :func:`stacked_height_bytes` of the buffers.

    Raises:
        InputFormatError: one line naming the largest buffer, when the sizes (plus
            alignment padding and fixed offsets) add up beyond 2^63-1 bytes; or naming
            two buffers whose fixed offsets overlap while both are live (no packing
            exists, whatever the capacity).
    """
    clash = fixed_offset_clash(buffers)
    if clash is not None:
        a, b = clash
        raise InputFormatError(
            f"{what}: buffer {b.id!r} at fixed offset {b.fixed_offset_bytes} overlaps buffer "
            f"{a.id!r} at fixed offset {a.fixed_offset_bytes}: both are live at step "
            f"{max(a.lower, b.lower)}; move one of them"
        )
    bound = stacked_height_bytes(buffers)
    if bound > INT64_MAX:
        largest = max(buffers, key=lambda b: b.size_bytes)
        raise InputFormatError(
            f"{what}: sizes add up to {bound} bytes (with alignment padding and fixed "
            f"offsets), beyond the 64-bit range (2^63-1 bytes); the largest is buffer "
            f"{largest.id!r} with {largest.size_bytes} bytes: check the sizes"
        )
    return bound


@refuse_assignment("make another: dataclasses.replace(result, ...)")
@dataclass(frozen=True, slots=True)
class AllocationResult:
    """What an allocator returns; offsets are aligned with the input buffer order.

    OPTIMAL: the height is proven minimal (it equals ``lower_bound_bytes``) and fits.
    FEASIBLE: a packing within the capacity (or any packing, without a capacity).
    INFEASIBLE: proven that no packing fits the capacity. TIMEOUT: no answer the other
    three give: out of time, stopped, over the memory allowed, not started because it
    could not end in the time left, or a heuristic that ended by itself without a
    packing that fits (which proves nothing; the message says which); the best offsets
    so far, possibly above the capacity, or None. Use :attr:`fits` to know whether the
    offsets fit the capacity.
    """

    status: Status  # OPTIMAL, FEASIBLE, INFEASIBLE or TIMEOUT
    offsets_bytes: tuple[int, ...] | None  # one offset per input buffer, or None
    height_bytes: int | None  # highest byte used by offsets_bytes (max offset + size)
    capacity_bytes: int | None  # the capacity asked for (None: no limit)
    max_live_bytes: int  # largest sum of sizes live at one step: a bound on any height
    lower_bound_bytes: int  # proven bound on any height: max live, or more when proven
    algorithm: str  # the allocator and the variant that produced offsets_bytes
    wall_s: float  # wall-clock seconds spent
    message: str = ""  # human-readable detail (why infeasible, what ran out)
    stats: Mapping[str, Any] = field(default_factory=dict)  # counters (search nodes, ...)

    @property
    def fits(self) -> bool:
        """True when there are offsets and they fit the capacity (if one was given)."""
        if self.offsets_bytes is None or self.height_bytes is None:
            return False
        return self.capacity_bytes is None or self.height_bytes <= self.capacity_bytes

    @property
    def ratio(self) -> float | None:
        """Height divided by max live (1.0 is a perfect packing), or None."""
        if self.height_bytes is None:
            return None
        if self.max_live_bytes == 0:
            return 1.0
        return self.height_bytes / self.max_live_bytes


@runtime_checkable
class Allocator(Protocol):
    """What every allocator provides (a frozen dataclass of options)."""

    name: ClassVar[str]  # registry name, e.g. "exact"
    seed: int  # the only source of randomness
    minimize: bool  # look for the lowest height instead of any packing that fits

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """Place ``buffers`` within ``capacity_bytes`` (None: no limit) within ``budget``."""
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


# --------------------------------------------------------------------------- results


def make_allocation(
    allocator: Any,
    buffers: Sequence[Buffer],
    capacity_bytes: int | None,
    status: Status,
    offsets: Sequence[int] | None,
    budget: Budget,
    *,
    max_live: int,
    lower_bound_bytes: int | None = None,
    algorithm: str | None = None,
    message: str = "",
    stats: Mapping[str, Any] | None = None,
) -> AllocationResult:
    """Validate ``offsets`` and wrap them; every allocator builds its result here.

    ``status`` says how the search ended: FEASIBLE (a packing within the capacity),
    INFEASIBLE (proven impossible) or TIMEOUT (neither: see :class:`AllocationResult`).
    It becomes OPTIMAL when the packing
    fits and its height equals the proven lower bound (``lower_bound_bytes``, at least
    ``max_live``).

    Raises:
        InvalidPlanError: for an allocator bug: an invalid packing, FEASIBLE offsets
            above the capacity, INFEASIBLE with a packing that fits, or a bound above
            the height.
    """
    name = algorithm or allocator.name
    bound = max(max_live, lower_bound_bytes or 0)
    offs = None if offsets is None else tuple(int(o) for o in offsets)
    height = None
    if offs is not None:
        errors = validate_packing(buffers, offs)
        if errors:
            raise InvalidPlanError(
                f"allocator {name!r} returned an invalid packing ({len(errors)} problem(s)); "
                f"first: {errors[0]}"
            )
        height = max((o + b.size_bytes for b, o in zip(buffers, offs, strict=True)), default=0)
        if height < bound:
            raise InvalidPlanError(
                f"allocator {name!r}: lower bound {bound} B above its packing's height {height} B"
            )
    fits = height is not None and (capacity_bytes is None or height <= capacity_bytes)
    if status in (Status.FEASIBLE, Status.OPTIMAL) and not fits:
        raise InvalidPlanError(f"allocator {name!r}: {status.value} without a packing that fits")
    if status is Status.INFEASIBLE and (fits or capacity_bytes is None):
        raise InvalidPlanError(f"allocator {name!r}: infeasible, yet a packing fits")
    if fits and height == bound:
        status = Status.OPTIMAL
    return AllocationResult(
        status=status,
        offsets_bytes=offs,
        height_bytes=height,
        capacity_bytes=capacity_bytes,
        max_live_bytes=max_live,
        lower_bound_bytes=bound,
        algorithm=name,
        wall_s=budget.elapsed_s(),
        message=message,
        stats=dict(stats or {}),
    )


# --------------------------------------------------------------------------- registry


def available_allocators() -> list[str]:
    """Return the registered allocator names, sorted."""
    return available(PluginKind.ALLOCATOR)


def allocator_installed(name: str) -> bool:
    """Whether an allocator is registered under ``name`` (the installed ones are read
    again only for a name not seen)."""
    return is_installed(PluginKind.ALLOCATOR, name)


def allocator_class(name: str) -> type:
    """Load an allocator class by registry name or ``package.module:Class`` path."""
    return plugin_class(PluginKind.ALLOCATOR, name)


def make_allocator(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate an allocator with options; strings are converted to the option's type.

    Raises:
        ConfigError: for an unknown allocator or option (the message lists the known ones).
    """
    return make_plugin(PluginKind.ALLOCATOR, name, options)


def allocate(
    buffers: Sequence[Buffer],
    capacity_bytes: int | None,
    *,
    algorithm: str | Allocator = "auto",
    budget: Budget | None = None,
    minimize: bool = False,
    seed: int = 0,
    node_limit: int = 0,
) -> AllocationResult:
    """Choose an offset for every buffer (the convenience entry to the allocator plug-ins).

    Args:
        buffers: the buffers; the result's offsets follow this order.
        capacity_bytes: the scratchpad size, or None for no limit.
        algorithm: a registered allocator name (``auto``: the greedy portfolio, then the
            exact search where it falls short; ``exact``; ``portfolio``; a named greedy;
            see :func:`available_allocators`), or an allocator instance (then ``minimize``
            and ``seed`` are its own).
        budget: time limit and stop event; default :data:`DEFAULT_TIME_LIMIT_S` seconds.
        minimize: look for the lowest height (at most ``capacity_bytes`` if given) and
            prove it optimal if time allows, instead of any packing that fits.
        seed: seed of any randomised step; same seed, same offsets.
        node_limit: search nodes an exact search may expand per call (0: no limit);
            bounded by nodes rather than seconds, the same input gives the same offsets
            under any load (a named allocator only; an instance keeps its own).

    Returns:
        See :class:`AllocationResult` for the statuses.

    Raises:
        ConfigError: for an unknown algorithm, a budget that is not a Budget, or a
            capacity below 0 or beyond 2^63-1.
        InputFormatError: when the sizes add up beyond the 64-bit range, or two fixed
            offsets overlap.

    Speed (2 shared cores): with a capacity and ``minimize=False``, ``auto`` returns as
    soon as one greedy variant fits (about 1-2 s for 100,000 buffers, mostly building
    the overlap graph); the full ``portfolio`` takes about 5 s for 60,000 buffers;
    ``exact`` and ``minimize`` may use the whole time limit. A dense instance (more than
    about 10 million overlapping pairs) is first packed by a sweep over time without the
    overlap graph (20,000 buffers all live at once: 0.3 s, optimal); when that graph
    cannot be built in the memory or time left, the sweep's packing is returned and the
    message says why. Small instances run in
    plain Python; larger ones load numba-compiled kernels (the very first run in an
    installation compiles them, about 10-20 s, and says so on stderr).
    """
    if (
        isinstance(buffers, (str, bytes))
        or not isinstance(buffers, Sequence)
        or not all(isinstance(b, Buffer) for b in buffers)
    ):
        raise ConfigError("allocate: buffers must be a list of memplan.dsa.Buffer")
    if capacity_bytes is not None and (
        isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int)
    ):
        raise ConfigError(
            f"allocate: capacity_bytes must be a whole number or None, got {capacity_bytes!r}"
        )
    if capacity_bytes is not None and not 0 <= capacity_bytes <= INT64_MAX:
        raise ConfigError(
            f"capacity {capacity_bytes} bytes must be >= 0 and within the 64-bit range "
            f"(at most 2^63-1 bytes)"
        )
    if budget is None:
        budget = Budget(time_limit_s=DEFAULT_TIME_LIMIT_S)
    elif not isinstance(budget, Budget):
        raise ConfigError(
            "allocate: budget must be a memplan Budget (e.g. Budget(time_limit_s=10)) or "
            f"None, got {type(budget).__name__}"
        )
    if isinstance(algorithm, str):
        options: dict[str, object] = {"seed": seed, "minimize": minimize}
        if node_limit:
            options["node_limit"] = node_limit
        allocator = make_allocator(algorithm, options)
    else:
        allocator = algorithm
    result: AllocationResult = allocator.allocate(buffers, capacity_bytes, budget)
    return result
