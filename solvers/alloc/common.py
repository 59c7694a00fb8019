"""What every allocator shares: its common options, the set-up of one call, the results.

:func:`prepare` runs the steps every allocation starts with, each of which may end it
early with a clear result instead of a traceback: the 64-bit range check, the stop
event, a memory estimate of the overlap graph *before* it is built, the choice between
Python and compiled kernels, and the packing of the buffers into flat arrays.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memplan.dsa import AllocationResult, Buffer, check_buffers, make_allocation
from memplan.options import check_choice, check_range, check_seed, seed_field, type_options
from memplan.solver import Budget, Status
from memplan.solvers.alloc.intervals import Packed, flat_arrays, overlap_counts, pack_arrays
from memplan.solvers.alloc.sweep import sweep_offsets
from memplan.solvers.jit import KERNEL_MODES, KernelChoice
from memplan.units import format_bytes

#: Share of the memory available at the start of a call that an allocator may use
#: when its ``memory_limit_bytes`` option is 0.
MEMORY_SHARE = 0.5

#: Seconds per buffer that the check of a packing (:func:`memplan.dsa.make_allocation`
#: validates every result) may take on a loaded machine: 2 to 4 us each for 100,000
#: buffers at a load average of 5. The search stops that much before the time limit, so
#: that its result is checked within the limit too (it ended 0.6 s after it).
CHECK_S_PER_BUFFER = 5e-6

#: Entries per second the set-up kernels visit (overlap graph, section lists), low
#: enough for a loaded machine: set-up that would not end within the time left is not
#: started (182 million overlapping pairs took 6 s to build at a load average of 9).
ENTRIES_PER_S = 20_000_000
#: The same for the Python kernels (about 550,000 on an idle machine: 4.5 million
#: entries took 8.2 s), which run while a fresh installation compiles in the background.
ENTRIES_PER_S_PYTHON = 300_000


@dataclass(frozen=True, slots=True)
class AllocatorOptions:
    """The options every allocator has (each allocator adds its own after these)."""

    seed: int = seed_field("seed of any randomised step; same seed, same offsets")
    minimize: bool = field(
        default=False,
        metadata={
            "help": "look for the lowest height (at most the capacity) instead of the first "
            "packing that fits; single-pass greedies ignore it"
        },
    )
    kernels: str = field(
        default="auto",
        metadata={
            "help": "auto (plain Python for small instances, numba-compiled kernels for the "
            "rest) | python | compiled; every choice gives the same offsets"
        },
    )
    node_limit: int = field(
        default=0,
        metadata={
            "help": "search nodes the exact search may expand per call, 0 = no limit: unlike "
            "a time limit it does not depend on the machine or its load, so the same "
            "buffers get the same offsets; >= 0"
        },
    )
    memory_limit_bytes: int = field(
        default=0,
        metadata={
            "help": "bytes of working memory the allocator may plan to use; 0 = half of "
            "the memory available when the call starts; >= 0"
        },
    )

    def __post_init__(self) -> None:
        type_options(self)
        name = str(getattr(self, "name", "allocator"))
        check_seed(name, self.seed)
        check_choice(name, "kernels", self.kernels, KERNEL_MODES)
        check_range(name, "memory_limit_bytes", self.memory_limit_bytes, 0)
        check_range(name, "node_limit", self.node_limit, 0)

    def common_options(self) -> dict[str, Any]:
        """The options every allocator has, as given to this one (to make another)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(AllocatorOptions)}


def available_memory_bytes() -> int:
    """Memory the system can give now: ``MemAvailable`` on Linux, else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return 8 << 30


def memory_limit(options: AllocatorOptions) -> int:
    """Bytes the allocator may use: its option, or :data:`MEMORY_SHARE` of what is free."""
    if options.memory_limit_bytes:
        return options.memory_limit_bytes
    return int(available_memory_bytes() * MEMORY_SHARE)


def pack_memory_bytes(n: int, pairs: int) -> int:
    """Peak bytes of :func:`prepare`: flat arrays and sweep (24 int64 per buffer), and
    the overlap graph (two int32 entries per overlapping pair)."""
    return 8 * 24 * n + 4 * 2 * pairs + (1 << 20)


def too_slow(
    what: str, entries: int, budget: Budget, kernels: KernelChoice | None = None
) -> str | None:
    """Why building ``what`` (``entries`` to visit) with ``kernels`` (compiled ones when
    None) cannot end in the time left, or None."""
    python = kernels is not None and kernels.python
    need_s = entries / (ENTRIES_PER_S_PYTHON if python else ENTRIES_PER_S)
    left_s = budget.remaining_s()
    if need_s <= left_s:
        return None
    if budget.interrupted():  # Ctrl-C (or the stop event), not the clock
        return f"interrupted before {what} was built"
    how = ""
    if kernels is not None and kernels.waiting:
        how = " with the Python kernels (the compiled ones are being compiled in the background)"
    # Not "out of time": the limit has not passed, the set-up would outlast it.
    return (
        f"not started: {what} would take about {need_s:.0f} s to build{how}, more than "
        f"the {left_s:.1f} s left"
    )


def over_memory(what: str, need: int, limit: int) -> str:
    """The message of a call refused because ``what`` would need ``need`` bytes."""
    return (
        f"over the memory limit: {what} would need about {format_bytes(need)}, more than "
        f"the {format_bytes(limit)} allowed (option memory_limit_bytes)"
    )


@dataclass(frozen=True)
class Prepared:
    """One allocation call, set up."""

    buffers: Sequence[Buffer]  # the buffers, in the caller's order
    capacity: int | None  # the capacity asked for (None: no limit)
    budget: Budget  # the caller's budget less the time the final check needs: search by it
    cap: int  # the capacity the kernels use: min(capacity, a height nothing exceeds)
    packed: Packed  # flat arrays, overlap graph and sections
    kernels: KernelChoice  # Python or compiled kernels
    pairs: int  # buffers live at a common step
    spans: int  # sum over buffers of the sections each spans
    memory_limit_bytes: int  # working memory the call may use

    @property
    def max_live(self) -> int:
        """Largest total size live at one step."""
        return self.packed.max_live


def prepare(
    allocator: Any, buffers: Sequence[Buffer], capacity: int | None, budget: Budget
) -> Prepared | AllocationResult:
    """Set up one call of ``allocator``, or return the result that ends it early.

    Early ends: no buffers (the empty packing), a stop before anything ran, a dense
    instance that the graph-free sweep (:mod:`.sweep`) packs at max live (OPTIMAL
    without the overlap graph) or proves too large for the capacity (INFEASIBLE), or an
    overlap graph larger than the memory limit or slower to build than the time left
    (then the sweep's packing, the message saying why the allocator did not run). The
    search runs by the returned job's ``budget``, which keeps back the time the check
    of its result takes.

    Raises:
        InputFormatError: when sizes add up beyond the 64-bit range.
    """
    stacked = check_buffers(buffers)
    if not buffers:
        return make_allocation(
            allocator, buffers, capacity, Status.FEASIBLE, (), budget, max_live=0
        )
    arrays = flat_arrays(buffers)
    lower, upper, size = arrays[:3]
    pairs, spans = overlap_counts(lower, upper, size)
    entries = len(buffers) + 2 * pairs
    limit = memory_limit(allocator)
    need = pack_memory_bytes(len(buffers), pairs)
    what = f"the overlap graph of {len(buffers)} buffers ({pairs} overlapping pairs)"
    swept: GraphFree | None = None
    if entries > SWEEP_FIRST_ENTRIES and not budget.should_stop():
        # Dense: a sweep over time costs O(n log n) where the graph is quadratic; when
        # it meets the bound (all buffers live at once, say), nothing more is needed.
        swept = graph_free(arrays, budget)
        ends = swept.settles(capacity)
        if ends is not None:
            return swept.result(allocator, buffers, capacity, budget, what, ends)
    if need > limit:
        return graph_free_fallback(
            allocator,
            buffers,
            capacity,
            budget,
            arrays,
            swept,
            what,
            over_memory(what, need, limit),
        )
    if budget.should_stop():
        why = "stopped" if budget.interrupted() else "out of time"
        return stopped(allocator, buffers, capacity, budget, f"{why} before packing started")
    kernels = KernelChoice(allocator.kernels, entries)
    slow = too_slow(what, entries, budget, kernels)
    if slow is not None:
        return graph_free_fallback(allocator, buffers, capacity, budget, arrays, swept, what, slow)
    packed = pack_arrays(*arrays, kernels=kernels)
    cap = stacked if capacity is None else min(capacity, stacked)
    search = reserved(budget, CHECK_S_PER_BUFFER * len(buffers))
    return Prepared(buffers, capacity, search, cap, packed, kernels, pairs, spans, limit)


#: Overlap-graph entries (buffers plus twice the overlapping pairs) above which
#: :func:`prepare` first packs by the graph-free sweep (about 1 s of set-up at
#: :data:`ENTRIES_PER_S`; the sweep takes about 0.1 s for 20,000 buffers, 0.4 s for
#: 60,000). A realistic 60,000-buffer trace has about 14 million entries; 20,000
#: buffers all live at once have 400 million.
SWEEP_FIRST_ENTRIES = 20_000_000


@dataclass(frozen=True)
class GraphFree:
    """A packing by the sweep over time (:mod:`.sweep`), made without the overlap graph."""

    offsets: np.ndarray  # int64[n], in the caller's order
    height: int  # highest byte used
    max_live: int  # largest total size live at one step: the bound on any height
    top: int  # the highest byte some buffer needs at least (size, or fixed offset + size)
    swept: bool  # False: the budget stopped the sweep, the buffers are stacked instead

    def how(self) -> str:
        """What made the packing, for messages."""
        if self.swept:
            return "a best-fit sweep over time (no overlap graph)"
        return "stacking the buffers (the sweep over time was stopped)"

    def settles(self, capacity: int | None) -> Status | None:
        """OPTIMAL when the packing meets max live, INFEASIBLE when the capacity is
        evidently too small, else None (the allocator should run)."""
        if capacity is not None and max(self.max_live, self.top) > capacity:
            return Status.INFEASIBLE
        if self.height == self.max_live:
            return Status.OPTIMAL
        return None

    def result(
        self,
        allocator: Any,
        buffers: Sequence[Buffer],
        capacity: int | None,
        budget: Budget,
        what: str,
        status: Status,
        why: str = "",
    ) -> AllocationResult:
        """The allocation result of this packing; ``why``: why the allocator did not run."""
        fits = capacity is None or self.height <= capacity
        if status is Status.OPTIMAL:
            status = Status.FEASIBLE  # make_allocation makes it OPTIMAL: height == bound
            message = f"packed by {self.how()} at max live, which no packing can beat"
            message += f"; {what} was not needed" if what else f" ({why})" if why else ""
        elif status is Status.INFEASIBLE:
            bound = max(self.max_live, self.top)
            message = (
                f"no packing fits {capacity} B: the buffers need at least {bound} B "
                f"(max live {self.max_live} B); the packing shown is by {self.how()}"
            )
        elif fits:
            within = "not proven minimal"
            if capacity is not None and not allocator.minimize:
                within = f"which fits {capacity} B"
            message = f"{why}; kept a packing by {self.how()}, {within}"
        else:
            message = (
                f"{why}; no packing within {capacity} B found (the packing kept, by "
                f"{self.how()}, is {self.height} B high)"
            )
        return make_allocation(
            allocator,
            buffers,
            capacity,
            status,
            self.offsets.tolist(),
            budget,
            max_live=self.max_live,
            algorithm=f"{allocator.name}:{'sweep' if self.swept else 'stacked'}",
            message=message,
            stats={"kernels": "python", "sweep": self.swept},
        )


def graph_free(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], budget: Budget
) -> GraphFree:
    """Pack ``arrays`` (:func:`~.intervals.flat_arrays`) by the sweep over time, by
    ``budget`` less the time the check of the result takes."""
    lower, upper, size, align, fixed = arrays
    search = reserved(budget, CHECK_S_PER_BUFFER * int(size.size))
    offsets, swept = sweep_offsets(lower, upper, size, align, fixed, search)
    height = int((offsets + size).max()) if size.size else 0
    top = int(np.where(fixed >= 0, fixed + size, size).max()) if size.size else 0
    return GraphFree(offsets, height, live_peak(lower, upper, size), top, swept)


def graph_free_fallback(
    allocator: Any,
    buffers: Sequence[Buffer],
    capacity: int | None,
    budget: Budget,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    swept: GraphFree | None,
    what: str,
    why: str,
) -> AllocationResult:
    """The result of a call whose overlap graph cannot be built (``why``): the packing
    of the sweep over time (made now unless ``swept``), FEASIBLE when it fits the
    capacity (TIMEOUT with ``minimize``: not proven minimal), INFEASIBLE when the
    capacity is evidently too small, else TIMEOUT; the message says ``why`` (``what``:
    the overlap graph, for the message of a packing at max live)."""
    if swept is None:
        swept = graph_free(arrays, budget)
    status = swept.settles(capacity)
    if status is None:
        fits = capacity is None or swept.height <= capacity
        status = Status.FEASIBLE if fits and not allocator.minimize else Status.TIMEOUT
    return swept.result(allocator, buffers, capacity, budget, what, status, why)


def reserved(budget: Budget, seconds: float) -> Budget:
    """``budget`` ending ``seconds`` earlier (same start, stop event and progress sink).

    The caller's budget still has its say: a subclass that stops on its own terms (a
    test's deterministic clock) stops the reserved one too.
    """
    if budget.time_limit_s is None or seconds <= 0:
        return budget
    return _Reserved(
        time_limit_s=max(budget.time_limit_s - seconds, 0.0),
        started_at_s=budget.started_at_s,
        stop_event=budget.stop_event,
        on_progress=budget.on_progress,
        caller=budget,
    )


@dataclass(frozen=True)
class _Reserved(Budget):
    """A budget that ends before the caller's (:func:`reserved`)."""

    caller: Budget | None = None  # the budget it was made from

    def should_stop(self) -> bool:
        """True once this budget's earlier end is reached, or the caller's says stop."""
        return super().should_stop() or (self.caller is not None and self.caller.should_stop())


def stopped(
    allocator: Any,
    buffers: Sequence[Buffer],
    capacity: int | None,
    budget: Budget,
    why: str,
    max_live: int | None = None,
) -> AllocationResult:
    """The TIMEOUT result without offsets of a call that could not run (``why``)."""
    if max_live is None:
        lower, upper, size = flat_arrays(buffers)[:3]
        max_live = live_peak(lower, upper, size)
    return make_allocation(
        allocator, buffers, capacity, Status.TIMEOUT, None, budget, max_live=max_live, message=why
    )


def sweep_that_fits(job: Prepared, budget: Budget) -> GraphFree | None:
    """The packing of the sweep over time (:func:`graph_free`) when it fits
    ``job.capacity``, else None. A decision search makes it first (O(n log n): 0.45 s
    for 60,000 buffers) and keeps it when the search finds no packing in time; made
    after the search, in time kept back, it came too late on a loaded machine."""
    if job.capacity is None:
        return None
    p = job.packed
    swept = graph_free((p.lower, p.upper, p.size, p.align, p.fixed), budget)
    return swept if swept.height <= job.capacity else None


def stopped_mid_pass(allocator: Any, job: Prepared, budget: Budget) -> AllocationResult:
    """The result of a call stopped before its first packing was complete: the buffers
    packed without the graph (:func:`graph_free`: stacked at once, the budget being
    spent), a valid packing though a poor one, never none; TIMEOUT unless it fits a
    capacity without ``minimize`` (FEASIBLE) or the capacity is evidently too small."""
    why = "stopped" if budget.interrupted() else "out of time"
    p = job.packed
    return graph_free_fallback(
        allocator,
        job.buffers,
        job.capacity,
        budget,
        (p.lower, p.upper, p.size, p.align, p.fixed),
        None,
        "",
        f"{why} before the first greedy packing was complete",
    )


def live_peak(lower: np.ndarray, upper: np.ndarray, size: np.ndarray) -> int:
    """Max live of the arrays (numpy sweep; ends before starts at equal steps)."""
    if size.size == 0:
        return 0
    times = np.concatenate([upper, lower])
    deltas = np.concatenate([-size, size])
    order = np.lexsort((deltas, times))
    return max(int(np.cumsum(deltas[order]).max()), 0)


def aligned_live_bound(p: Packed) -> int:
    """A lower bound on every packing's height that counts alignment (>= max live).

    Proof: take an alignment ``a`` and, at one step, the live non-empty buffers whose
    offsets must be multiples of ``a`` (their alignment is a multiple of ``a``, or they
    are fixed at such an offset). In address order, each starts on a multiple of ``a``
    at or above the end of the one below, so ``o[k+1] >= o[k] + a * ceil(s[k] / a)``;
    the highest ends ``s`` above its start. The height is then at least
    ``a * sum(ceil(s / a))`` less the highest one's padding ``a * ceil(s / a) - s``,
    which is at most the largest padding of any of them. Maximised over the alignments
    and steps.
    (300 one-byte buffers aligned to 64 B, all live at once: 19,137 B, the optimum,
    where max live says 300 B.)
    """
    best = p.max_live
    for a in np.unique(p.align[p.align > 1]).tolist():
        keep = (p.size > 0) & (p.align % a == 0) & ((p.fixed < 0) | (p.fixed % a == 0))
        rounded = -(-p.size[keep] // a) * a
        if rounded.size == 0 or float(rounded.astype(np.float64).sum()) > 2.0**62:
            continue  # nothing to count, or sums beyond the 64-bit range
        peak = live_peak(p.lower[keep], p.upper[keep], rounded)
        best = max(best, peak - int((rounded - p.size[keep]).max()))
    return best


def obvious_infeasibility(
    p: Packed, capacity_bytes: int | None, buffers: Sequence[Buffer] | None = None
) -> str | None:
    """Return why no packing can fit ``capacity_bytes`` when that is evident, else None.

    Evident means: the max live exceeds the capacity, a buffer is larger than it, or a
    fixed buffer ends above it. ``buffers`` (the caller's, in ``p``'s order) name that
    buffer by its id; without them, by its index.
    """
    if capacity_bytes is None:
        return None
    if p.max_live > capacity_bytes:
        return f"max live {p.max_live} B exceeds the capacity {capacity_bytes} B"
    tops = np.where(p.fixed >= 0, p.fixed + p.size, p.size)
    if p.n and int(tops.max()) > capacity_bytes:
        b = int(np.argmax(tops))
        what = "fixed buffer" if p.fixed[b] >= 0 else "buffer"
        named = f"#{b}" if buffers is None else repr(buffers[b].id)
        return f"{what} {named} needs bytes up to {int(tops[b])} > capacity {capacity_bytes} B"
    return None


def heuristic_result(
    allocator: Any,
    job: Prepared,
    offsets: np.ndarray,
    algorithm: str,
    budget: Budget,
    *,
    complete: bool = True,
    stats: dict[str, Any] | None = None,
) -> AllocationResult:
    """The result of a heuristic packing.

    FEASIBLE if it fits (TIMEOUT instead when a ``minimize`` run was cut short, i.e.
    not ``complete``), INFEASIBLE when the capacity is evidently too small, else
    TIMEOUT: the heuristic found no packing that fits, which proves nothing. No other
    status says that (FEASIBLE needs a packing that fits, INFEASIBLE a proof), and
    :class:`~memplan.dsa.AllocationResult` counts it as TIMEOUT; the message then says
    the heuristic gave up with time left, never that the time ran out.
    """
    height = int(np.max(offsets + job.packed.size)) if job.packed.n else 0
    fits = job.capacity is None or height <= job.capacity
    message = ""
    if fits:
        status = Status.FEASIBLE if complete or not allocator.minimize else Status.TIMEOUT
        if status is Status.TIMEOUT:
            message = "stopped before the search for a lower height finished"
    else:
        why = obvious_infeasibility(job.packed, job.capacity, job.buffers)
        if why is not None:
            status, message = Status.INFEASIBLE, f"no packing fits {job.capacity} B: {why}"
        else:
            status = Status.TIMEOUT
            if complete:  # it ended by itself: time is left, the heuristic gave up
                message = (
                    f"{algorithm} found no packing within {job.capacity} B (its best is "
                    f"{height} B high); a heuristic proves nothing: the exact search (exact, "
                    "auto) may still find one"
                )
            else:
                message = (
                    f"no packing within {job.capacity} B found (best height {height} B); "
                    "stopped before every variant ran"
                )
    return make_allocation(
        allocator,
        job.buffers,
        job.capacity,
        status,
        offsets.tolist(),
        budget,
        max_live=job.max_live,
        algorithm=algorithm,
        message=message,
        stats={"kernels": job.kernels.used, **(stats or {})},
    )
