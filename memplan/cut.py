"""Cuts of a plan and the boundary states at them (PROBLEM.md section 8).

A *cut* at step ``c`` splits a plan's order into a prefix (steps ``[0, c)``) and a
suffix (steps ``[c, n)``). The *boundary state* at the cut lists every tensor that was
produced or loaded before it and is still on chip or used after it: resident (at its
offset; a residency crossing the cut covers steps ``c - 1`` and ``c``), and whether
DRAM holds a valid copy. A *part* is the plan between two cuts; its residencies are
*pieces*: a residency that crosses a cut is cut in two, and the open ends are marked
(``arrive`` or ``leave`` is None) so that joining the parts puts it back unchanged::

    step:          0    1    2  | 3    4    5        cut at step 3
    t4 (resident)  [produce ────|──────────)store     state: t4 at offset 0, no copy
    prefix piece   [produce ───)None                  leave=None: continues
    suffix piece                [None ─────)store     arrive=None: continued

Joining checks at every cut that each open piece on the left meets an open piece of
the same tensor at the same offset on the right, then the joined plan must pass the
validator as one plan; its cost is the cost model's, not a sum over parts.

A part solved on its own (divide and conquer) gets a :class:`PartSpec`: its ops, the
fixed entering state, and the required leaving state (or a free one).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from memplan.analysis import tensor_lifetimes
from memplan.errors import InvalidPlanError
from memplan.ir import OpId, TensorId, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem
from memplan.validate import check_plan


@dataclass(frozen=True, slots=True)
class BoundaryTensor:
    """Where one tensor is at a cut."""

    tensor: TensorId  # tensor id (of the whole graph)
    offset: int | None  # offset of its residency crossing the cut; None = in DRAM only
    dram_copy: bool  # DRAM holds a valid copy (state), or must hold one (requirement)

    @property
    def resident(self) -> bool:
        """Whether the tensor is on chip across the cut."""
        return self.offset is not None


@dataclass(frozen=True, slots=True)
class BoundaryState:
    """The state of the scratchpad and DRAM at one cut."""

    step: int  # the cut: steps before it are the prefix
    tensors: tuple[BoundaryTensor, ...]  # by tensor id

    def get(self, tensor: int) -> BoundaryTensor | None:
        """The entry of ``tensor``, or None when the state does not list it."""
        for entry in self.tensors:
            if entry.tensor == tensor:
                return entry
        return None

    def resident(self) -> list[BoundaryTensor]:
        """The entries of tensors on chip across the cut."""
        return [e for e in self.tensors if e.offset is not None]

    def resident_bytes(self, problem: Problem) -> int:
        """Aligned bytes on chip across the cut."""
        return sum(problem.aligned_sizes_bytes[e.tensor] for e in self.resident())

    def __str__(self) -> str:
        parts = [
            f"t{e.tensor}@{e.offset}" if e.resident else f"t{e.tensor}:dram" for e in self.tensors
        ]
        return f"cut {self.step}: " + (", ".join(parts) or "empty")


@dataclass(frozen=True, slots=True)
class Piece:
    """The part of one residency inside a part: steps ``[start, end)`` of the whole plan."""

    tensor: TensorId  # tensor id
    start: int  # first step on chip inside the part
    end: int  # first step off chip, or the part's end (exclusive)
    offset: int  # scratchpad offset in bytes
    arrive: Arrive | None  # produce or load; None = continues from before the part
    leave: Leave | None  # drop or store; None = continues after the part


@dataclass(frozen=True, slots=True)
class PlanPart:
    """The plan between two cuts: steps ``[start, start + len(order))``."""

    start: int  # first step of the part in the whole order
    order: tuple[OpId, ...]  # ops of the part's steps, in order
    pieces: tuple[Piece, ...]  # by (tensor, start)
    entering: BoundaryState  # the state at `start`
    leaving: BoundaryState  # the state at the part's end

    @property
    def end(self) -> int:
        """First step after the part."""
        return self.start + len(self.order)


@dataclass(frozen=True, slots=True)
class PartSpec:
    """What a part solver answers: plan ``ops`` between two fixed boundaries.

    ``leaving`` None means a free end: every tensor read by a later op (or a graph output
    not stored yet) must be resident at some offset or have a DRAM copy at the end. A
    given ``leaving`` is exact: its resident tensors at their offsets (and no others),
    and a DRAM copy of every tensor marked ``dram_copy``.
    """

    problem: Problem  # the whole problem: capacity, alignment, scope
    ops: tuple[OpId, ...]  # the part's ops; the order among them is the solver's choice
    later: frozenset[OpId]  # ops after the part
    entering: BoundaryState  # fixed state at the part's first step
    leaving: BoundaryState | None  # required state at the end, or None (free)

    @property
    def start(self) -> int:
        """First step of the part."""
        return self.entering.step

    @property
    def end(self) -> int:
        """First step after the part."""
        return self.entering.step + len(self.ops)

    def live_after(self) -> list[TensorId]:
        """In-scope tensors that must survive the part: read later, or unsaved outputs."""
        problem = self.problem
        graph = problem.graph
        touched = {t for o in self.ops for t in (*graph.ops[o].inputs, *graph.ops[o].outputs)}
        touched.update(e.tensor for e in self.entering.tensors)
        result = []
        for t in sorted(touched):
            if not problem.in_scope[t]:
                continue
            tensor = graph.tensors[t]
            if graph.producer[t] in self.later:
                continue  # produced after the part
            if any(c in self.later for c in graph.consumers[t]):
                result.append(TensorId(t))
            elif tensor.is_output and tensor.kind is TensorKind.ACTIVATION:
                entry = self.entering.get(t)
                if entry is None or not entry.dram_copy:
                    result.append(TensorId(t))
        return result


def crossing_bytes(problem: Problem, order: Sequence[int]) -> np.ndarray:
    """Aligned bytes crossing each cut ``c`` in ``0 .. n`` under ``order`` with no
    spilling: the tensors live at both steps ``c - 1`` and ``c``. The narrow places of an
    order (few bytes cross) are where cuts constrain the parts least."""
    n = len(order)
    delta = np.zeros(n + 2, dtype=np.int64)
    sizes = problem.aligned_sizes_bytes
    for tensor, span in enumerate(tensor_lifetimes(problem.graph, order, problem.in_scope)):
        if span is not None and span[1] - span[0] >= 2:
            delta[span[0] + 1] += sizes[tensor]  # crosses the cuts start+1 .. end-1
            delta[span[1]] -= sizes[tensor]
    return np.cumsum(delta)[: n + 1]


#: Capability of a solver plug-in that plans one part under fixed boundaries:
#: ``cls.solve_part(spec, order, *, fixed_order, hint, budget, deterministic_s, workers,
#: seed, placement) -> PartOutcome`` (see :class:`PartOutcome`; ``spec.leaving`` is set).
PART_SOLVER = "part_solver"


@dataclass(frozen=True, slots=True)
class PartOutcome:
    """What a part solver found for a :class:`PartSpec`."""

    part: PlanPart | None  # the best plan of the part, or None (none found in time)
    traffic_bytes: int | None  # bytes its pieces load and store (see part_traffic)
    optimal: bool  # proven optimal for the part under its boundaries
    status: str  # the solver's status, in a word
    wall_s: float  # seconds the solve took
    bound_bytes: int | None = None  # proven lower bound on the bytes any plan of the part moves


def part_traffic(problem: Problem, pieces: Iterable[Piece | Residency]) -> int:
    """Bytes loaded and stored by ``pieces`` (of a part), or by a plan's residencies.

    Joining parts keeps every piece's own arrive and leave, so the traffic of a joined
    plan is the sum of its parts' (a part that moves fewer bytes improves the plan).
    """
    tensors = problem.graph.tensors
    return sum(
        tensors[p.tensor].size_bytes
        for p in pieces
        for counted in (p.arrive is Arrive.LOAD, p.leave is Leave.STORE)
        if counted
    )


# ------------------------------------------------------------------- states of a plan
def _has_copy_at(problem: Problem, stays: Sequence[Residency], tensor: int, step: int) -> bool:
    """Whether DRAM holds a valid copy of ``tensor`` at the cut ``step``."""
    if problem.graph.tensors[tensor].kind is not TensorKind.ACTIVATION:
        return True
    return any(r.leave is Leave.STORE and r.end <= step for r in stays)


def _by_tensor(plan: Plan) -> dict[int, list[Residency]]:
    groups: dict[int, list[Residency]] = {}
    for r in plan.residencies:
        groups.setdefault(r.tensor, []).append(r)
    return groups


def boundary_state(problem: Problem, plan: Plan, step: int) -> BoundaryState:
    """The state of ``plan`` at the cut ``step`` (``0 <= step <= len(plan.order)``).

    Lists every tensor with a residency crossing the cut, and every tensor produced or
    loaded before the cut that an op at or after the cut reads or that is a graph output
    (in DRAM only, unless it crosses; ``dram_copy`` says whether an output is stored
    yet). A plan that loads a tensor after the cut needs ``dram_copy`` there.
    """
    graph = problem.graph
    read_after = {t for o in plan.order[step:] for t in graph.ops[o].inputs}
    entries = []
    for tensor, stays in sorted(_by_tensor(plan).items()):
        crossing = [r for r in stays if r.start < step < r.end]
        before = any(r.start < step for r in stays)
        needed = tensor in read_after or graph.tensors[tensor].is_output  # outputs: stored yet?
        if not crossing and not (before and needed):
            continue
        offset = crossing[0].offset if crossing else None
        copy = _has_copy_at(problem, stays, tensor, step)
        entries.append(BoundaryTensor(TensorId(tensor), offset, copy))
    return BoundaryState(step, tuple(entries))


def required_state(problem: Problem, plan: Plan, step: int) -> BoundaryState:
    """What the suffix of ``plan`` after ``step`` needs from the prefix.

    The residencies crossing the cut, at their offsets, and ``dram_copy`` for every
    tensor whose copy the suffix relies on without making it: a load before any store
    of the suffix, or a graph output the suffix never stores. A prefix solved to meet
    this requirement joins with the suffix into a valid plan (given the same prefix ops).
    """
    entries = []
    for tensor, stays in sorted(_by_tensor(plan).items()):
        crossing = [r for r in stays if r.start < step < r.end]
        after = [r for r in stays if r.end > step]
        if not after and not problem.graph.tensors[tensor].is_output:
            continue
        store_end = min((r.end for r in after if r.leave is Leave.STORE), default=None)
        loads = [r.start for r in after if r.arrive is Arrive.LOAD and r.start >= step]
        needs_copy = any(store_end is None or store_end > s for s in loads)
        info = problem.graph.tensors[tensor]
        if info.is_output and info.kind is TensorKind.ACTIVATION and store_end is None:
            needs_copy = True
        if not crossing and not needs_copy:
            continue
        if info.kind is not TensorKind.ACTIVATION and not crossing:
            continue  # DRAM always holds weights and inputs
        offset = crossing[0].offset if crossing else None
        entries.append(BoundaryTensor(TensorId(tensor), offset, needs_copy))
    return BoundaryState(step, tuple(entries))


def satisfies(state: BoundaryState, requirement: BoundaryState) -> list[str]:
    """Why ``state`` does not meet ``requirement`` (empty when it does)."""
    problems = []
    have = {e.tensor: e for e in state.tensors}
    need = {e.tensor: e for e in requirement.tensors}
    for tensor, entry in have.items():
        if entry.resident and (tensor not in need or need[tensor].offset != entry.offset):
            problems.append(f"tensor {tensor} is resident at {entry.offset}, not as required")
    for tensor, entry in need.items():
        got = have.get(tensor)
        if entry.resident and (got is None or got.offset != entry.offset):
            problems.append(f"tensor {tensor} must be resident at offset {entry.offset}")
        if entry.dram_copy and (got is None or not got.dram_copy):
            problems.append(f"tensor {tensor} needs a DRAM copy")
    return problems


# ------------------------------------------------------------------- restrict and join
def restrict(problem: Problem, plan: Plan, start: int, end: int) -> PlanPart:
    """The part of ``plan`` between the cuts ``start`` and ``end`` (``start < end``)."""
    if not 0 <= start < end <= len(plan.order):
        raise ValueError(f"cuts [{start}, {end}) are not inside the plan's {len(plan.order)} steps")
    pieces = [
        Piece(
            r.tensor,
            max(r.start, start),
            min(r.end, end),
            r.offset,
            r.arrive if r.start >= start else None,
            r.leave if r.end <= end else None,
        )
        for r in plan.residencies
        if r.start < end and r.end > start
    ]
    return PlanPart(
        start,
        tuple(plan.order[start:end]),
        tuple(sorted(pieces, key=lambda p: (p.tensor, p.start))),
        boundary_state(problem, plan, start),
        boundary_state(problem, plan, end),
    )


def split(problem: Problem, plan: Plan, cuts: Iterable[int]) -> list[PlanPart]:
    """``plan`` restricted to the parts between consecutive ``cuts`` (0 and n added)."""
    n = len(plan.order)
    points = sorted({0, n, *cuts})
    return [restrict(problem, plan, a, b) for a, b in itertools.pairwise(points)]


def join(problem: Problem, parts: Sequence[PlanPart], *, validate: bool = True) -> Plan:
    """Concatenate parts that tile the steps and rejoin the residencies crossing the cuts.

    Args:
        problem: the whole problem.
        parts: consecutive parts, the first starting at step 0.
        validate: run the validator on the joined plan.

    Raises:
        InvalidPlanError: the parts do not tile the steps, an open piece finds no
            partner of the same tensor at the same offset across its cut, or (with
            ``validate``) the joined plan breaks a rule of PROBLEM.md section 3.
    """
    order: list[OpId] = []
    open_pieces: dict[int, Piece] = {}  # tensor -> piece still open at the current cut
    opened_at: dict[int, tuple[int, Arrive]] = {}  # tensor -> (start, arrive) of its residency
    residencies: list[Residency] = []
    cut = 0
    for part in parts:
        if part.start != cut:
            raise InvalidPlanError(
                f"parts do not tile the steps: a part starts at {part.start}, expected {cut}"
            )
        continued: set[int] = set()
        for piece in part.pieces:
            if not part.start <= piece.start < piece.end <= part.end:
                raise InvalidPlanError(
                    f"tensor {piece.tensor}: piece [{piece.start}, {piece.end}) lies outside "
                    f"its part [{part.start}, {part.end})"
                )
            if piece.arrive is None:
                before = open_pieces.get(piece.tensor)
                if piece.start != cut or before is None or before.offset != piece.offset:
                    raise InvalidPlanError(
                        f"tensor {piece.tensor}: a piece continued at step {piece.start} "
                        f"(offset {piece.offset}) has no open piece before cut {cut} at that offset"
                    )
                continued.add(piece.tensor)
                start, arrive = opened_at[piece.tensor]
            else:
                start, arrive = piece.start, piece.arrive
            if piece.leave is None:
                if piece.end != part.end:
                    raise InvalidPlanError(
                        f"tensor {piece.tensor}: an open piece ends at step {piece.end}, "
                        f"before its part ends at {part.end}"
                    )
                opened_at[piece.tensor] = (start, arrive)
            else:
                residencies.append(
                    Residency(piece.tensor, start, piece.end, piece.offset, arrive, piece.leave)
                )
        dangling = set(open_pieces) - continued
        if dangling:
            raise InvalidPlanError(
                f"tensor {min(dangling)}: its residency is open at cut {cut} but the next part "
                "does not continue it"
            )
        open_pieces = {p.tensor: p for p in part.pieces if p.leave is None}
        order.extend(part.order)
        cut = part.end
    if open_pieces:
        raise InvalidPlanError(
            f"tensor {min(open_pieces)}: its residency is still open after the last step"
        )
    plan = Plan.make(order, residencies)
    if validate:
        check_plan(problem, plan, what="joined plan")
    return plan


# ------------------------------------------------------------------- parts on their own
def leaving_state(spec: PartSpec, pieces: Iterable[Piece]) -> BoundaryState:
    """The state at the end of a part made of ``pieces`` that started in ``spec.entering``.

    Lists the pieces still open at the end (resident) and every tensor that must
    survive the part (:meth:`PartSpec.live_after`), with its DRAM copy status.
    """
    problem = spec.problem
    pieces = list(pieces)
    copies = {e.tensor for e in spec.entering.tensors if e.dram_copy}
    copies.update(p.tensor for p in pieces if p.leave is Leave.STORE)
    open_at = {p.tensor: p.offset for p in pieces if p.leave is None}
    listed = set(open_at) | set(spec.live_after())
    entries = []
    for tensor in sorted(listed):
        copy = tensor in copies or problem.graph.tensors[tensor].kind is not TensorKind.ACTIVATION
        entries.append(BoundaryTensor(TensorId(tensor), open_at.get(tensor), copy))
    return BoundaryState(spec.end, tuple(entries))


def _first_fit(busy: list[tuple[int, int]], size: int, capacity: int) -> int | None:
    """Lowest offset where ``size`` bytes fit between the ``(low, high)`` busy ranges."""
    candidate = 0
    for low, high in sorted(busy):
        if candidate + size <= low:
            break
        candidate = max(candidate, high)
    return candidate if candidate + size <= capacity else None


def spill_part(spec: PartSpec, order: Sequence[int]) -> PlanPart | None:
    """The always-valid plan of a part with a free end: every tensor spilled at once.

    The part's own analogue of :func:`memplan.fallback.spill_everything_plan`: each
    entering resident stays for the first step only (stored if it has no DRAM copy and
    is needed again), each op's working set is on chip for its own step only (outputs
    stored when needed later, inputs loaded), so the part ends with nothing resident.
    The first step's new tensors are placed around the entering residents (first fit);
    when they do not fit there, no plan of the part exists from that state in this
    order and the result is None. ``spec.leaving`` is ignored (the end is free).
    """
    problem = spec.problem
    graph = problem.graph
    sizes = problem.aligned_sizes_bytes
    start = spec.start
    steps = {op: start + k for k, op in enumerate(order)}
    last_read: dict[int, int] = {}
    for op_id, step in steps.items():
        for t in graph.ops[op_id].inputs:
            last_read[t] = max(last_read.get(t, -1), step)
    survive = set(spec.live_after())

    def needed_after(tensor: int, step: int) -> bool:
        return tensor in survive or last_read.get(tensor, -1) > step

    copies = {e.tensor for e in spec.entering.tensors if e.dram_copy}
    pieces: list[Piece] = []
    busy: list[tuple[int, int]] = []
    for entry in spec.entering.resident():
        assert entry.offset is not None
        t = entry.tensor
        store = not entry.dram_copy and needed_after(t, start)
        if graph.tensors[t].kind is not TensorKind.ACTIVATION:
            store = False
        pieces.append(
            Piece(t, start, start + 1, entry.offset, None, Leave.STORE if store else Leave.DROP)
        )
        busy.append((entry.offset, entry.offset + sizes[t]))
        if store:
            copies.add(t)
    resident_first = {e.tensor for e in spec.entering.resident()}
    for k, op_id in enumerate(order):
        step = start + k
        op = graph.ops[op_id]
        offset = 0
        for t in dict.fromkeys((*op.inputs, *op.outputs)):
            if not problem.in_scope[t] or (k == 0 and t in resident_first):
                continue
            if k == 0:
                found = _first_fit(busy, sizes[t], problem.capacity_bytes)
                if found is None:
                    return None
                busy.append((found, found + sizes[t]))
                offset = found
            produced = graph.producer[t] == op_id
            if produced:
                store = needed_after(t, step) or graph.tensors[t].is_output
                arrive, leave = Arrive.PRODUCE, Leave.STORE if store else Leave.DROP
                if store:
                    copies.add(t)
            else:
                if t not in copies and graph.tensors[t].kind is TensorKind.ACTIVATION:
                    return None  # read without a copy: the entering state is inconsistent
                arrive, leave = Arrive.LOAD, Leave.DROP
            pieces.append(Piece(TensorId(t), step, step + 1, offset, arrive, leave))
            if k > 0:
                offset += sizes[t]
    pieces.sort(key=lambda p: (p.tensor, p.start))
    return PlanPart(
        start,
        tuple(OpId(o) for o in order),
        tuple(pieces),
        spec.entering,
        leaving_state(spec, pieces),
    )
