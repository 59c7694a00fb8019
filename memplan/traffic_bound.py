"""A lower bound on non-compulsory traffic over all valid plans, from crowded regions.

Where the live bytes of every order exceed the scratchpad, some live tensors must be off
chip, and each of them costs a reload later (and a store first, for an activation that
is not a graph output)::

    live bytes ^    every order has a step here with >= B live bytes
               |        _/‾‾‾\\_
      capacity | - - - /- - - -\\- - - -      excess e = B - capacity must be off chip:
               |  ____/         \\____        >= e bytes reloaded (x2 with their stores)
               +---[   region R   ]-------> step

Lemma (one region). Let R be a set of ops and B a bound from
:func:`memplan.schedule.region_min_peak`: in every order, at the step of some op of R
at least B bytes (aligned sizes) are live, i.e. touched by an op at or before that step
and by one at or after it. Take any valid plan and that step. Its residents do not
overlap and start at aligned offsets below the capacity C, so their aligned sizes sum
to at most ``align_up(C)``; hence live tensors of at least ``e = B - align_up(C)``
aligned bytes are not resident there. None is touched at that step (the op's tensors
are resident), so each is read strictly later and was touched strictly before: it
needs a load after that step, and that load is not compulsory (an activation is never
loaded compulsorily; an input or weight was already loaded for its earlier use). An
activation that is not a graph output also needs a store before that load, which is
not compulsory either. So the plan moves at least ``r * e`` non-compulsory bytes, where
``r`` is the least cost per aligned byte (``size / aligned size``, doubled for
non-output activations) among the tensors that can be live at a step of R in some order.

Only some ops of R can be that step: at the step of op ``o`` no order has more live bytes
than ``U(o)``, the aligned bytes of every tensor that can be live there (below), so an op
with ``U(o) < B`` is not it. The tensors counted are those that can be live at an op of R
with ``U(o) >= B``; a graph input read only at the start of a crowded region, say, is
left out when it cannot be live where the crowding is.

Several regions. If no tensor can be live in two chosen regions, their off-chip sets
are disjoint and the bounds add. Otherwise, for any chosen regions, the off-chip sets
together hold at least ``sum(e_i) - sum over tensors t of aligned(t) * (k_t - 1)``
aligned bytes, ``k_t`` the number of regions where ``t`` can be live (a tensor counted
twice is subtracted once per extra count), at the least cost per byte among them. Both
are valid; the larger is reported. A tensor ``t`` can be live at the step of op ``o`` in
some order only if its producer is not a descendant of ``o`` and one of its readers is
not an ancestor of ``o`` (for an input: one reader not a descendant and one not an
ancestor), which the ancestor bit sets decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memplan.analysis import live_bytes_per_step, working_set_bytes
from memplan.ir import TensorKind
from memplan.problem import Problem
from memplan.schedule import StopCheck, op_closures, region_min_peak
from memplan.units import align_up


@dataclass(frozen=True, slots=True)
class RegionBound:
    """What one region proves."""

    steps: tuple[int, int]  # the region: steps [start, end) of the reference order
    live_bytes: int  # B: some step of the region has this many live bytes in any order
    excess_bytes: int  # B minus the usable capacity (aligned bytes that must be off chip)
    cost_per_byte: float  # least non-compulsory bytes per off-chip aligned byte
    bound_bytes: int  # the region's own bound on non-compulsory bytes
    exact: bool  # B is the relaxation's proven minimum (else the largest working set)


@dataclass(frozen=True, slots=True)
class TrafficBound:
    """A lower bound on non-compulsory bytes over all valid plans of a problem."""

    bound_bytes: int  # the bound (0 when no region is crowded)
    regions: tuple[RegionBound, ...]  # the regions examined
    method: str  # "disjoint regions" or "overlap-corrected regions"


def _cost_per_byte(problem: Problem) -> list[float]:
    """Per tensor, the least non-compulsory bytes per aligned byte if it is off chip."""
    graph = problem.graph
    costs = []
    for tensor in graph.tensors:
        aligned = problem.aligned_sizes_bytes[tensor.id]
        factor = 2 if tensor.kind is TensorKind.ACTIVATION and not tensor.is_output else 1
        costs.append(factor * tensor.size_bytes / aligned)
    return costs


def _live_masks(problem: Problem, closures: tuple[list[int], list[int]]) -> list[int]:
    """Per in-scope tensor, the bit set of ops at whose step it can be live (else 0)."""
    graph = problem.graph
    ancestors, descendants = closures
    full = (1 << graph.num_ops) - 1
    masks = [0] * graph.num_tensors
    for t in range(graph.num_tensors):
        readers = graph.consumers[t]
        producer = graph.producer[t]
        if not problem.in_scope[t] or not readers:
            continue  # no reader: on chip only while touched (never forced off chip)
        after = 0
        for c in readers:
            after |= full & ~descendants[c]  # o is not after reader c
        if producer is not None:
            masks[t] = full & ~ancestors[producer] & after
        else:
            before = 0
            for c in readers:
                before |= full & ~ancestors[c]
            masks[t] = before & after
    return masks


def _possible_live_bytes(
    problem: Problem, masks: Sequence[int], sizes: Sequence[int]
) -> np.ndarray:
    """Per op ``o``, ``U(o)``: the aligned bytes of every tensor that can be live at its
    step in some order (no order has more live bytes there). A tensor nobody reads is
    live only at its producer's step."""
    graph = problem.graph
    num_ops = graph.num_ops
    total = np.zeros(num_ops, dtype=np.int64)
    for t in range(graph.num_tensors):
        producer = graph.producer[t]
        if problem.in_scope[t] and not graph.consumers[t] and producer is not None:
            total[producer] += sizes[t]
    width = (num_ops + 7) // 8
    for t, mask in enumerate(masks):
        if mask:
            packed = np.frombuffer(mask.to_bytes(width, "little"), dtype=np.uint8)
            bits = np.unpackbits(packed, bitorder="little")[:num_ops]
            total += bits.astype(np.int64) * sizes[t]
    return total


def _stretches(live: np.ndarray, usable: int) -> list[tuple[int, int]]:
    """The stretches of steps where ``live`` exceeds ``usable`` (``[start, end)``)."""
    stretches: list[tuple[int, int]] = []
    for step in np.flatnonzero(live > usable):
        if stretches and step <= stretches[-1][1]:
            stretches[-1] = (stretches[-1][0], int(step) + 1)
        else:
            stretches.append((int(step), int(step) + 1))
    return stretches


#: Tensor visits the regions examined after a stop may make (about 0.3 s): each such
#: region's bound scans every tensor.
FALLBACK_SCANS = 2_000_000


def traffic_lower_bound(
    problem: Problem,
    order: Sequence[int],
    *,
    min_peak_bound_bytes: int = 0,
    region_ops: Sequence[int] = (48, 96, 192),
    node_limit: int = 50_000,
    should_stop: StopCheck | None = None,
) -> TrafficBound:
    """A lower bound on non-compulsory bytes over all valid plans (module docstring).

    Args:
        problem: the problem (capacity, alignment, scope).
        order: a low-peak order; its crowded stretches (live bytes above the capacity)
            suggest the regions, the bound holds for every order whatever it is.
        min_peak_bound_bytes: a proven lower bound on M_P (the whole graph as one region:
            every order has a step with that many live bytes), or 0.
        region_ops: region sizes (steps around each crowded stretch); per stretch the
            size that proves the most is kept.
        node_limit: search states per region's relaxation.
        should_stop: a check that ends the searches early (a region then falls back to
            its largest working set).
    """
    graph = problem.graph
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    usable = align_up(problem.capacity_bytes, problem.alignment_bytes)
    if graph.num_ops == 0:
        return TrafficBound(0, (), "no ops")
    live = live_bytes_per_step(graph, order, sizes, scope)
    working = working_set_bytes(graph, sizes, scope)
    closures = op_closures(graph)
    masks = _live_masks(problem, closures)
    cost = _cost_per_byte(problem)
    possible = _possible_live_bytes(problem, masks, sizes)

    def region_bound(start: int, end: int, value: int | None) -> tuple[RegionBound, list[int]]:
        region = [int(o) for o in order[start:end]]
        exact = value is not None
        if value is None:
            value = max(working[o] for o in region)  # each op's tensors are live at its step
        excess = max(0, value - usable)
        # Only an op that can have ``value`` live bytes at its step can be the crowded one.
        crowded = [o for o in region if possible[o] >= value] or region
        region_bits = sum(1 << o for o in crowded)
        members = [t for t, mask in enumerate(masks) if mask & region_bits]
        ratio = min((cost[t] for t in members), default=0.0)
        bound = _cheapest(members, excess, sizes, cost)
        return RegionBound((start, end), value, excess, ratio, bound, exact), members

    found: list[tuple[RegionBound, list[int]]] = []  # every region examined
    best_per_stretch: list[tuple[RegionBound, list[int]]] = []
    by_width: dict[int, list[tuple[RegionBound, list[int]]]] = {}
    n = graph.num_ops

    def stopped() -> bool:
        return should_stop is not None and should_stop()

    # Stopped, a region still gets the bound of its largest working set, but each costs
    # a scan of every tensor: a 30,000-op transformer has 1,000 crowded stretches, whose
    # scans ran dnc 45 s past Ctrl-C. They stop at FALLBACK_SCANS tensor visits; any set
    # of regions bounds every plan, so the bound stays valid.
    scans_left = FALLBACK_SCANS
    for low, high in _stretches(live, usable):
        if stopped() and scans_left < graph.num_tensors:
            break
        best: tuple[RegionBound, list[int]] | None = None
        for width in sorted(set(region_ops)):
            pad = max(0, (width - (high - low)) // 2)
            start, end = max(0, low - pad), min(n, high + pad)
            value = None
            if not stopped():
                value, _ = region_min_peak(
                    graph, sizes, scope, order[start:end], floor=usable,
                    node_limit=node_limit, should_stop=should_stop,
                )  # fmt: skip
            elif scans_left < graph.num_tensors:
                break
            else:
                scans_left -= graph.num_tensors
            candidate = region_bound(start, end, value)
            found.append(candidate)
            by_width.setdefault(width, []).append(candidate)
            if best is None or candidate[0].bound_bytes > best[0].bound_bytes:
                best = candidate
            if end - start >= n:
                break
        if best is not None:
            best_per_stretch.append(best)
    whole = region_bound(0, n, max(min_peak_bound_bytes, max(working)))
    disjoint = _disjoint_sum(found)
    corrected = max(
        _corrected_sum(group, sizes, cost) for group in [best_per_stretch, *by_width.values()]
    )
    regions = tuple(r for r, _ in best_per_stretch)
    best_total, method = max(
        (disjoint, "disjoint regions"),
        (corrected, "overlap-corrected regions"),
        (whole[0].bound_bytes, "the whole graph (M_P)"),
    )
    return TrafficBound(best_total, (*regions, whole[0]), method)


def _disjoint_sum(found: list[tuple[RegionBound, list[int]]]) -> int:
    """Greedy: the regions with the largest bounds whose live-able tensors are disjoint."""
    taken: set[int] = set()
    total = 0
    for region, members in sorted(found, key=lambda f: -f[0].bound_bytes):
        if region.bound_bytes <= 0 or taken.intersection(members):
            continue
        taken.update(members)
        total += region.bound_bytes
    return total


def _corrected_sum(
    found: list[tuple[RegionBound, list[int]]], sizes: Sequence[int], cost: Sequence[float]
) -> int:
    """All crowded regions, each tensor counted once (the overlap correction)."""
    crowded = [(r, m) for r, m in found if r.excess_bytes > 0]
    if not crowded:
        return 0
    counts: dict[int, int] = {}
    for _, members in crowded:
        for t in members:
            counts[t] = counts.get(t, 0) + 1
    needed = sum(r.excess_bytes for r, _ in crowded)
    needed -= sum(sizes[t] * (k - 1) for t, k in counts.items())
    return _cheapest(list(counts), needed, sizes, cost)


def _cheapest(
    tensors: Sequence[int], needed: int, sizes: Sequence[int], cost: Sequence[float]
) -> int:
    """Least cost of taking ``needed`` aligned bytes off chip from ``tensors``, each at
    most once (fractionally: a lower bound on any actual set's cost)."""
    if needed <= 0 or not tensors:
        return 0
    total = 0.0
    for t in sorted(tensors, key=lambda t: cost[t]):
        take = min(needed, sizes[t])
        total += take * cost[t]
        needed -= take
        if needed <= 0:
            break
    return int(total)
