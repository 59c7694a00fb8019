"""One part of a plan as a CP-SAT model, under the boundary contract (PROBLEM.md section 8).

The part's ``k`` ops run at local steps ``0 .. k-1`` (global step = part start + local);
their order is free (or fixed). One more step, ``k``, is the *cut*: a stay that covers
step ``k`` is still on chip when the next part starts (an open piece)::

    local step:   0    1    2   ...  k-1 |  k (the cut)
    entering t3   [fixed offset ───)store |                 stays until it is stored
    produced t9        [produce ─────────|──)              open: required at offset y
    loaded  t2                [load ─)drop|

Per tensor: *slot 0* is its entering residency (start 0, offset fixed) or its produce
residency (starts when its producer runs); *load slots* are optional reloads, in time
order after slot 0. Slot 0 of an activation without a DRAM copy ends with a store when
any load follows, or when the leaving state needs a copy. All stays are rectangles
(steps x address units) in one ``NoOverlap2D``, with a redundant ``Cumulative``. The
objective is the part's DRAM traffic (loads and stores); the rest of the plan is fixed,
so a part plan that moves fewer bytes makes the whole plan move fewer.

Boundaries: the entering state is fixed (residents keep their offsets); the required
leaving state fixes which tensors cover the cut, at which offsets, and which need a
DRAM copy.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memplan.cut import PartSpec, Piece, PlanPart, leaving_state
from memplan.ir import OpId, TensorId, TensorKind
from memplan.plan import Arrive, Leave, Residency


@dataclass(frozen=True)
class PartOutcome:
    """What one part solve found."""

    part: PlanPart | None  # the best plan of the part, or None (none found in time)
    traffic_bytes: int | None  # loads + stores of its pieces (the open ends not counted)
    optimal: bool  # proven optimal for the part under its boundary
    status: str  # CP-SAT's status name
    wall_s: float  # CP-SAT's wall time


@dataclass
class _Slot:
    present: Any  # literal or constant 1
    start: Any  # local step of arrival (variable or constant)
    end: Any  # first local step off chip
    offset: Any  # address in units
    load: bool  # arrives by a load
    fixed_start: int | None  # known start step (entering slots: 0)
    length: Any  # end - start
    is_open: Any = None  # covers the cut (set once the cut constraints are built)


def _unit(spec: PartSpec, tensors: Sequence[int]) -> int:
    """Address unit: divides the alignment, every aligned size and every fixed offset."""
    problem = spec.problem
    unit = problem.alignment_bytes
    for t in tensors:
        unit = math.gcd(unit, problem.aligned_sizes_bytes[t])
    for state in (spec.entering, spec.leaving):
        if state is not None:
            for e in state.resident():
                unit = math.gcd(unit, e.offset or 0)
    return max(unit, 1)


def _unit_of_sizes(problem: Any, tensors: Sequence[int]) -> int:
    """Unit of the capacity sum without placement: divides every aligned size."""
    unit = 0
    for t in tensors:
        unit = math.gcd(unit, problem.aligned_sizes_bytes[t])
    return max(unit, 1)


def part_traffic(problem: Any, pieces: Sequence[Piece | Residency]) -> int:
    """Bytes loaded and stored by ``pieces`` (the traffic a part adds to the plan), or by
    the residencies of a whole plan."""
    sizes = problem.graph.tensors
    return sum(
        sizes[p.tensor].size_bytes
        for p in pieces
        for counted in (p.arrive is Arrive.LOAD, p.leave is Leave.STORE)
        if counted
    )


def solve_part(
    spec: PartSpec,
    order: Sequence[int],
    *,
    fixed_order: bool,
    hint: Sequence[Piece] | None,
    time_limit_s: float,
    deterministic_s: float | None,
    stop_event: threading.Event | None,
    workers: int = 1,
    seed: int = 0,
    placement: bool = True,
) -> PartOutcome:
    """Plan the part ``spec`` (its ops in ``order`` for fixing and hinting) with CP-SAT.

    The part needs a required leaving state (``spec.leaving``); a free end is not
    modelled here.

    Args:
        spec: the part and its boundaries.
        order: the part's ops in a topological order (fixed, or the search's hint).
        fixed_order: keep ``order``; otherwise the order is a variable.
        hint: pieces of a valid plan of the part (a full hint), or None.
        time_limit_s: wall-clock limit.
        deterministic_s: CP-SAT's deterministic work limit (reproducible), or None.
        stop_event: set to stop early (Ctrl-C).
        workers: CP-SAT threads.
        seed: CP-SAT seed.
        placement: choose offsets too (``NoOverlap2D``). Without, only the sum of
            aligned sizes on chip is bounded by the capacity (``Cumulative``): the
            pieces get offset 0 and the whole plan must be packed afterwards; boundary
            offsets are then ignored.
    """
    from ortools.sat.python import cp_model

    problem = spec.problem
    graph = problem.graph
    in_scope = problem.in_scope
    ops = [int(o) for o in order]
    k = len(ops)
    local = {o: i for i, o in enumerate(ops)}
    if spec.leaving is None:
        raise ValueError("solve_part needs a required leaving state")
    required = {int(e.tensor): e for e in spec.leaving.tensors}
    entering = {int(e.tensor): e for e in spec.entering.tensors}

    touched: dict[int, list[int]] = {}  # tensor -> indices of the part's ops reading it
    for i, o in enumerate(ops):
        for read in dict.fromkeys(graph.ops[o].inputs):
            if in_scope[read]:
                touched.setdefault(int(read), []).append(i)
        for made in graph.ops[o].outputs:
            if in_scope[made]:
                touched.setdefault(int(made), [])
    tensors = sorted(
        set(touched)
        | {e.tensor for e in spec.entering.resident()}
        | {e.tensor for e in spec.leaving.resident()}  # e.g. prefetched for a later op
    )
    hinted_loads: dict[int, int] = {}
    for piece in hint or ():
        if piece.arrive is Arrive.LOAD:
            hinted_loads[piece.tensor] = hinted_loads.get(piece.tensor, 0) + 1
    unit = _unit(spec, tensors) if placement else _unit_of_sizes(problem, tensors)
    cap = problem.capacity_bytes // unit

    model = cp_model.CpModel()
    # ------------------------------------------------------------- op steps
    steps: list[Any] = []
    if fixed_order:
        steps = [model.new_constant(i) for i in range(k)]
    else:
        ancestors = [0] * k
        for i, o in enumerate(ops):
            for p in graph.predecessors(OpId(o)):
                if p in local:
                    ancestors[i] |= ancestors[local[p]] | (1 << local[p])
        descendants = [0] * k
        for i in reversed(range(k)):
            for s in graph.successors(OpId(ops[i])):
                if s in local:
                    descendants[i] |= descendants[local[s]] | (1 << local[s])
        for i in range(k):
            lo, hi = ancestors[i].bit_count(), k - 1 - descendants[i].bit_count()
            steps.append(model.new_constant(lo) if lo == hi else model.new_int_var(lo, hi, f"T{i}"))
        model.add_all_different(steps)
        for i, o in enumerate(ops):
            for p in graph.predecessors(OpId(o)):
                if p in local:
                    model.add(steps[local[p]] + 1 <= steps[i])

    # ------------------------------------------------------------- slots
    time_ivs, addr_ivs, demands = [], [], []
    costs: list[tuple[Any, int]] = []
    slots_of: dict[int, list[_Slot]] = {}
    stores: dict[int, Any] = {}
    covers: dict[tuple[int, int, int], Any] = {}

    def add_slot(
        t: int,
        units: int,
        present: Any,
        start: Any,
        end: Any,
        offset: Any,
        load: bool,
        fixed_start: int | None,
        name: str,
    ) -> _Slot:
        length = model.new_int_var(1, k + 1, f"d{name}")
        if isinstance(present, int):
            time_iv = model.new_interval_var(start, length, end, f"it{name}")
        else:
            time_iv = model.new_optional_interval_var(start, length, end, present, f"it{name}")
        time_ivs.append(time_iv)
        if placement:
            if isinstance(present, int):
                addr_iv = model.new_fixed_size_interval_var(offset, units, f"ia{name}")
            else:
                addr_iv = model.new_optional_fixed_size_interval_var(
                    offset, units, present, f"ia{name}"
                )
            addr_ivs.append(addr_iv)
        demands.append(units)
        slot = _Slot(present, start, end, offset, load, fixed_start, length)
        slots_of.setdefault(t, []).append(slot)
        return slot

    for t in tensors:
        info = graph.tensors[t]
        units = problem.aligned_sizes_bytes[t] // unit
        size = info.size_bytes
        entry = entering.get(t)
        activation = info.kind is TensorKind.ACTIVATION
        copy_in = (entry.dram_copy if entry is not None else False) or not activation
        producer = graph.producer[t]
        reads = touched.get(t, [])
        need = required.get(t)
        # Slot 0: entering residency or produce residency.
        slot0: _Slot | None = None
        if entry is not None and entry.resident:
            assert entry.offset is not None
            end = model.new_int_var(1, k + 1, f"e{t}_0")
            slot0 = add_slot(
                t, units, 1, model.new_constant(0), end,
                model.new_constant(entry.offset // unit if placement else 0), False, 0,
                f"{t}_0",
            )  # fmt: skip
        elif producer is not None and producer in local:
            start = steps[local[producer]]
            end = model.new_int_var(1, k + 1, f"e{t}_0")
            y = model.new_int_var(0, max(cap - units, 0) if placement else 0, f"y{t}_0")
            slot0 = add_slot(t, units, 1, start, end, y, False, None, f"{t}_0")
        # Load slots: one per read (each must cover one), one more to come back for the cut.
        comes_back = need is not None and need.resident
        count = len(set(reads)) + (1 if comes_back else 0)
        count = max(count, hinted_loads.get(t, 0))  # the hint must fit the model
        if not copy_in and slot0 is None:
            count = 0  # no copy and not on chip: nothing to load (the part cannot read it)
        loads: list[_Slot] = []
        previous = slot0
        for j in range(count):
            present = model.new_bool_var(f"p{t}_{j + 1}")
            start = model.new_int_var(0, k - 1, f"s{t}_{j + 1}")
            end = model.new_int_var(1, k + 1, f"e{t}_{j + 1}")
            y = model.new_int_var(0, max(cap - units, 0) if placement else 0, f"y{t}_{j + 1}")
            slot = add_slot(t, units, present, start, end, y, True, None, f"{t}_{j + 1}")
            model.add(start == 0).only_enforce_if(~present)
            model.add(end == 1).only_enforce_if(~present)
            model.add(y == 0).only_enforce_if(~present)
            if loads:
                model.add_implication(present, loads[-1].present)
            if previous is not None:
                model.add(start >= previous.end).only_enforce_if(present)
            costs.append((present, size))
            loads.append(slot)
            previous = slot
        # Store at the end of slot 0 (activations without a DRAM copy only).
        stored: Any = 0
        if slot0 is not None and activation and not copy_in:
            stored = model.new_bool_var(f"st{t}")
            stores[t] = stored
            model.add(slot0.end <= k).only_enforce_if(stored)  # stored means closed
            for slot in loads:
                model.add_implication(slot.present, stored)
            costs.append((stored, size))
        # Reads: exactly one slot covers each reading step.
        all_slots = ([slot0] if slot0 is not None else []) + loads
        covering: list[list[Any]] = [[] for _ in all_slots]
        for i in sorted(set(reads)):
            options = []
            for j, slot in enumerate(all_slots):
                u = model.new_bool_var(f"u{t}_{i}_{j}")
                if slot.load:
                    model.add_implication(u, slot.present)
                model.add(slot.start <= steps[i]).only_enforce_if(u)
                model.add(slot.end >= steps[i] + 1).only_enforce_if(u)
                options.append(u)
                covering[j].append(u)
                covers[(t, i, j)] = u
            model.add_exactly_one(options)
        # The cut: which slots may cover step k.
        open_flags = []
        for j, slot in enumerate(all_slots):
            is_open = model.new_bool_var(f"o{t}_{j}")
            slot.is_open = is_open
            model.add(slot.end == k + 1).only_enforce_if(is_open)
            model.add(slot.end <= k).only_enforce_if(~is_open)
            if slot.load:
                model.add_implication(is_open, slot.present)
            open_flags.append(is_open)
            if slot.load:
                # A load must cover a read, or come back for the cut.
                model.add_bool_or([*covering[j], is_open]).only_enforce_if(slot.present)
        continues = sum(open_flags) if open_flags else 0
        if need is not None and need.resident:
            assert need.offset is not None
            model.add(continues == 1)
            for slot, is_open in zip(all_slots, open_flags, strict=True):
                if placement:
                    model.add(slot.offset == need.offset // unit).only_enforce_if(is_open)
        else:
            model.add(continues == 0)
        if need is not None and need.dram_copy and not copy_in:
            if isinstance(stored, int):
                return _no_model("a required DRAM copy cannot be made")
            model.add(stored == 1)

    if not time_ivs:
        return _no_model("the part touches no in-scope tensor")
    if placement:
        model.add_no_overlap_2d(time_ivs, addr_ivs)
    model.add_cumulative(time_ivs, demands, cap)
    objective = sum(var * coef for var, coef in costs) if costs else 0
    model.minimize(objective)

    if hint is not None:
        _add_hint(
            model, spec, ops, hint, steps, slots_of, stores, covers, touched, unit, k, placement
        )

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit_s)
    if deterministic_s is not None:
        solver.parameters.max_deterministic_time = max(0.01, deterministic_s)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.relative_gap_limit = 0.0
    solver.parameters.absolute_gap_limit = 0.0
    solver.parameters.catch_sigint_signal = False
    code = _run(solver, model, stop_event)
    status = solver.status_name(code)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return PartOutcome(None, None, False, status, solver.wall_time)
    # ------------------------------------------------------------- extract
    step_values = [solver.value(v) for v in steps[:k]]
    part_order = tuple(OpId(ops[i]) for i in sorted(range(k), key=lambda j: step_values[j]))
    start = spec.start
    pieces = []
    for tensor, slots in slots_of.items():
        stored_value = bool(solver.value(stores[tensor])) if tensor in stores else False
        for slot in slots:
            if slot.load and not solver.value(slot.present):
                continue
            first, stop = solver.value(slot.start), solver.value(slot.end)
            arrive: Arrive | None
            if slot.load:
                arrive = Arrive.LOAD
            elif slot.fixed_start == 0 and tensor in entering and entering[tensor].resident:
                arrive = None
            else:
                arrive = Arrive.PRODUCE
            leave: Leave | None
            if stop > k:
                leave = None
            elif not slot.load and stored_value:
                leave = Leave.STORE
            else:
                leave = Leave.DROP
            pieces.append(
                Piece(
                    TensorId(tensor),
                    start + first,
                    start + min(stop, k),
                    solver.value(slot.offset) * unit,
                    arrive,
                    leave,
                )
            )
    pieces.sort(key=lambda p: (p.tensor, p.start))
    part = PlanPart(start, part_order, tuple(pieces), spec.entering, leaving_state(spec, pieces))
    optimal = code == cp_model.OPTIMAL
    return PartOutcome(part, part_traffic(problem, pieces), optimal, status, solver.wall_time)


def _no_model(reason: str) -> PartOutcome:
    return PartOutcome(None, None, False, f"NO_MODEL: {reason}", 0.0)


def _run(solver: Any, model: Any, stop_event: threading.Event | None) -> Any:
    """Solve in a worker thread so that a stop request (Ctrl-C) ends the search."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["code"] = solver.solve(model)
        except BaseException as error:  # re-raised in the calling thread
            outcome["error"] = error

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    stopped = False
    while worker.is_alive():
        try:
            worker.join(0.05)
        except KeyboardInterrupt:
            if stop_event is not None:
                stop_event.set()
        if not stopped and stop_event is not None and stop_event.is_set():
            solver.stop_search()
            stopped = True
    if "error" in outcome:
        raise outcome["error"]
    return outcome["code"]


def _add_hint(
    model: Any,
    spec: PartSpec,
    ops: list[int],
    hint: Sequence[Piece],
    steps: list[Any],
    slots_of: dict[int, list[_Slot]],
    stores: dict[int, Any],
    covers: dict[tuple[int, int, int], Any],
    touched: dict[int, list[int]],
    unit: int,
    k: int,
    placement: bool,
) -> None:
    """Hint the values of a valid plan of the part (pieces in global steps)."""
    start = spec.start
    position = {o: i for i, o in enumerate(ops)}
    for i, var in enumerate(steps[:k]):
        if not isinstance(var, int):
            model.add_hint(var, position.get(int(ops[i]), i))
    by_tensor: dict[int, list[Piece]] = {}
    for p in hint:
        by_tensor.setdefault(p.tensor, []).append(p)
    for t, slots in slots_of.items():
        pieces = sorted(by_tensor.get(t, []), key=lambda p: p.start)
        values: list[tuple[int, int, int] | None] = [None] * len(slots)
        next_load = 1 if not slots[0].load else 0
        for p in pieces:
            if p.arrive is None or p.arrive is Arrive.PRODUCE:
                index = 0
            else:
                index, next_load = next_load, next_load + 1
            if index >= len(slots):
                break
            end = k + 1 if p.leave is None else p.end - start
            values[index] = (p.start - start, end, p.offset // unit if placement else 0)
        for slot, value in zip(slots, values, strict=True):
            if slot.load:
                model.add_hint(slot.present, value is not None)
            if value is None:
                if slot.load:
                    model.add_hint(slot.start, 0)
                    model.add_hint(slot.end, 1)
                    model.add_hint(slot.length, 1)
                    model.add_hint(slot.offset, 0)
                    model.add_hint(slot.is_open, False)
                continue
            if slot.load:
                model.add_hint(slot.start, value[0])
            model.add_hint(slot.end, value[1])
            model.add_hint(slot.length, value[1] - value[0])
            model.add_hint(slot.is_open, value[1] == k + 1)
            if not _is_constant(slot.offset):
                model.add_hint(slot.offset, value[2])
        if t in stores:
            model.add_hint(stores[t], any(p.leave is Leave.STORE for p in pieces))
        for i in sorted(set(touched.get(t, []))):
            if i >= k:
                continue
            for index, value in enumerate(values):
                var = covers.get((t, i, index))
                if var is not None:
                    model.add_hint(var, value is not None and value[0] <= i < value[1])


def _is_constant(var: Any) -> bool:
    proto = getattr(var, "proto", None)
    domain = getattr(proto, "domain", None)
    return domain is not None and len(domain) == 2 and domain[0] == domain[1]
