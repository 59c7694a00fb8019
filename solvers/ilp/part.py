"""The ILP on one part of a plan, under fixed boundaries (PROBLEM.md section 8).

A part is a run of consecutive steps of a plan (:class:`memplan.cut.PartSpec`): its ops
(in any order among themselves), the state entering it (tensors on chip at fixed
offsets, with or without a DRAM copy) and the state required when it ends (tensors on
chip at given offsets, DRAM copies). The part becomes a problem of its own through
:meth:`memplan.ir.Graph.subgraph` (tensors made outside become inputs of the part);
each tensor's boundary state goes on its :class:`~memplan.solvers.ilp.model.TensorSpec`
and the CP-SAT model turns it into constraints on its first and last slot::

    part steps:    0    1   ...   n-1 | n (the cut after the part)
    entering t3   [offset fixed ───)store          first slot: start 0, offset fixed
    required t9          [produce ────|──)         covers step n at the required offset
    loaded t2                [load)   |            every load is charged

The objective is the bytes the part moves (loads and stores); the rest of the plan is
fixed, so a part plan that moves fewer bytes makes the joined plan move fewer. With one
part covering the whole graph (empty boundaries) this is the whole problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from memplan.cut import PartOutcome, PartSpec, Piece, PlanPart, leaving_state, part_traffic
from memplan.ir import OpId, Subgraph, TensorId, TensorKind
from memplan.plan import Arrive, Leave
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.ilp.model import (
    Hint,
    SlotValue,
    Structure,
    TensorBoundary,
    TensorSpec,
    op_windows,
)
from memplan.solvers.ilp.outcome import BackendStatus


def build_part(
    spec: PartSpec, order: Sequence[int], fixed_order: bool, placement: bool
) -> tuple[Structure, Subgraph]:
    """The structure of the part ``spec`` (ops numbered as in its subgraph).

    Args:
        spec: the part with its required leaving state.
        order: the part's ops (parent ids) in a topological order (fixed, or the hint's).
        fixed_order: keep ``order``.
        placement: model offsets (else only the bytes on chip per step are bounded).
    """
    if spec.leaving is None:
        raise ValueError("a part for the ilp needs a required leaving state")
    problem = spec.problem
    entering = {int(e.tensor): e for e in spec.entering.tensors}
    leaving = {int(e.tensor): e for e in spec.leaving.tensors}
    kept = [t for t, e in (*entering.items(), *leaving.items()) if e.resident]
    sub = problem.graph.subgraph(spec.ops, keep=kept)
    part = Problem(sub.graph, problem.accelerator, problem.scope)
    graph = sub.graph
    k = graph.num_ops
    if fixed_order:
        position = {int(o): i for i, o in enumerate(order)}
        windows = [(position[o], position[o]) for o in sub.parent_ops]
    else:
        windows = op_windows(part)
    sizes = part.aligned_sizes_bytes
    modelled = [
        t
        for t in graph.tensors
        if part.in_scope[t.id]
        and (graph.producer[t.id] is not None or graph.consumers[t.id] or t.id in _ids(sub, kept))
    ]
    unit = 0
    for t in modelled:
        unit = math.gcd(unit, sizes[t.id])
    if placement:  # offsets are multiples of the alignment: so is the unit
        for state in (entering, leaving):
            for entry in state.values():
                unit = math.gcd(unit, entry.offset or 0)
    unit = max(unit, 1) if modelled else problem.alignment_bytes
    specs = []
    for t in modelled:
        parent = int(sub.parent_tensors[t.id])
        enter, leave = entering.get(parent), leaving.get(parent)
        boundary = TensorBoundary(
            enter.offset // unit if enter is not None and enter.offset is not None else None,
            bool(enter.dram_copy) if enter is not None else t.kind is not TensorKind.ACTIVATION,
            leave.offset // unit if leave is not None and leave.offset is not None else None,
            bool(leave is not None and leave.dram_copy),
        )
        producer = graph.producer[t.id]
        consumers = tuple(graph.consumers[t.id])
        touching = ([producer] if producer is not None else []) + list(consumers)
        lo = min((windows[o][0] for o in touching), default=0)
        if boundary.enter_offset_units is not None:
            lo = 0
        if boundary.leave_offset_units is not None:
            hi = k + 1
        else:
            last = max((windows[o][1] + 1 for o in touching), default=1)
            hi = max(last, 1 if boundary.enter_offset_units is not None else last)
        activation = t.kind is TensorKind.ACTIVATION
        loads = len(consumers) + (1 if boundary.leave_offset_units is not None else 0)
        first = 1 if activation or boundary.enter_offset_units is not None else 0
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
                num_slots=max(first + loads, 1),
                boundary=boundary,
            )
        )
    edges = sorted({(p, o.id) for o in graph.ops for p in graph.predecessors(o.id)})
    struct = Structure(
        problem=part,
        n_steps=k,
        op_windows=tuple(windows),
        edges=tuple((OpId(p), OpId(c)) for p, c in edges),
        tensors=tuple(specs),
        unit_bytes=unit,
        capacity_units=problem.capacity_bytes // unit,
        fixed_order=tuple(OpId(o) for o in _local_order(sub, order)) if fixed_order else None,
        cut=True,
        placement=placement,
    )
    return struct, sub


def _ids(sub: Subgraph, parents: Sequence[int]) -> set[int]:
    return {int(i) for i in (sub.tensor_in_part(t) for t in parents) if i is not None}


def _local_order(sub: Subgraph, order: Sequence[int]) -> list[int]:
    local = [sub.op_in_part(o) for o in order]
    assert all(i is not None for i in local)
    return [int(i) for i in local if i is not None]


def part_hint(
    struct: Structure, sub: Subgraph, spec: PartSpec, order: Sequence[int], pieces: Sequence[Piece]
) -> Hint:
    """The slot values of a valid plan of the part (its ops in ``order``, its
    ``pieces``), as a search hint."""
    from memplan.plan import Plan

    start, k = spec.start, struct.n_steps
    by_tensor: dict[int, list[Piece]] = {}
    for piece in pieces:
        local = sub.tensor_in_part(piece.tensor)
        if local is not None:
            by_tensor.setdefault(int(local), []).append(piece)
    slots: dict[int, list[SlotValue]] = {}
    for tensor_spec in struct.tensors:
        values = []
        for piece in sorted(by_tensor.get(tensor_spec.tensor, []), key=lambda p: p.start):
            end = k + 1 if piece.leave is None else piece.end - start
            offset = piece.offset // struct.unit_bytes if struct.placement else 0
            values.append(SlotValue(piece.start - start, end, offset))
        slots[tensor_spec.tensor] = values
    local_order = tuple(OpId(o) for o in _local_order(sub, order))
    return Hint(Plan(local_order, ()), slots)


def pieces_of(
    struct: Structure,
    sub: Subgraph,
    spec: PartSpec,
    order: Sequence[int],
    slots: dict[int, list[SlotValue]],
) -> PlanPart:
    """The part plan of a solution: local slots back to pieces of the whole plan."""
    start, k = spec.start, struct.n_steps
    pieces = []
    for tensor_spec in struct.tensors:
        values = sorted(slots.get(tensor_spec.tensor, []), key=lambda v: v.start)
        boundary = tensor_spec.boundary
        assert boundary is not None
        stored = tensor_spec.stores() and (len(values) > 1 or boundary.leave_copy)
        parent = sub.parent_tensors[tensor_spec.tensor]
        for index, value in enumerate(values):
            first = index == 0
            if first and tensor_spec.enters:
                arrive: Arrive | None = None
            elif first and tensor_spec.activation:
                arrive = Arrive.PRODUCE
            else:
                arrive = Arrive.LOAD
            leave: Leave | None
            if value.end > k:
                leave = None
            elif first and stored:
                leave = Leave.STORE
            else:
                leave = Leave.DROP
            offset = value.offset_units * struct.unit_bytes if struct.placement else 0
            pieces.append(
                Piece(
                    TensorId(parent),
                    start + value.start,
                    start + min(value.end, k),
                    offset,
                    arrive,
                    leave,
                )
            )
    pieces.sort(key=lambda p: (p.tensor, p.start))
    parent_order = tuple(sub.parent_ops[o] for o in order)
    return PlanPart(start, parent_order, tuple(pieces), spec.entering, leaving_state(spec, pieces))


def solve_part_cpsat(
    spec: PartSpec,
    order: Sequence[int],
    *,
    fixed_order: bool,
    hint: Sequence[Piece] | None,
    budget: Budget,
    deterministic_s: float | None,
    workers: int,
    seed: int,
    placement: bool = True,
) -> PartOutcome:
    """Solve the part with the CP-SAT traffic model (see the module docstring)."""
    from memplan.solvers.ilp.cpsat import solve_traffic

    struct, sub = build_part(spec, order, fixed_order, placement)
    started = budget.elapsed_s()
    seed_hint = part_hint(struct, sub, spec, order, hint) if hint is not None else None
    outcome = solve_traffic(
        struct,
        budget,
        hint=seed_hint,
        workers=workers,
        seed=seed,
        verbose=False,
        deterministic_s=deterministic_s,
    )
    wall = budget.elapsed_s() - started
    status = outcome.status.value
    # The objective counts every load and store of the part, as part_traffic does.
    bound = outcome.bound
    if not outcome.status.has_solution or outcome.order is None or outcome.slots is None:
        return PartOutcome(None, None, False, status, wall, bound)
    part = pieces_of(struct, sub, spec, outcome.order, outcome.slots)
    traffic = part_traffic(spec.problem, part.pieces)
    optimal = outcome.status is BackendStatus.OPTIMAL
    return PartOutcome(part, traffic, optimal, status, wall, traffic if optimal else bound)
