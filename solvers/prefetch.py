"""The prefetch pass: start loads earlier where the scratchpad has room, so DMA hides.

Under the ``overlap`` timing model (:mod:`memplan.timing`) a ``load`` residency
``[s, e)`` is ready when step ``s-1`` ends; its first reader waits for what is left.
Starting the residency earlier, at ``s' < s``, lets the load run beside the compute of
steps ``s' .. s-1``, at the price of holding its space for those steps::

    step:          2      3      4      5
    before   x                  [load ─)       step 5 stalls for the whole load
    after    x     [load ───────────────)      the load runs beside steps 3 and 4

The traffic never changes: the same residencies arrive and leave the same way; only
load starts move (and, when re-placed, offsets). A load may start no earlier than the
end of its tensor's previous stay, than the store that gives an activation its DRAM
copy, and than the last stay that used its addresses. Two ways to find room:

- **same offsets**: each load grows backwards over the steps where its own addresses
  are free (no other residency moves);
- **re-placed**: each load grows backwards while the aligned live bytes stay within
  the capacity, then every residency is placed again through the allocator
  (:func:`memplan.dsa.allocate`), after which loads grow again at their new offsets.

How far back: enough compute before the first read to cover ``k`` times the load's
own transfer time, for a few factors ``k`` (and "as early as possible"); each
candidate is timed by the ``overlap`` model and the fastest kept, never one slower
than the input. The chosen plan passes the validator before it is returned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from memplan.dsa import Buffer, allocate
from memplan.ir import TensorKind
from memplan.plan import Plan, Residency
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.timing import PlanArrays, first_reads, plan_arrays, run_model
from memplan.validate import check_plan

#: Compute before the first read, in multiples of a load's transfer time, that each
#: candidate tries to put in front of the load (inf: as early as the plan allows).
WINDOW_FACTORS = (1.0, 2.0, 4.0, math.inf)

#: Shares of the capacity the re-placed candidates may fill with live bytes.
FILL_SHARES = (1.0, 0.9)

#: The timing model the pass minimises (under ``serial`` a load's start changes nothing).
MODEL = "overlap"


@dataclass(frozen=True, slots=True)
class PrefetchResult:
    """What the prefetch pass did to one plan."""

    plan: Plan  # the validated plan (the input plan when nothing helped)
    latency_before_s: float  # seconds of the input plan under the overlap model
    latency_after_s: float  # seconds of `plan` under the overlap model
    moved_loads: int  # load residencies of `plan` that start earlier than in the input
    moved_steps: int  # steps gained by all moved loads together
    replaced: bool  # whether the allocator chose new offsets
    candidate: str  # which candidate won, e.g. "same offsets, window 2x"
    timed_out: bool  # the budget ran out before every candidate was tried

    @property
    def saved_s(self) -> float:
        """Seconds of latency the pass removed."""
        return self.latency_before_s - self.latency_after_s

    def to_stats(self) -> dict[str, object]:
        """The figures a solver puts in its result's ``stats``."""
        return {
            "prefetch_latency_before_s": self.latency_before_s,
            "prefetch_latency_after_s": self.latency_after_s,
            "prefetch_moved_loads": self.moved_loads,
            "prefetch_moved_steps": self.moved_steps,
            "prefetch_replaced": self.replaced,
            "prefetch_candidate": self.candidate,
        }


def prefetch(
    problem: Problem,
    plan: Plan,
    budget: Budget | None = None,
    *,
    allocator: str = "portfolio",
    window_factors: Sequence[float] = WINDOW_FACTORS,
    fill_shares: Sequence[float] = FILL_SHARES,
    seed: int = 0,
) -> PrefetchResult:
    """Move load starts of ``plan`` (valid) earlier so that its overlap latency drops.

    Args:
        problem: the problem ``plan`` solves.
        plan: a valid plan.
        budget: time limit and stop flag; when it runs out, the best plan so far.
        allocator: allocator for the re-placed candidates (:func:`memplan.dsa.allocate`);
            the default greedy portfolio answers fast, fit or not (``auto`` would search
            exactly, for seconds, when it does not fit).
        window_factors: compute windows to try, in multiples of each load's DMA time.
        fill_shares: shares of the capacity the re-placed candidates may fill (none:
            same offsets only).
        seed: seed of the allocator.

    Returns:
        A :class:`PrefetchResult` whose plan has the same residencies, arrivals and
        departures (so the same traffic) and an overlap latency no higher than the input's.

    Raises:
        InvalidPlanError: if a candidate breaks a rule (a bug in this pass).
    """
    budget = budget or Budget()
    input_arrays = plan_arrays(problem, plan)
    before = run_model(problem, input_arrays, MODEL)
    latency, name, chosen, replaced = before, "input plan", plan, False
    timed_out = False
    settings = _Settings(tuple(window_factors), tuple(fill_shares), allocator, seed)
    candidates = _candidates(problem, plan, input_arrays, settings, budget)
    for candidate in candidates:
        if candidate is None:  # the budget ran out
            timed_out = True
            break
        # Strictly faster only: on a tie the earlier (less invasive) candidate stays.
        candidate_latency = run_model(problem, plan_arrays(problem, candidate[1]), MODEL)
        if candidate_latency < latency * (1 - 1e-12):
            latency, (name, chosen, replaced) = candidate_latency, candidate
    if chosen is not plan:
        check_plan(problem, chosen, what="plan from the prefetch pass")
    moved = moved_residencies(plan, chosen)
    gained = sum(old_start - r.start for r, old_start in moved)
    return PrefetchResult(chosen, before, latency, len(moved), gained, replaced, name, timed_out)


@dataclass(frozen=True, slots=True)
class _Settings:
    """The pass's knobs (see :func:`prefetch`)."""

    window_factors: tuple[float, ...]  # compute windows, in multiples of the load's DMA time
    fill_shares: tuple[float, ...]  # shares of the capacity re-placed candidates may fill
    allocator: str  # allocator of the re-placed candidates
    seed: int  # its seed


def _candidates(
    problem: Problem, plan: Plan, arrays: PlanArrays, settings: _Settings, budget: Budget
) -> Iterator[tuple[str, Plan, bool] | None]:
    """Yield ``(name, plan, replaced)`` per candidate; None when the budget runs out."""
    loads = np.flatnonzero(arrays.is_load)
    if not len(loads):
        return
    compute = arrays.macs / problem.accelerator.mac_per_s
    compute_before = np.concatenate(([0.0], np.cumsum(compute)))
    for factor in settings.window_factors:
        if budget.should_stop():
            yield None
            return
        wanted = _wanted_starts(problem, arrays, loads, compute_before, factor)
        label = "as early as free" if math.isinf(factor) else f"window {factor:g}x"
        in_place = _grow_in_place(problem, plan, arrays, loads, wanted)
        if in_place is not None:
            yield f"same offsets, {label}", in_place, False
        for share in settings.fill_shares:
            if budget.should_stop():
                yield None
                return
            placed = _replace(problem, plan, arrays, loads, wanted, share, settings, budget)
            if placed is None:
                continue
            placed_arrays = plan_arrays(problem, placed)
            placed_loads = np.flatnonzero(placed_arrays.is_load)
            regrown = _wanted_starts(problem, placed_arrays, placed_loads, compute_before, factor)
            grown = _grow_in_place(problem, placed, placed_arrays, placed_loads, regrown)
            yield f"re-placed at {share:.0%} fill, {label}", grown or placed, True
            break


def _wanted_starts(
    problem: Problem,
    arrays: PlanArrays,
    loads: np.ndarray,
    compute_before: np.ndarray,
    factor: float,
) -> np.ndarray:
    """Per load: the start that puts ``factor`` x its DMA time of compute before its read.

    Never later than the load's own start and never earlier than what the plan allows
    regardless of space (its tensor's previous stay, its DRAM copy); loads that nothing
    reads keep their start.
    """
    start = arrays.start[loads]
    first = first_reads(arrays, loads)
    if math.isinf(factor):
        wanted = np.zeros(len(loads), dtype=np.int64)
    else:
        dma_s = arrays.size_bytes[loads] / problem.accelerator.dram_bytes_per_s
        target = compute_before[np.maximum(first, 0)] - factor * dma_s
        # The latest step s' with compute(s' .. first-1) >= factor x dma.
        wanted = np.searchsorted(compute_before, target, side="right") - 1
        wanted = np.maximum(wanted, 0)
    wanted = np.maximum(wanted, _earliest_starts(problem, arrays, loads))
    wanted = np.minimum(wanted, start)
    return np.where(first >= 0, wanted, start)


def _earliest_starts(problem: Problem, arrays: PlanArrays, loads: np.ndarray) -> np.ndarray:
    """Per load: the first step it may start at, space aside.

    After its tensor's previous stay (stays of one tensor never overlap) and, for an
    activation, after the first stay that ended with a store (the DRAM copy).
    """
    tensor, start, end = arrays.tensor, arrays.start, arrays.end
    by_tensor = np.lexsort((start, tensor))
    same = np.zeros(len(by_tensor), dtype=bool)
    same[1:] = tensor[by_tensor[1:]] == tensor[by_tensor[:-1]]
    previous_end = np.zeros(len(tensor), dtype=np.int64)
    previous_end[by_tensor[1:][same[1:]]] = end[by_tensor[:-1][same[1:]]]
    kinds = problem.graph.tensors
    stored_at: dict[int, int] = {}
    for i in by_tensor[arrays.is_store[by_tensor]].tolist():
        stored_at.setdefault(int(tensor[i]), int(end[i]))
    earliest = previous_end[loads].copy()
    for k, i in enumerate(loads.tolist()):
        t = int(tensor[i])
        if kinds[t].kind is TensorKind.ACTIVATION:
            earliest[k] = max(earliest[k], stored_at.get(t, int(start[i])))
    return earliest


def _address_free_from(problem: Problem, arrays: PlanArrays, loads: np.ndarray) -> np.ndarray:
    """Per load: the first step from which its addresses are free up to its start.

    A sweep over residencies by start keeps, per alignment unit of the scratchpad, the
    end of the last stay that used it; offsets are aligned, so units see overlaps exactly.
    """
    unit = problem.alignment_bytes
    low = arrays.offset // unit
    high = -(-(arrays.offset + arrays.size_bytes) // unit)
    last_end = np.zeros(int(high.max(initial=0)) + 1, dtype=np.int64)
    is_load = np.zeros(len(arrays.start), dtype=bool)
    is_load[loads] = True
    free_from = np.zeros(len(arrays.start), dtype=np.int64)
    by_start = np.argsort(arrays.start, kind="stable").tolist()
    starts, ends = arrays.start.tolist(), arrays.end.tolist()
    lows, highs = low.tolist(), high.tolist()
    k = 0
    while k < len(by_start):
        step, group = starts[by_start[k]], []
        while k < len(by_start) and starts[by_start[k]] == step:
            group.append(by_start[k])
            k += 1
        for i in group:  # stays starting earlier only: half-open intervals
            if is_load[i] and highs[i] > lows[i]:
                free_from[i] = last_end[lows[i] : highs[i]].max()
        for i in group:
            span = last_end[lows[i] : highs[i]]
            np.maximum(span, ends[i], out=span)
    return free_from[loads]


def _grow_in_place(
    problem: Problem, plan: Plan, arrays: PlanArrays, loads: np.ndarray, wanted: np.ndarray
) -> Plan | None:
    """The plan with each load starting at ``wanted`` or where its addresses free up."""
    new_start = np.maximum(wanted, _address_free_from(problem, arrays, loads))
    new_start = np.minimum(new_start, arrays.start[loads])
    if not (new_start < arrays.start[loads]).any():
        return None
    return _with_starts(plan, loads, new_start)


def _with_starts(plan: Plan, loads: np.ndarray, new_start: np.ndarray) -> Plan:
    residencies = list(plan.residencies)
    for i, s in zip(loads.tolist(), new_start.tolist(), strict=True):
        if s != residencies[i].start:
            residencies[i] = dataclasses.replace(residencies[i], start=s)
    return Plan.make(plan.order, residencies)


def _replace(
    problem: Problem,
    plan: Plan,
    arrays: PlanArrays,
    loads: np.ndarray,
    wanted: np.ndarray,
    share: float,
    settings: _Settings,
    budget: Budget,
) -> Plan | None:
    """Grow loads within ``share`` of the capacity in live bytes, then place everything.

    Loads are grown in the order of their first read (the earliest need first), each
    as far towards ``wanted`` as the live bytes allow. None when nothing grows or the
    allocator cannot pack the result within the capacity.
    """
    n = arrays.num_steps
    aligned = np.asarray(problem.aligned_sizes_bytes, dtype=np.int64)[arrays.tensor]
    live = np.cumsum(
        np.bincount(arrays.start, aligned, n + 1) - np.bincount(arrays.end, aligned, n + 1)
    )[:n]
    limit = max(int(problem.capacity_bytes * share), int(live.max(initial=0)))
    starts = arrays.start.copy()
    first = first_reads(arrays, loads)
    for k in np.argsort(np.where(first >= 0, first, n), kind="stable").tolist():
        i, lo, s = int(loads[k]), int(wanted[k]), int(arrays.start[loads[k]])
        if lo >= s:
            continue
        blocked = np.flatnonzero(live[lo:s] + aligned[i] > limit)
        new = lo + int(blocked[-1]) + 1 if len(blocked) else lo
        if new < s:
            live[new:s] += aligned[i]
            starts[i] = new
    if (starts == arrays.start).all():
        return None
    buffers = [
        Buffer(i, s, e, size, problem.alignment_bytes)
        for i, (s, e, size) in enumerate(
            zip(starts.tolist(), arrays.end.tolist(), aligned.tolist(), strict=True)
        )
    ]
    result = allocate(
        buffers,
        problem.capacity_bytes,
        algorithm=settings.allocator,
        budget=Budget(time_limit_s=min(10.0, budget.remaining_s()), stop_event=budget.stop_event),
        minimize=False,
        seed=settings.seed,
    )
    if not result.fits or result.offsets_bytes is None:
        return None
    residencies = [
        dataclasses.replace(r, start=s, offset=o)
        for r, s, o in zip(plan.residencies, starts.tolist(), result.offsets_bytes, strict=True)
    ]
    return Plan.make(plan.order, residencies)


def moved_residencies(before: Plan, after: Plan) -> list[tuple[Residency, int]]:
    """The residencies of ``after`` that start earlier than in ``before``, with the old start.

    A residency is known by its tensor and end step, which the pass never changes.
    """
    starts = {(r.tensor, r.end): r.start for r in before.residencies}
    return [
        (r, starts[(r.tensor, r.end)])
        for r in after.residencies
        if r.start < starts.get((r.tensor, r.end), r.start)
    ]
