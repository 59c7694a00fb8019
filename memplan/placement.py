"""Step-by-step placement for a fixed order: the state the online allocator and the
mallocGame (PROBLEM.md section 9) share.

For a fixed ``order``, steps run one after the other. Before step ``t`` runs, every
in-scope input of ``order[t]`` that is not on chip, and every output, is *pending*
(largest first, then by tensor id). A *move* changes the state:

- ``place(offset)`` puts the next pending tensor at an aligned offset where it fits
  beside every open residency;
- ``evict(tensor)`` ends an open residency that ``order[t]`` does not touch, at step
  ``t`` (``store`` when DRAM has no valid copy, else ``drop``);
- ``compact()`` evicts everything (the op's own resident inputs too, which are then
  loaded again) and stacks the op's working set from offset 0; it always fits at a
  capacity >= M_R, so no sequence of moves gets stuck.

When nothing is pending the step runs by itself: tensors with no later use close
(graph outputs are stored), and the next step's pending tensors are listed::

    offset ^                      step t: order[t] = op(a, b) -> c   pending: [c]
     C     |   (free)             candidates for c (size 2): 0? no, a is there;
           |  [ b  next use t ]   top of a, top of b (aligned), flush under b,
           |   (free)             flush under the capacity C
           |  [ a  next use t ]
     0     +------------------>

Offsets worth offering (:meth:`PlacementState.offset_candidates`) are MiniMalloc's
canonical ones: 0, the aligned top of each open residency, the offset flush under each
open residency, and flush under the capacity, kept where the tensor fits.

Every move can be undone (:meth:`PlacementState.undo`), which restores the state
exactly; tree search walks down and back up with it. With ``addresses=False`` the state
tracks only the live bytes (no offsets, no overlap checks): the replacement-only mode of
the two-phase greedy, where an allocator packs the stays afterwards.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from memplan.errors import ConfigError
from memplan.ir import OpId, TensorId, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem


class MoveKind(enum.Enum):
    """The three kinds of move."""

    PLACE = "place"  # the next pending tensor goes to an offset
    EVICT = "evict"  # an open residency ends at the current step
    COMPACT = "compact"  # evict everything, stack the op's working set from 0


@dataclass(frozen=True, slots=True)
class Move:
    """One move of the placement game."""

    kind: MoveKind  # place, evict or compact
    arg: int = 0  # PLACE: offset in bytes; EVICT: tensor id; COMPACT: unused (0)

    def __str__(self) -> str:
        if self.kind is MoveKind.PLACE:
            return f"place @{self.arg}"
        if self.kind is MoveKind.EVICT:
            return f"evict t{self.arg}"
        return "compact"


def scoped_touched(problem: Problem) -> list[tuple[int, ...]]:
    """Per op, its distinct in-scope inputs and outputs (inputs first)."""
    in_scope = problem.in_scope
    return [
        tuple(t for t in dict.fromkeys((*op.inputs, *op.outputs)) if in_scope[t])
        for op in problem.graph.ops
    ]


def use_steps(problem: Problem, order: Sequence[int]) -> list[list[int]]:
    """Per tensor, the sorted steps at which an op reads it under ``order``."""
    step_of = [0] * len(order)
    for step, op in enumerate(order):
        step_of[op] = step
    uses: list[list[int]] = [[] for _ in problem.graph.tensors]
    for tensor, consumers in enumerate(problem.graph.consumers):
        if problem.in_scope[tensor] and consumers:
            uses[tensor] = sorted(step_of[c] for c in consumers)
    return uses


@dataclass(frozen=True, slots=True)
class Timeline:
    """What a fixed order says about every tensor; computed once, shared by states."""

    order: tuple[OpId, ...]  # order[t] is the op run at step t
    touched: tuple[tuple[int, ...], ...]  # per op id: in-scope inputs, then outputs
    uses: tuple[tuple[int, ...], ...]  # per tensor: sorted steps that read it

    @staticmethod
    def of(
        problem: Problem,
        order: Sequence[int],
        *,
        touched: Sequence[tuple[int, ...]] | None = None,
        uses: Sequence[Sequence[int]] | None = None,
    ) -> Timeline:
        """Build the timeline of ``order`` (reusing ``touched``/``uses`` if given)."""
        touched = scoped_touched(problem) if touched is None else touched
        uses = use_steps(problem, order) if uses is None else uses
        return Timeline(
            tuple(OpId(int(o)) for o in order),
            tuple(tuple(t) for t in touched),
            tuple(tuple(u) for u in uses),
        )

    def working_set(self, step: int) -> tuple[int, ...]:
        """The in-scope tensors ``order[step]`` reads or writes."""
        return self.touched[self.order[step]]

    def next_use(self, tensor: int, step: int) -> int:
        """First step >= ``step`` that reads ``tensor``; ``len(order)`` if none."""
        uses = self.uses[tensor]
        k = bisect.bisect_left(uses, step)
        return uses[k] if k < len(uses) else len(self.order)


@dataclass(frozen=True, slots=True)
class OpenResidency:
    """A residency that has started and not ended yet."""

    tensor: int  # tensor id
    start: int  # first step on chip
    offset: int  # scratchpad address in bytes (0 without addresses)
    arrive: Arrive  # produced at `start`, or loaded before it
    reload: bool  # the tensor had been on chip before this residency


# The plain counters a move may change; undo restores them all at once.
_COUNTERS = (
    "step",
    "live_bytes",
    "max_live_bytes",
    "evictions",
    "spill_stores",
    "reloads",
    "compactions",
    "loaded_bytes",
    "stored_bytes",
    "non_compulsory_bytes",
)

# Journal entries of the undo log: (kind, residency, flag).
_OPENED, _CLOSED, _REMOVED = 0, 1, 2


class PlacementState:
    """The placement state of one fixed order, move by move, with undo.

    Args:
        problem: the problem (its aligned sizes, scope, alignment).
        order: a topological order of all ops (or give ``timeline``).
        timeline: :meth:`Timeline.of` the problem and order, when already built.
        capacity_bytes: the capacity to respect; the problem's by default.
        addresses: track offsets (the game, the online allocator); ``False`` tracks
            only the sum of live bytes (replacement for a later allocator).
        undo: keep the journal :meth:`undo` needs (off for one-way simulations).

    Raises:
        ConfigError: when the capacity is below M_R.
    """

    def __init__(
        self,
        problem: Problem,
        order: Sequence[int] | None = None,
        *,
        timeline: Timeline | None = None,
        capacity_bytes: int | None = None,
        addresses: bool = True,
        undo: bool = True,
    ) -> None:
        if timeline is None:
            assert order is not None, "give an order or a timeline"
            timeline = Timeline.of(problem, order)
        self.problem = problem
        self.timeline = timeline
        self.capacity_bytes = problem.capacity_bytes if capacity_bytes is None else capacity_bytes
        if self.capacity_bytes < problem.min_resident_bytes:
            raise ConfigError(problem.with_capacity(self.capacity_bytes).describe_capacity_error())
        self.alignment_bytes = problem.alignment_bytes
        self.addresses = addresses
        self.num_steps = len(timeline.order)
        graph = problem.graph
        self.sizes = problem.aligned_sizes_bytes  # aligned sizes: what occupies the chip
        self._true_sizes = tuple(t.size_bytes for t in graph.tensors)  # what DMA moves
        self._is_activation = tuple(t.kind is TensorKind.ACTIVATION for t in graph.tensors)
        self._is_output = tuple(t.is_output for t in graph.tensors)
        self._producer = graph.producer
        self._record = undo
        self.step = 0  # the step whose op runs next
        self._open: dict[int, OpenResidency] = {}
        self._blocks: list[tuple[int, int, int]] = []  # (offset, offset + size, tensor), sorted
        self._has_copy = [not a for a in self._is_activation]  # DRAM holds a valid copy
        self._was_on_chip = [False] * graph.num_tensors
        self.closed: list[Residency] = []  # ended residencies, in the order they ended
        self._pending: list[int] = []
        self.live_bytes = 0  # aligned bytes on chip now
        self.max_live_bytes = 0  # highest live_bytes so far
        self.evictions = 0  # residencies ended before their tensor's last use
        self.spill_stores = 0  # stores of activations that are not graph outputs
        self.reloads = 0  # loads of a tensor that had been on chip before
        self.compactions = 0  # compact moves played
        self.loaded_bytes = 0  # bytes of load residencies (true sizes)
        self.stored_bytes = 0  # bytes of store residencies (true sizes)
        self.non_compulsory_bytes = 0  # traffic so far that no plan has to move
        self._journal: list[tuple[int, OpenResidency, bool]] = []
        self._marks: list[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = []
        self._list_pending()
        self._run_ready_steps()

    # ----------------------------------------------------------------- queries
    @property
    def done(self) -> bool:
        """True after the last step ran."""
        return self.step >= self.num_steps

    @property
    def pending(self) -> tuple[int, ...]:
        """Tensors still to place before the current step runs, next first."""
        return tuple(self._pending)

    @property
    def next_tensor(self) -> int | None:
        """The pending tensor the next ``place`` puts down, or None when done."""
        return self._pending[0] if self._pending else None

    def working_set(self) -> tuple[int, ...]:
        """The in-scope tensors the current step's op reads or writes."""
        return self.timeline.working_set(self.step)

    def open_residencies(self) -> list[OpenResidency]:
        """The residencies on chip now, by offset (by tensor id without addresses)."""
        if self.addresses:
            return [self._open[t] for _, _, t in self._blocks]
        return [self._open[t] for t in sorted(self._open)]

    def open_blocks(self) -> list[tuple[int, int, int]]:
        """``(offset, offset + aligned size, tensor)`` of every tensor on chip, by offset
        (empty without addresses)."""
        return list(self._blocks)

    def open_residency(self, tensor: int) -> OpenResidency | None:
        """The open residency of ``tensor``, or None when it is not on chip."""
        return self._open.get(tensor)

    def is_open(self, tensor: int) -> bool:
        """Whether ``tensor`` is on chip now."""
        return tensor in self._open

    def has_dram_copy(self, tensor: int) -> bool:
        """Whether DRAM holds a valid copy of ``tensor``."""
        return self._has_copy[tensor]

    def next_use(self, tensor: int) -> int:
        """The first step >= the current one that reads ``tensor`` (``num_steps``: none)."""
        return self.timeline.next_use(tensor, self.step)

    def last_use(self, tensor: int) -> int:
        """The last step that reads ``tensor`` (-1 if none)."""
        uses = self.timeline.uses[tensor]
        return uses[-1] if uses else -1

    def eviction_candidates(self) -> list[int]:
        """Open tensors the current op does not touch (what ``evict`` accepts), by id."""
        if self.done:
            return []
        here = set(self.working_set())
        return sorted(t for t in self._open if t not in here)

    def fits(self, offset: int, size: int) -> bool:
        """Whether ``size`` bytes at ``offset`` are aligned, inside, and overlap nothing open."""
        if offset < 0 or offset % self.alignment_bytes or offset + size > self.capacity_bytes:
            return False
        if not self.addresses:
            return self.live_bytes + size <= self.capacity_bytes
        k = bisect.bisect_left(self._blocks, (offset + size, -1, -1))
        return k == 0 or self._blocks[k - 1][1] <= offset

    def offset_candidates(self) -> list[int]:
        """Legal offsets for the next pending tensor, canonical ones only, ascending.

        0, the aligned top of each open residency, flush under each open residency,
        and flush under the capacity; each kept where the tensor fits.
        """
        tensor = self.next_tensor
        if tensor is None:
            return []
        size, align = self.sizes[tensor], self.alignment_bytes
        if not self.addresses:
            return [0] if self.fits(0, size) else []
        seen = {0, (self.capacity_bytes - size) // align * align}
        for low, high, _ in self._blocks:
            seen.add(-(-high // align) * align)
            seen.add(low - size)
        return sorted(o for o in seen if self.fits(o, size))

    def lowest_offsets(self, tensors: Sequence[int]) -> list[int] | None:
        """Lowest-gap offsets for placing ``tensors`` one after the other, or None.

        Nothing changes; the offsets are what ``place`` calls would use if each tensor
        took the lowest aligned gap that fits it.
        """
        trial = list(self._blocks)
        align, capacity = self.alignment_bytes, self.capacity_bytes
        offsets = []
        for t in tensors:
            size = self.sizes[t]
            offset = 0
            for low, high, _ in trial:
                if offset + size <= low:
                    break
                offset = max(offset, -(-high // align) * align)
            if offset + size > capacity:
                return None
            bisect.insort(trial, (offset, offset + size, t))
            offsets.append(offset)
        return offsets

    def free_gaps(self) -> list[tuple[int, int]]:
        """Free address ranges ``[low, high)`` between open residencies, ascending."""
        gaps, offset = [], 0
        for low, high, _ in self._blocks:
            if low > offset:
                gaps.append((offset, low))
            offset = max(offset, high)
        if offset < self.capacity_bytes:
            gaps.append((offset, self.capacity_bytes))
        return gaps

    def legal_moves(self) -> list[Move]:
        """Every legal move: placements (canonical offsets), evictions, compact."""
        if self.done:
            return []
        moves = [Move(MoveKind.PLACE, o) for o in self.offset_candidates()]
        moves += [Move(MoveKind.EVICT, t) for t in self.eviction_candidates()]
        moves.append(Move(MoveKind.COMPACT))
        return moves

    def plan(self) -> Plan:
        """The finished plan (only when :attr:`done`)."""
        assert self.done and not self._open, "the game is not finished"
        return Plan.make(self.timeline.order, self.closed)

    def signature(self) -> tuple[object, ...]:
        """Everything the state holds, as a comparable value (for tests and caches)."""
        return (
            self.step,
            tuple(sorted(self._open.items())),
            tuple(self._blocks),
            tuple(self._has_copy),
            tuple(self._was_on_chip),
            tuple(self.closed),
            tuple(self._pending),
            self._counters(),
        )

    # ------------------------------------------------------------------- moves
    def apply(self, move: Move) -> None:
        """Play ``move`` (see :meth:`place`, :meth:`evict`, :meth:`compact`)."""
        if move.kind is MoveKind.PLACE:
            self.place(move.arg)
        elif move.kind is MoveKind.EVICT:
            self.evict(move.arg)
        else:
            self.compact()

    def place(self, offset: int) -> None:
        """Put the next pending tensor at ``offset``.

        Raises:
            ValueError: the game is over, or the tensor does not fit there.
        """
        tensor = self.next_tensor
        if tensor is None:
            raise ValueError("nothing is pending: the game is over")
        if not self.fits(offset, self.sizes[tensor]):
            raise ValueError(f"tensor {tensor} does not fit at offset {offset}")
        self._begin_move()
        self._pending.pop(0)
        self._opened(tensor, offset)
        if not self._pending:
            self._run_ready_steps()

    def evict(self, tensor: int) -> None:
        """End ``tensor``'s open residency now (stored if DRAM has no valid copy).

        Raises:
            ValueError: ``tensor`` is not open, or the current op touches it.
        """
        if tensor not in self._open or self.done or tensor in self.working_set():
            raise ValueError(f"tensor {tensor} is not an eviction candidate at step {self.step}")
        self._begin_move()
        self._close(tensor, self.step, last_use=False)

    def compact(self) -> None:
        """Evict everything and stack the working set from offset 0; the step then runs."""
        if self.done:
            raise ValueError("the game is over")
        self._begin_move()
        step, here = self.step, self.working_set()
        for t in [t for t, r in self._open.items() if r.start == step]:
            self._remove(t)  # placed during this step: not a residency yet
        in_here = set(here)
        others = sorted((t for t in self._open if t not in in_here), key=self._offset_key)
        for t in [*others, *(t for t in here if t in self._open)]:
            self._close(t, step, last_use=False)
        self.compactions += 1
        offset = 0
        for t in sorted(here, key=lambda t: (-self.sizes[t], t)):
            self._opened(t, offset)
            offset += self.sizes[t]
        self._pending = []
        self._run_ready_steps()

    def undo(self) -> None:
        """Take back the last move; the state is then exactly as before it."""
        assert self._record, "this state keeps no undo journal"
        journal_length, closed_length, pending, counters = self._marks.pop()
        while len(self._journal) > journal_length:
            kind, residency, flag = self._journal.pop()
            tensor = residency.tensor
            if kind == _OPENED:
                self._unlink(tensor)
                self._was_on_chip[tensor] = residency.reload
            else:
                self._link(residency)
                self._was_on_chip[tensor] = True
                if kind == _CLOSED:
                    self._has_copy[tensor] = flag
        del self.closed[closed_length:]
        self._pending = list(pending)
        self._set_counters(counters)

    @property
    def moves_played(self) -> int:
        """How many moves can be undone."""
        return len(self._marks)

    # --------------------------------------------------------------- internals
    def _counters(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in _COUNTERS)

    def _set_counters(self, values: tuple[int, ...]) -> None:
        for name, value in zip(_COUNTERS, values, strict=True):
            setattr(self, name, value)

    def _begin_move(self) -> None:
        if self._record:
            self._marks.append(
                (len(self._journal), len(self.closed), tuple(self._pending), self._counters())
            )

    def _offset_key(self, tensor: int) -> tuple[int, int]:
        return (self._open[tensor].offset, tensor)

    def _link(self, residency: OpenResidency) -> None:
        tensor = residency.tensor
        self._open[tensor] = residency
        if self.addresses:
            end = residency.offset + self.sizes[tensor]
            bisect.insort(self._blocks, (residency.offset, end, tensor))

    def _unlink(self, tensor: int) -> OpenResidency:
        residency = self._open.pop(tensor)
        if self.addresses:
            end = residency.offset + self.sizes[tensor]
            del self._blocks[bisect.bisect_left(self._blocks, (residency.offset, end, tensor))]
        return residency

    def _opened(self, tensor: int, offset: int) -> None:
        """Start a residency of ``tensor`` at the current step."""
        step = self.step
        produced_here = self._producer[tensor] == self.timeline.order[step]
        arrive = Arrive.PRODUCE if produced_here else Arrive.LOAD
        reload = self._was_on_chip[tensor]
        residency = OpenResidency(tensor, step, offset if self.addresses else 0, arrive, reload)
        self._link(residency)
        self._was_on_chip[tensor] = True
        if self._record:
            self._journal.append((_OPENED, residency, False))
        size = self.sizes[tensor]
        self.live_bytes += size
        self.max_live_bytes = max(self.max_live_bytes, self.live_bytes)
        if arrive is Arrive.LOAD:
            self.reloads += reload
            self.loaded_bytes += self._true_sizes[tensor]
            if reload or self._is_activation[tensor]:
                self.non_compulsory_bytes += self._true_sizes[tensor]

    def _remove(self, tensor: int) -> None:
        """Take back a residency that started at the current step (for compact)."""
        residency = self._unlink(tensor)
        self._was_on_chip[tensor] = residency.reload
        if self._record:
            self._journal.append((_REMOVED, residency, False))
        self.live_bytes -= self.sizes[tensor]
        if residency.arrive is Arrive.LOAD:
            self.reloads -= residency.reload
            self.loaded_bytes -= self._true_sizes[tensor]
            if residency.reload or self._is_activation[tensor]:
                self.non_compulsory_bytes -= self._true_sizes[tensor]

    def _close(self, tensor: int, end: int, last_use: bool) -> None:
        """End ``tensor``'s residency at step ``end`` (exclusive)."""
        residency = self._unlink(tensor)
        had_copy = self._has_copy[tensor]
        if self._record:
            self._journal.append((_CLOSED, residency, had_copy))
        self.live_bytes -= self.sizes[tensor]
        store = self._is_activation[tensor] and not had_copy
        if last_use:
            store = store and self._is_output[tensor]
        else:
            self.evictions += 1
        if store:
            self._has_copy[tensor] = True
            self.stored_bytes += self._true_sizes[tensor]
            if not self._is_output[tensor]:
                self.spill_stores += 1
                self.non_compulsory_bytes += self._true_sizes[tensor]
        leave = Leave.STORE if store else Leave.DROP
        self.closed.append(
            Residency(
                TensorId(tensor), residency.start, end, residency.offset, residency.arrive, leave
            )
        )

    def _list_pending(self) -> None:
        if self.done:
            self._pending = []
            return
        here = self.working_set()
        self._pending = sorted(
            (t for t in here if t not in self._open), key=lambda t: (-self.sizes[t], t)
        )

    def _run_ready_steps(self) -> None:
        """Run steps while nothing is pending: close what is not read again, move on."""
        while not self._pending and not self.done:
            step = self.step
            for t in self.working_set():
                if t in self._open and self.timeline.next_use(t, step + 1) >= self.num_steps:
                    self._close(t, step + 1, last_use=True)
            self.step = step + 1
            self._list_pending()
