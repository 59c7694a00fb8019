"""The time-indexed structure both ILP backends share: steps, windows, slots, units.

One op runs per step (``n`` steps for ``n`` ops). In ``free`` mode the step of op ``o``
is a variable restricted to its *window* ``[asap, alap]``: ``asap`` is the number of
ancestors of ``o`` (they all run before it) and ``alap`` is ``n - 1`` minus the number of
descendants. In ``fixed`` mode every window is a single step. A tensor can be on chip
only inside its *lifetime window*: from the earliest step its producer (or first reader)
can run to the latest step its last reader can run; outside it the tensor is forced
off chip, so pairs of tensors whose windows do not meet never need a non-overlap row::

    steps:            0   1   2   3   4   5
    op p window      [p---p]                    asap 0, alap 1
    op c window              [c-------c]        asap 2, alap 4
    tensor p->c           [=================)   window [0, 5)

A tensor's stays on chip are *slots*: an activation has its ``produce`` slot and up to
``max_loads`` ``load`` slots (COSMA: stored at most once, at the end of the produce
slot, then reloaded); a graph input or an in-scope weight has ``1 + max_loads`` load
slots, the first of which is compulsory.

Every restriction here holds for some optimal plan of the problem, so with complete slots
(``max_loads=-1``) a model's optimum and bound are over ALL valid plans:

- op windows: every topological order runs ``o`` inside ``[asap, alap]``;
- lifetime windows: a residency outside them serves no read; trimming it keeps the plan
  valid and its cost (an output's store moves to the trimmed end);
- slots: a load that covers no read can be dropped (it only costs), and residencies of one
  tensor never share a step, so a plan needs at most one load per read; an activation
  reaches DRAM only by a store at the end of its produce residency (every later
  residency needs a DRAM copy first), so one store slot suffices;
- units: pushing every residency down until it rests on another one (or on 0) keeps a
  packing valid and makes each offset a sum of aligned sizes, a multiple of the unit.

Addresses are counted in *units* of ``unit_bytes``: the greatest common divisor of the
alignment and every aligned in-scope size, so the models work with small integers
(no big-M tolerance problems) and every unit offset is a legal aligned byte offset.

Boundary conditions (divide and conquer, PROBLEM.md section 8) are on
:class:`TensorSpec` (:class:`TensorBoundary`: the state a tensor enters a part with,
resident at an offset, with or without a DRAM copy; the state it must leave in),
derived for one part in :func:`memplan.solvers.ilp.part.build_part` and turned into
constraints on the tensor's first and last slot by the CP-SAT per-tensor builder
(``cpsat._add_tensor``); the MILP backend models whole problems only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from memplan.analysis import check_order, steps_of, tensor_lifetimes
from memplan.ir import OpId, TensorId, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem
from memplan.schedule import op_closures


@dataclass(frozen=True, slots=True)
class TensorBoundary:
    """A tensor's state at the two cuts around a part (PROBLEM.md section 8).

    The part's steps are ``0 .. n-1``; step ``n`` is the cut after it: a slot that
    covers step ``n`` continues into the next part (it ends there with nothing moved).
    """

    enter_offset_units: int | None  # on chip when the part starts, at this offset; None: not
    enter_copy: bool  # DRAM holds a valid copy when the part starts
    leave_offset_units: int | None  # must cover the cut at this offset; None: off chip then
    leave_copy: bool  # DRAM must hold a valid copy when the part ends


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One in-scope tensor as the models see it."""

    tensor: TensorId  # tensor id in the graph
    units: int  # aligned size in address units
    size_bytes: int  # exact size: the cost of one load or store
    producer: OpId | None  # producing op, None for inputs and weights
    consumers: tuple[OpId, ...]  # distinct ops reading it
    is_output: bool  # a graph output (its one store is compulsory)
    activation: bool  # produced on chip (otherwise it starts in DRAM)
    window: tuple[int, int]  # half-open steps [lo, hi) where it may be on chip
    num_slots: int  # produce slot (activations) plus load slots
    boundary: TensorBoundary | None = None  # a part's boundary state (None: a whole problem)

    @property
    def enters(self) -> bool:
        """Whether its first slot is a residency entering the part (fixed start and offset)."""
        return self.boundary is not None and self.boundary.enter_offset_units is not None

    def stores(self) -> bool:
        """Whether its first slot may end with a store (an activation without a copy)."""
        if self.boundary is None:
            return self.activation
        return (self.activation or self.enters) and not self.boundary.enter_copy

    @property
    def first_load_slot(self) -> int:
        """Index of the first slot that arrives by a load."""
        return 1 if self.activation else 0

    def store_is_charged(self) -> bool:
        """Whether spilling it costs a store (non-output activations; in a part, every
        store: it moves bytes the rest of the plan does not)."""
        if self.boundary is not None:
            return self.stores()
        return self.activation and not self.is_output

    def first_load_charged(self) -> bool:
        """Whether its first slot, when it is a load, is traffic the objective counts (in
        a whole problem an input's or weight's first load is compulsory)."""
        return self.boundary is not None and not self.enters

    def complete_slots(self) -> bool:
        """Whether it has a load slot per read: then the slots lose no plan (each load of
        a plan worth keeping covers a read of its own)."""
        return self.num_slots == len(self.consumers) + (1 if self.activation else 0)


@dataclass(frozen=True, slots=True)
class Structure:
    """Everything the backends need, derived once from a problem and a mode."""

    problem: Problem  # the planning problem
    n_steps: int  # steps = ops
    op_windows: tuple[tuple[int, int], ...]  # per op, inclusive [asap, alap] step range
    edges: tuple[tuple[OpId, OpId], ...]  # producer -> consumer op pairs, each once
    tensors: tuple[TensorSpec, ...]  # in-scope tensors touched by some op
    unit_bytes: int  # bytes per address unit
    capacity_units: int  # scratchpad size in units (rounded down)
    fixed_order: tuple[OpId, ...] | None  # the order in fixed mode, None in free mode
    cut: bool = False  # a part: step n_steps is the cut after it (see TensorBoundary)
    placement: bool = True  # addresses are modelled (else only the sum per step is bounded)

    def op_fixed(self, op: int) -> bool:
        """Whether the op's step is known."""
        lo, hi = self.op_windows[op]
        return lo == hi

    @property
    def complete(self) -> bool:
        """Whether the slots cover every plan (no ``max_loads`` restriction bites)."""
        return all(spec.complete_slots() for spec in self.tensors)

    def units_of(self, tensor: int) -> int:
        """Aligned size of a tensor in units."""
        return self.problem.aligned_sizes_bytes[tensor] // self.unit_bytes


def op_windows(problem: Problem) -> list[tuple[int, int]]:
    """Inclusive ``[asap, alap]`` step range of every op over all topological orders."""
    n = problem.graph.num_ops
    ancestors, descendants = op_closures(problem.graph)
    return [(ancestors[o].bit_count(), n - 1 - descendants[o].bit_count()) for o in range(n)]


def build_structure(problem: Problem, order: Sequence[int] | None, max_loads: int) -> Structure:
    """Derive the shared structure; ``order`` fixes the schedule (``fixed`` mode).

    Args:
        problem: the planning problem.
        order: a topological order to fix, or None to leave the order free.
        max_loads: load slots per tensor beyond the compulsory one (0 = no spilling,
            negative = as many as the tensor has reads, which loses no plan).
    """
    graph = problem.graph
    n = graph.num_ops
    if order is not None:
        check_order(graph, order)
        step = steps_of(order)
        windows = [(step[o], step[o]) for o in range(n)]
    else:
        windows = op_windows(problem)
    edges = sorted({(p, o.id) for o in graph.ops for p in graph.predecessors(o.id)})
    sizes = problem.aligned_sizes_bytes
    scoped = [
        t
        for t in graph.tensors
        if problem.in_scope[t.id] and (graph.producer[t.id] is not None or graph.consumers[t.id])
    ]
    # Aligned sizes are multiples of the alignment, so their GCD is too: every offset
    # that is a multiple of the unit is aligned. Packings can be pushed down until each
    # offset is a sum of sizes, so restricting offsets to the unit loses nothing.
    unit = 0
    for t in scoped:
        unit = math.gcd(unit, sizes[t.id])
    unit = max(unit, problem.alignment_bytes, 1)
    specs = []
    for t in scoped:
        producer = graph.producer[t.id]
        consumers = tuple(graph.consumers[t.id])
        touching = ([producer] if producer is not None else []) + list(consumers)
        lo = min(windows[o][0] for o in touching)
        hi = max(windows[o][1] for o in touching) + 1
        activation = t.kind is TensorKind.ACTIVATION
        # Each load slot must cover a read, so #reads loads make the space complete.
        loads = len(consumers) if max_loads < 0 else min(max_loads, len(consumers))
        slots = 1 + loads if activation else max(1, min(1 + loads, len(consumers)))
        specs.append(
            TensorSpec(
                tensor=t.id,
                units=sizes[t.id] // unit,
                size_bytes=t.size_bytes,
                producer=producer,
                consumers=consumers,
                is_output=t.is_output,
                activation=activation,
                window=(lo, hi),
                num_slots=slots,
            )
        )
    return Structure(
        problem=problem,
        n_steps=n,
        op_windows=tuple(windows),
        edges=tuple((OpId(p), OpId(c)) for p, c in edges),
        tensors=tuple(specs),
        unit_bytes=unit,
        capacity_units=problem.capacity_bytes // unit,
        fixed_order=tuple(OpId(o) for o in order) if order is not None else None,
    )


# ---------------------------------------------------------------- plans <-> slots
@dataclass(frozen=True, slots=True)
class SlotValue:
    """One slot of one tensor in a concrete solution."""

    start: int  # first step on chip
    end: int  # first step off chip again (exclusive)
    offset_units: int  # address in units


def slots_to_plan(
    struct: Structure, order: Sequence[int], slots: dict[int, list[SlotValue]]
) -> Plan:
    """Turn per-tensor slot values (in time order) into a :class:`Plan`.

    The produce slot of an activation ends with a store when the tensor is a graph
    output or is reloaded later; every other slot ends with a drop.
    """
    residencies = []
    for spec in struct.tensors:
        values = sorted(slots.get(spec.tensor, []), key=lambda s: s.start)
        for k, value in enumerate(values):
            produce = spec.activation and k == 0
            store = produce and (spec.is_output or len(values) > 1)
            residencies.append(
                Residency(
                    spec.tensor,
                    value.start,
                    value.end,
                    value.offset_units * struct.unit_bytes,
                    Arrive.PRODUCE if produce else Arrive.LOAD,
                    Leave.STORE if store else Leave.DROP,
                )
            )
    return Plan.make(order, residencies)


def plan_slots(struct: Structure, plan: Plan) -> dict[int, list[SlotValue]] | None:
    """The slot values of a plan, or None when it does not fit the model's space.

    A plan fits when it has the model's order (fixed mode), every tensor has at most
    ``num_slots`` residencies inside its window, an activation's first residency is its
    produce residency and every offset is a multiple of the unit.
    """
    if struct.fixed_order is not None and tuple(plan.order) != struct.fixed_order:
        return None
    by_tensor: dict[int, list[Residency]] = {}
    for r in plan.residencies:
        by_tensor.setdefault(r.tensor, []).append(r)
    result: dict[int, list[SlotValue]] = {}
    for spec in struct.tensors:
        stays = sorted(by_tensor.get(spec.tensor, []), key=lambda r: r.start)
        if not stays or len(stays) > spec.num_slots:
            return None
        if spec.activation and stays[0].arrive is not Arrive.PRODUCE:
            return None
        if any(r.offset % struct.unit_bytes for r in stays):
            return None
        lo, hi = spec.window
        if any(r.start < lo or r.end > hi for r in stays):
            return None
        result[spec.tensor] = [
            SlotValue(r.start, r.end, r.offset // struct.unit_bytes) for r in stays
        ]
    return result


@dataclass(frozen=True, slots=True)
class Hint:
    """A valid plan that fits a model's space, with its slot values: a search hint."""

    plan: Plan  # the plan (its order hints the steps)
    slots: dict[int, list[SlotValue]]  # its slot values (see plan_slots)


def first_hint(struct: Structure, plans: Sequence[Plan]) -> Hint | None:
    """The first of ``plans`` that fits the model's space, as a hint; None if none does."""
    for plan in plans:
        slots = plan_slots(struct, plan)
        if slots is not None:
            return Hint(plan, slots)
    return None


def slot_traffic_bytes(struct: Structure, slots: dict[int, list[SlotValue]]) -> int:
    """Non-compulsory bytes of a slot solution (the traffic objective)."""
    total = 0
    for spec in struct.tensors:
        count = len(slots.get(spec.tensor, []))
        loads = count - 1  # activations: loads; others: loads beyond the compulsory one
        total += spec.size_bytes * loads
        if spec.store_is_charged() and loads > 0:
            total += spec.size_bytes
    return total


# ---------------------------------------------------------------- no-spill plan
def no_spill_plan(
    struct: Structure,
    order: Sequence[int],
    time_limit_s: float,
    portfolio_limit_s: float | None = None,
) -> Plan | None:
    """Every tensor on chip for its whole lifetime under ``order`` (zero non-compulsory
    traffic), packed by :func:`memplan.dsa.allocate`; None when no packing fits.

    Args:
        struct: the structure (its tensors, unit and capacity).
        order: a topological order.
        time_limit_s: limit of the allocator's exact search (0 = its greedy portfolio only).
        portfolio_limit_s: with ``time_limit_s`` 0, the portfolio's time limit (None: none,
            for a caller that needs this plan; its work is bounded, but 10,000 buffers live
            at once took 8.7 s).
    """
    from memplan.dsa import Buffer, allocate
    from memplan.errors import MemplanError
    from memplan.solver import Budget

    graph = struct.problem.graph
    lifetimes = tensor_lifetimes(graph, order, struct.problem.in_scope)
    unit = struct.unit_bytes
    buffers = []
    for spec in struct.tensors:
        span = lifetimes[spec.tensor]
        assert span is not None  # every modelled tensor is in scope and touched by an op
        buffers.append(Buffer(spec.tensor, span[0], span[1], spec.units * unit, unit))
    capacity = struct.capacity_units * unit
    try:
        if time_limit_s > 0:
            result = allocate(buffers, capacity, budget=Budget(time_limit_s=time_limit_s))
        else:  # the greedy portfolio only (its work is bounded, not its time)
            budget = Budget(time_limit_s=portfolio_limit_s)
            result = allocate(buffers, capacity, algorithm="portfolio", budget=budget)
    except MemplanError:
        return None
    offsets = result.offsets_bytes
    if offsets is None or result.height_bytes is None or result.height_bytes > capacity:
        return None
    slots: dict[int, list[SlotValue]] = {
        spec.tensor: [SlotValue(b.lower, b.upper, off // unit)]
        for spec, b, off in zip(struct.tensors, buffers, offsets, strict=True)
    }
    return slots_to_plan(struct, order, slots)
