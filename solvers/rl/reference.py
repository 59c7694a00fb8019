"""The default policy of the mallocGame: replay a reference plan, else the online Belady pass.

A *reference* is a valid plan for the same problem and order (the greedy stack's, in
practice). At a game state it suggests one move::

    step t: an open residency that the reference ends at t (same tensor, same start)
            and order[t] does not touch           -> evict it
            one that order[t] touches              -> compact (the reference reloads it)
            else: the reference places the next
            pending tensor at offset o, and o fits -> place @o
            else                                   -> no suggestion

Played from the start with nothing else, the suggestions rebuild the reference plan
exactly. A *lazy* reference (the rollouts' default policy) defers the reference's
evictions instead: a tensor the reference evicts at ``t`` stays on chip until a tensor
the reference places needs its space (it is evicted then, to the same effect), or until
its next use, where it saves the reload. Deferring costs nothing (a drop is free, a
store moves the same bytes later) and drops the evictions greedy's stack makes without
need: its Belady pass evicts the furthest next use first until the op fits, and keeps
those evictions when a later, larger victim alone would have made room (bert_tiny at
MH: a 512-byte mask, then a 64 KiB tensor; replayed lazily, the mask stays and the plan
is the ILP's proven optimum). On 80 random 40-op DAGs (capacity 1.1 and 1.2 x M_R),
three rollout passes with a lazy reference ended lower than with an exact one on 15,
higher on none. Once a game deviates (keeps a tensor the reference spilled, places one
elsewhere), the suggestions still apply where they fit; where none does, the online
Belady pass decides (:func:`default_move`): the lowest gap for every pending tensor,
else Belady's victim, else compact. Tree search uses :func:`default_move` in its
rollouts; features mark the suggested move.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

from memplan.placement import Move, MoveKind, PlacementState
from memplan.plan import Plan


class Reference:
    """A plan of the same problem and order, looked up move by move.

    Args:
        plan: the reference plan.
        lazy: defer its evictions until their space is needed (see the module).
    """

    def __init__(self, plan: Plan, *, lazy: bool = False) -> None:
        self.plan = plan
        self.lazy = lazy
        self._offset: dict[tuple[int, int], int] = {}  # (tensor, start) -> offset
        self._ends: dict[int, list[tuple[int, int]]] = defaultdict(list)  # end -> [(t, start)]
        self._spans: dict[int, list[tuple[int, int]]] = defaultdict(list)  # t -> [(start, end)]
        for r in plan.residencies:
            self._offset[(r.tensor, r.start)] = r.offset
            self._ends[r.end].append((r.tensor, r.start))
            self._spans[r.tensor].append((r.start, r.end))
        for spans in self._spans.values():
            spans.sort()

    def suggestion(self, state: PlacementState) -> Move | None:
        """The move the reference makes here, if it applies (see the module docstring)."""
        if state.done:
            return None
        step = state.step
        here: set[int] | None = None
        for tensor, start in self._ends.get(step, ()):
            open_ = state.open_residency(tensor)
            if open_ is None or open_.start != start:
                continue
            if here is None:
                here = set(state.working_set())
            if tensor in here:
                return Move(MoveKind.COMPACT)
            if not self.lazy:
                return Move(MoveKind.EVICT, tensor)
        pending = state.next_tensor
        assert pending is not None
        offset = self._offset.get((pending, step))
        if offset is None:
            return None
        size = state.sizes[pending]
        if state.fits(offset, size):
            return Move(MoveKind.PLACE, offset)
        return self._make_room(state, offset, size) if self.lazy else None

    def _make_room(self, state: PlacementState, offset: int, size: int) -> Move | None:
        """Evict a deferred tensor in ``[offset, offset + size)``; None when something
        there is one the reference holds now (or the op touches): the game has deviated."""
        here = set(state.working_set())
        for open_ in state.open_residencies():
            if open_.offset >= offset + size or open_.offset + state.sizes[open_.tensor] <= offset:
                continue
            if open_.tensor in here or self._holds(open_.tensor, state.step):
                return None
            return Move(MoveKind.EVICT, open_.tensor)
        return None

    def _holds(self, tensor: int, step: int) -> bool:
        """Whether the reference has ``tensor`` on chip at ``step``."""
        spans = self._spans.get(tensor, [])
        k = bisect.bisect_right(spans, step, key=lambda span: span[0]) - 1  # last start <= step
        return k >= 0 and spans[k][0] <= step < spans[k][1]


def belady_move(state: PlacementState) -> Move:
    """The online Belady pass's move: lowest gaps, else Belady's victim, else compact."""
    offsets = state.lowest_offsets(state.pending)
    if offsets is not None:
        return Move(MoveKind.PLACE, offsets[0])
    victims = state.eviction_candidates()
    if victims:
        sizes = state.sizes
        victim = max(victims, key=lambda t: (state.next_use(t), sizes[t], -t))
        return Move(MoveKind.EVICT, victim)
    return Move(MoveKind.COMPACT)


def default_move(state: PlacementState, reference: Reference | None) -> Move:
    """The reference's suggestion where it applies, else the online Belady pass's move."""
    if reference is not None:
        move = reference.suggestion(state)
        if move is not None:
            return move
    return belady_move(state)
