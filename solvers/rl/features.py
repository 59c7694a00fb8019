"""What a network sees of a mallocGame state: fixed action slots and numeric features.

The game's moves (PROBLEM.md section 9, :mod:`memplan.placement`) vary in number; a
network needs a fixed shape. :func:`encode` maps a state to :data:`NUM_ACTIONS` slots::

    slot:   0 .. 11            12 .. 23             24
            place @offset      evict tensor         compact
            (canonical offsets, (open tensors the    (always legal)
             best-fitting       op does not touch,
             first)             Belady order and
                                size x distance order
                                interleaved)

and gives each slot a row of :data:`ACTION_FEATURES` numbers (sizes and offsets as
fractions of the capacity, next-use distances as fractions of a horizon, the traffic a
move costs, how tightly a placement fits its gap, and flags such as "this is Belady's
victim" or "this is the move the reference plan makes here"), plus one vector of
:data:`GLOBAL_FEATURES` numbers for the whole state: the
step, occupancy, pending bytes, the free gaps, the working set of the current op, and
a 16-bin memory map (occupied fraction, and how soon the bytes there are read again).

A slot's row does not depend on where the slot sits, and the network scores every
slot with the same weights, so the slot order only has to be deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memplan.placement import Move, MoveKind, PlacementState
from memplan.solvers.rl.reference import Reference

#: Placement slots (candidate offsets for the next pending tensor).
PLACE_SLOTS = 12
#: Eviction slots (open tensors the current op does not touch).
EVICT_SLOTS = 12
#: All slots: placements, evictions, and compact last.
NUM_ACTIONS = PLACE_SLOTS + EVICT_SLOTS + 1
#: The compact slot.
COMPACT_SLOT = NUM_ACTIONS - 1
#: Numbers per action slot.
ACTION_FEATURES = 17
#: The column that marks the reference's suggested move (see reference.py).
REFERENCE_COLUMN = ACTION_FEATURES - 1
#: Memory-map bins in the global features.
MAP_BINS = 16
#: Working-set slots in the global features (the current op's tensors, largest first).
WORKING_SET_SLOTS = 6
#: Numbers per working-set slot.
WORKING_SET_FEATURES = 4
#: Numbers in the global vector.
GLOBAL_FEATURES = 14 + 2 * MAP_BINS + WORKING_SET_SLOTS * WORKING_SET_FEATURES
#: Every feature lies in [0, FEATURE_MAX] (clipped).
FEATURE_MAX = 8.0
#: Steps ahead that count as "soon" (distances are divided by this, then clipped to 1).
HORIZON_STEPS = 32.0


@dataclass(frozen=True, slots=True)
class Encoding:
    """One state as the network reads it."""

    moves: tuple[Move | None, ...]  # per slot: the move it plays, None when masked
    reference_slot: int  # the slot of the reference's suggested move; -1: none
    mask: np.ndarray  # (NUM_ACTIONS,) bool: legal slots
    actions: np.ndarray  # (NUM_ACTIONS, ACTION_FEATURES) float32; zero rows where masked
    globals: np.ndarray  # (GLOBAL_FEATURES,) float32


def _distance(steps: int) -> float:
    return min(steps / HORIZON_STEPS, 1.0)


def _pick_offsets(state: PlacementState, size: int) -> list[tuple[int, int, int]]:
    """Up to PLACE_SLOTS candidates ``(offset, gap low, gap high)``.

    The lowest and the highest legal offsets always, then the tightest gaps first.
    """
    gaps = state.free_gaps()
    ranked = []
    for offset in state.offset_candidates():
        for low, high in gaps:
            if low <= offset and offset + size <= high:
                ranked.append((high - low - size, offset, low, high))
                break
    if len(ranked) > PLACE_SLOTS:
        ends = {min(r[1] for r in ranked), max(r[1] for r in ranked)}
        ranked.sort(key=lambda r: (r[1] not in ends, r))
    return [(offset, low, high) for _, offset, low, high in ranked[:PLACE_SLOTS]]


def _pick_victims(state: PlacementState) -> list[int]:
    """Up to EVICT_SLOTS eviction candidates: Belady's and the size-aware order, interleaved."""
    candidates = state.eviction_candidates()
    if len(candidates) <= EVICT_SLOTS:
        by_use = sorted(candidates, key=lambda t: (-state.next_use(t), -state.sizes[t], t))
        return by_use
    step, sizes = state.step, state.sizes
    by_use = sorted(candidates, key=lambda t: (-state.next_use(t), -sizes[t], t))
    by_area = sorted(candidates, key=lambda t: (-sizes[t] * (state.next_use(t) - step), t))
    chosen: list[int] = []
    for pair in zip(by_use, by_area, strict=True):
        for t in pair:
            if t not in chosen and len(chosen) < EVICT_SLOTS:
                chosen.append(t)
    return chosen


def encode(
    state: PlacementState, scale_bytes: float, reference: Reference | None = None
) -> Encoding:
    """Encode ``state``; traffic is divided by ``scale_bytes`` (the instance's scale).

    Args:
        state: a game not yet finished.
        scale_bytes: the bytes that count as 1.0 of traffic (e.g. a baseline's score).
        reference: a plan whose suggested move gets a slot and the reference flag.
    """
    assert not state.done
    capacity = float(state.capacity_bytes)
    sizes = state.sizes
    step = state.step
    mask = np.zeros(NUM_ACTIONS, dtype=bool)
    actions = np.zeros((NUM_ACTIONS, ACTION_FEATURES), dtype=np.float32)
    moves: list[Move | None] = [None] * NUM_ACTIONS
    tensor = state.next_tensor
    assert tensor is not None
    size = sizes[tensor]
    blocks = state.open_residencies()
    by_top = {r.offset + sizes[r.tensor]: r.tensor for r in blocks}
    by_bottom = {r.offset: r.tensor for r in blocks}
    last_x = state.last_use(tensor)
    pending_bytes = sum(sizes[t] for t in state.pending)
    gaps = state.free_gaps()

    def affinity(neighbour: int | None) -> float:
        """1 when the neighbour leaves the chip when this tensor does (no hole left)."""
        if neighbour is None:
            return 0.0
        return 1.0 - _distance(abs(state.last_use(neighbour) - last_x))

    suggested = reference.suggestion(state) if reference is not None else None
    offsets = _pick_offsets(state, size)
    at = suggested.arg if suggested is not None and suggested.kind is MoveKind.PLACE else -1
    if at >= 0 and all(o != at for o, _, _ in offsets):
        gap = next((lo, h) for lo, h in gaps if lo <= at and at + size <= h)
        offsets = [*offsets[: PLACE_SLOTS - 1], (at, *gap)]
    lowest = min((o for o, _, _ in offsets), default=-1)
    highest = max((o for o, _, _ in offsets), default=-1)
    for slot, (offset, low, high) in enumerate(offsets):
        below = by_top.get(offset)
        above = by_bottom.get(offset + size)
        moves[slot] = Move(MoveKind.PLACE, offset)
        mask[slot] = True
        actions[slot, :REFERENCE_COLUMN] = (
            1.0,
            0.0,
            0.0,
            size / capacity,
            offset / capacity,
            (offset + size) / capacity,
            (high - low - size) / capacity,
            (offset - low) / capacity,
            (high - offset - size) / capacity,
            float(offset == lowest),
            float(offset == highest),
            affinity(below),
            affinity(above),
            float(below is not None or offset == 0),
            float(above is not None or offset + size == state.capacity_bytes),
            _distance(max(last_x - step, 0)),
        )
    victims = _pick_victims(state)
    if suggested is not None and suggested.kind is MoveKind.EVICT and suggested.arg not in victims:
        victims = [*victims[: EVICT_SLOTS - 1], suggested.arg]
    belady = victims[0] if victims else -1
    gap_ending = {h: lo for lo, h in gaps}
    gap_starting = {lo: h for lo, h in gaps}
    open_of = {r.tensor: r for r in blocks}
    for k, victim in enumerate(victims):
        slot = PLACE_SLOTS + k
        r = open_of[victim]
        v_size = sizes[victim]
        merged_low = gap_ending.get(r.offset, r.offset)
        merged_high = gap_starting.get(r.offset + v_size, r.offset + v_size)
        merged = merged_high - merged_low
        store = not state.has_dram_copy(victim)
        true_size = state.problem.graph.tensors[victim].size_bytes
        cost = (true_size * (2 if store else 1)) / scale_bytes
        moves[slot] = Move(MoveKind.EVICT, victim)
        mask[slot] = True
        actions[slot, :REFERENCE_COLUMN] = (
            0.0,
            1.0,
            0.0,
            v_size / capacity,
            r.offset / capacity,
            (r.offset + v_size) / capacity,
            merged / capacity,
            float(merged >= size),
            float(store),
            min(cost, 4.0),
            _distance(state.next_use(victim) - step),
            float(victim == belady),
            k / EVICT_SLOTS,
            _distance(max(state.last_use(victim) - step, 0)),
            v_size / max(pending_bytes, 1),
            float(len(victims)) / EVICT_SLOTS,
        )
    here = state.working_set()
    in_here = set(here)
    moved = 0
    for r in blocks:
        if r.tensor in in_here and r.start < step:
            moved += state.problem.graph.tensors[r.tensor].size_bytes * (
                1 if state.has_dram_copy(r.tensor) else 2
            )
    spills = sum(
        state.problem.graph.tensors[r.tensor].size_bytes
        for r in blocks
        if r.tensor not in in_here and not state.has_dram_copy(r.tensor)
    )
    moves[COMPACT_SLOT] = Move(MoveKind.COMPACT)
    mask[COMPACT_SLOT] = True
    actions[COMPACT_SLOT, 2] = 1.0
    actions[COMPACT_SLOT, 3] = state.live_bytes / capacity
    actions[COMPACT_SLOT, 9] = min((moved + spills) / scale_bytes, 4.0)
    actions[COMPACT_SLOT, 15] = float(not offsets)
    reference_slot = -1 if suggested is None else moves.index(suggested)
    if reference_slot >= 0:
        actions[reference_slot, REFERENCE_COLUMN] = 1.0
    np.clip(actions, 0.0, FEATURE_MAX, out=actions)
    globals_ = np.clip(_globals(state, gaps, size, pending_bytes), 0.0, FEATURE_MAX)
    return Encoding(tuple(moves), reference_slot, mask, actions, globals_.astype(np.float32))


def _globals(
    state: PlacementState, gaps: list[tuple[int, int]], size: int, pending_bytes: int
) -> np.ndarray:
    capacity = float(state.capacity_bytes)
    sizes = state.sizes
    step, n = state.step, state.num_steps
    largest_gap = max((h - lo for lo, h in gaps), default=0)
    soon = sum(
        sizes[r.tensor] for r in state.open_residencies() if state.next_use(r.tensor) - step < 4
    )
    ahead = [
        sum(sizes[t] for t in state.timeline.working_set(s))
        for s in range(step + 1, min(step + 5, n))
    ]
    head = np.array(
        (
            step / max(n, 1),
            (n - step) / max(n, 1),
            state.live_bytes / capacity,
            pending_bytes / capacity,
            size / capacity,
            len(state.pending) / 4.0,
            largest_gap / capacity,
            len(gaps) / 8.0,
            len(state.eviction_candidates()) / EVICT_SLOTS,
            state.problem.min_resident_bytes / capacity,
            max(ahead, default=0) / capacity,
            soon / capacity,
            float(largest_gap >= size),
            state.compactions / 8.0,
        ),
        dtype=np.float32,
    )
    occupied = np.zeros(MAP_BINS, dtype=np.float32)
    urgency = np.zeros(MAP_BINS, dtype=np.float32)
    width = capacity / MAP_BINS
    for r in state.open_residencies():
        low, high = r.offset, r.offset + sizes[r.tensor]
        near = 1.0 - _distance(state.next_use(r.tensor) - step)
        first, last = int(low / width), min(int((high - 1) / width), MAP_BINS - 1)
        for b in range(first, last + 1):
            share = (min(high, (b + 1) * width) - max(low, b * width)) / width
            occupied[b] += share
            urgency[b] += share * near
    working = np.zeros((WORKING_SET_SLOTS, WORKING_SET_FEATURES), dtype=np.float32)
    here = sorted(state.working_set(), key=lambda t: (-sizes[t], t))[:WORKING_SET_SLOTS]
    pending = set(state.pending)
    for k, t in enumerate(here):
        working[k] = (
            sizes[t] / capacity,
            float(t in pending),
            float(state.is_open(t) and t not in pending),
            _distance(max(state.last_use(t) - step, 0)),
        )
    return np.concatenate([head, occupied, urgency, working.ravel()])
