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
exactly. Once a game deviates (keeps a tensor the reference spilled, places one
elsewhere), the suggestions still apply where they fit; where none does, the online
Belady pass decides (:func:`default_move`): the lowest gap for every pending tensor,
else Belady's victim, else compact. Tree search uses :func:`default_move` in its
rollouts; features mark the suggested move.
"""

from __future__ import annotations

from collections import defaultdict

from memplan.placement import Move, MoveKind, PlacementState
from memplan.plan import Plan


class Reference:
    """A plan of the same problem and order, looked up move by move."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._offset: dict[tuple[int, int], int] = {}  # (tensor, start) -> offset
        self._ends: dict[int, list[tuple[int, int]]] = defaultdict(list)  # end -> [(t, start)]
        for r in plan.residencies:
            self._offset[(r.tensor, r.start)] = r.offset
            self._ends[r.end].append((r.tensor, r.start))

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
            return Move(MoveKind.EVICT, tensor)
        pending = state.next_tensor
        assert pending is not None
        offset = self._offset.get((pending, step))
        if offset is not None and state.fits(offset, state.sizes[pending]):
            return Move(MoveKind.PLACE, offset)
        return None


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
