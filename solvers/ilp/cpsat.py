"""The COSMA problem in OR-Tools CP-SAT, without big-M.

Variables (free mode; in fixed mode the step variables are constants):

- ``T[o]`` in ``[asap, alap]``: the step of op ``o``; all different (one op per step),
  ``T[p] < T[c]`` along every edge.
- per tensor slot ``k``: an optional time interval ``[s, e)`` inside the tensor's
  lifetime window and an optional address interval ``[y, y + units)`` below the
  capacity, present together; slot ``k`` present implies slot ``k - 1`` present and
  ``e[k - 1] <= s[k]`` (symmetry breaking: slots are used in time order); the produce
  slot of an activation is always present and starts at ``T[producer]``.
- per (tensor, reader) a choice of the slot that covers the read: ``s[k] <= T[o] < e[k]``.

All rectangles (time x address) go into one ``AddNoOverlap2D``; a redundant
``AddCumulative`` over the time intervals (demand = size) helps propagation. The
objective counts the non-compulsory bytes: each load beyond the compulsory one, and
the one store of a spilled non-output activation. It has no constant term, so CP-SAT's
bound is a bound on non-compulsory bytes as it stands.

The peak model (MPMF, COSMA's variant giving M_P) drops slots and addresses: each
tensor is one interval from its producer (or first reader) to its last reader and the
objective is the capacity of one ``AddCumulative``.

Time: the engine's wall limit is the budget's remaining time when the search starts,
so presolve stops in time as well; a watcher thread also stops the search on Ctrl-C.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from memplan.ir import OpId
from memplan.solver import Budget
from memplan.solvers.ilp.model import Hint, SlotValue, Structure, TensorSpec
from memplan.solvers.ilp.outcome import BackendStatus, Outcome
from memplan.solvers.ilp.phases import (
    ABANDON_AFTER_S,
    BuildTimeout,
    check_deadline,
    engine_limit_s,
)


class _Slot(NamedTuple):
    """The variables of one slot."""

    present: Any  # bool var (constant 1 for the first slot)
    start: Any  # first step on chip
    end: Any  # first step off chip again
    length: Any  # end - start, in steps
    offset: Any  # address in units


@dataclass
class _TrafficModel:
    """A CP-SAT traffic model and the handles needed for hints and extraction (filled in
    while the model is built)."""

    model: Any  # cp_model.CpModel
    steps: list[Any]  # per op, its step (variable or constant)
    slots: dict[int, list[_Slot]] = field(default_factory=dict)  # per tensor, in time order
    cover: dict[tuple[int, int, int], Any] = field(default_factory=dict)  # (tensor, op, slot)
    cost_terms: list[tuple[Any, int]] = field(default_factory=list)  # (bool var, bytes)
    time_intervals: list[Any] = field(default_factory=list)  # one per slot
    address_intervals: list[Any] = field(default_factory=list)  # one per slot
    demands: list[int] = field(default_factory=list)  # units per slot
    stores: dict[int, Any] = field(default_factory=dict)  # part tensor -> its store literal
    opens: dict[int, list[Any]] = field(default_factory=dict)  # part tensor -> covers the cut?


# ---------------------------------------------------------------- engine runs
def _status(code: Any) -> BackendStatus:
    from ortools.sat.python import cp_model

    statuses = {
        cp_model.OPTIMAL: BackendStatus.OPTIMAL,
        cp_model.FEASIBLE: BackendStatus.FEASIBLE,
        cp_model.INFEASIBLE: BackendStatus.INFEASIBLE,
        cp_model.UNKNOWN: BackendStatus.UNKNOWN,
    }
    return statuses[code]


def _params(
    solver: Any,
    budget: Budget,
    workers: int,
    seed: int,
    verbose: bool,
    deterministic_s: float | None = None,
) -> None:
    solver.parameters.max_time_in_seconds = min(engine_limit_s(budget), 1e7)
    if deterministic_s is not None:
        # A work limit where reproducibility matters (warm starts, polishing).
        solver.parameters.max_deterministic_time = max(deterministic_s, 0.01)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.log_search_progress = verbose
    solver.parameters.relative_gap_limit = 0.0
    solver.parameters.absolute_gap_limit = 0.0


#: Seconds between two progress reports of a running search.
PROGRESS_EVERY_S = 0.5

#: Receives (objective, bound) of a running search, both in bytes (the bound may be None).
SearchProgress = Callable[[int, int | None], None]


def _progress_callback(stop_at_objective: int = 0) -> Any:
    """A CP-SAT solution callback that remembers the latest objective and bound, and
    stops the search at a solution of at most ``stop_at_objective`` (a bound over all
    plans: nothing better exists; 0 for none)."""
    from ortools.sat.python import cp_model

    class Latest(cp_model.CpSolverSolutionCallback):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot: tuple[int, int] | None = None  # (objective, bound), bytes

        def on_solution_callback(self) -> None:
            self.snapshot = (round(self.objective_value), round(self.best_objective_bound))
            if self.snapshot[0] <= stop_at_objective:
                self.stop_search()

    return Latest()


def _stop_before_abort(solver: Any, finished: threading.Event) -> None:
    """Stop the search and give it ABANDON_AFTER_S to end: a process that exits while
    CP-SAT's C++ threads still run is killed by ``std::terminate`` (exit -6)."""
    solver.stop_search()
    deadline = time.monotonic() + ABANDON_AFTER_S
    while not finished.is_set() and time.monotonic() < deadline:
        try:
            finished.wait(0.05)
        except KeyboardInterrupt:  # more Ctrl-C: the abort is already under way
            continue


def run_search(
    model: Any,
    solver: Any,
    budget: Budget,
    progress: SearchProgress | None = None,
    stop_at_objective: int = 0,
) -> Any:
    """Solve in a worker thread; stop the search when the budget runs out, on Ctrl-C, or
    at a solution of at most ``stop_at_objective`` bytes (0: never).

    CP-SAT would otherwise catch SIGINT itself, and the caller could not tell an
    interrupted search from one out of time. Here the main thread waits in Python, so the
    CLI's SIGINT handler runs (it sets ``budget.stop_event``), and a bare Ctrl-C in a
    library call sets the stop event too: either way the best plan so far comes back.

    Some CP-SAT steps on large models answer neither the time limit nor the stop request
    for minutes (measured: 80 s past a 60 s budget on a 1,231-op graph); a search still
    running ABANDON_AFTER_S after the budget's end is left to finish in its daemon thread.

    Returns:
        CP-SAT's status code, or None for an abandoned search (nothing can be read).

    Raises:
        RuntimeError: CP-SAT rejected the model (a bug in the model builder).
    """
    solver.parameters.catch_sigint_signal = False
    outcome: dict[str, Any] = {}

    wanted = progress is not None or stop_at_objective > 0
    latest = _progress_callback(stop_at_objective) if wanted else None

    def work() -> None:
        try:
            outcome["status"] = (
                solver.solve(model) if latest is None else solver.solve(model, latest)
            )
        except BaseException as error:  # re-raised in the calling thread
            outcome["error"] = error

    finished = threading.Event()

    def run_and_signal() -> None:
        try:
            work()
        finally:
            finished.set()

    # Wait on an Event, not on Thread.join: a KeyboardInterrupt inside join() can mark a
    # thread that is still running as stopped (CPython 3.11), so is_alive() would lie.
    threading.Thread(target=run_and_signal, daemon=True).start()
    stopped_at = None
    shown, next_report = None, time.monotonic() + PROGRESS_EVERY_S
    while not finished.is_set():
        try:
            finished.wait(0.05)
        except KeyboardInterrupt:
            if budget.stop_event.is_set():  # a second Ctrl-C aborts
                _stop_before_abort(solver, finished)
                raise
            budget.stop_event.set()
        if latest is not None and time.monotonic() >= next_report:
            next_report = time.monotonic() + PROGRESS_EVERY_S
            if progress is not None and latest.snapshot not in (None, shown):
                shown = latest.snapshot
                assert shown is not None
                progress(*shown)
        if stopped_at is None and budget.should_stop():
            solver.stop_search()
            stopped_at = time.monotonic()
        late = stopped_at is not None and time.monotonic() - stopped_at > ABANDON_AFTER_S
        if late and not finished.is_set():
            return None
    if "error" in outcome:
        raise outcome["error"]
    from ortools.sat.python import cp_model

    if outcome["status"] == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the ilp model: {model.validate()}")
    return outcome["status"]


_ABANDONED = {"cpsat_status": "ABANDONED (still running after its time limit)"}


def _counters(model: Any, solver: Any, code: Any) -> dict[str, Any]:
    return {
        "cpsat_status": solver.status_name(code),
        "variables": len(model.proto.variables),
        "constraints": len(model.proto.constraints),
        "branches": solver.num_branches,
        "conflicts": solver.num_conflicts,
    }


def _bound_without_solution(solver: Any, status: BackendStatus) -> int | None:
    """CP-SAT's proven bound when the search found no solution (None if it has none)."""
    bound = solver.best_objective_bound
    if status is not BackendStatus.UNKNOWN or not math.isfinite(bound):
        return None
    return max(0, math.ceil(bound - 1e-9))


def _step_vars(model: Any, struct: Structure) -> list[Any]:
    steps = []
    for o, (lo, hi) in enumerate(struct.op_windows):
        steps.append(model.new_constant(lo) if lo == hi else model.new_int_var(lo, hi, f"T{o}"))
    if struct.fixed_order is None:
        model.add_all_different(steps)
        for p, c in struct.edges:
            model.add(steps[p] + 1 <= steps[c])
    return steps


def _order_of(solver: Any, steps: Sequence[Any]) -> tuple[OpId, ...]:
    at = [solver.value(v) for v in steps]
    return tuple(OpId(o) for o in sorted(range(len(steps)), key=lambda o: at[o]))


# ---------------------------------------------------------------- traffic model
def _add_tensor(tm: _TrafficModel, struct: Structure, spec: TensorSpec) -> None:
    """The slots of one tensor, the choice of a slot per read, and their costs.

    With a boundary (a part, :class:`~memplan.solvers.ilp.model.TensorBoundary`): an
    entering tensor's first slot starts at step 0 at its offset; the first slot's store
    is a literal of its own (forced by any later load and by a required DRAM copy); a
    tensor required across the cut has exactly one slot covering step ``n`` at the
    required offset, and no other tensor covers it.
    """
    model, a = tm.model, spec.tensor
    lo, hi = spec.window
    cap = struct.capacity_units
    n = struct.n_steps
    slots: list[_Slot] = []
    for k in range(spec.num_slots):
        first = k == 0
        present = model.new_constant(1) if first else model.new_bool_var(f"p{a}_{k}")
        if first and spec.enters:
            start = model.new_constant(0)
        elif spec.activation and first:
            start = tm.steps[spec.producer]
        else:
            start = model.new_int_var(lo, min(hi, n) - 1, f"s{a}_{k}")  # starts inside
        end = model.new_int_var(lo + 1, hi, f"e{a}_{k}")
        length = model.new_int_var(1, hi - lo, f"d{a}_{k}")
        if first and spec.enters:
            assert spec.boundary is not None and spec.boundary.enter_offset_units is not None
            y = model.new_constant(spec.boundary.enter_offset_units if struct.placement else 0)
        else:
            y = model.new_int_var(
                0, max(cap - spec.units, 0) if struct.placement else 0, f"y{a}_{k}"
            )
        if first:
            time_iv = model.new_interval_var(start, length, end, f"it{a}_{k}")
            addr_iv = model.new_fixed_size_interval_var(y, spec.units, f"ia{a}_{k}")
            if not spec.activation and spec.first_load_charged():
                tm.cost_terms.append((present, spec.size_bytes))
        else:
            time_iv = model.new_optional_interval_var(start, length, end, present, f"it{a}_{k}")
            addr_iv = model.new_optional_fixed_size_interval_var(
                y, spec.units, present, f"ia{a}_{k}"
            )
            # Absent slots take canonical values (no symmetric copies).
            model.add(start == lo).only_enforce_if(~present)
            model.add(end == lo + 1).only_enforce_if(~present)
            model.add(y == 0).only_enforce_if(~present)
            previous = slots[-1]
            if k > 1:
                model.add_implication(present, previous.present)
            model.add(start >= previous.end).only_enforce_if(present)
            tm.cost_terms.append((present, spec.size_bytes))
            if spec.boundary is None and spec.store_is_charged() and k == 1:
                tm.cost_terms.append((present, spec.size_bytes))
        tm.time_intervals.append(time_iv)
        tm.address_intervals.append(addr_iv)
        tm.demands.append(spec.units)
        slots.append(_Slot(present, start, end, length, y))
    tm.slots[a] = slots
    # Every read is covered by one slot; a load slot that covers no read is useless.
    covering: list[list[Any]] = [[] for _ in range(spec.num_slots)]
    for o in spec.consumers:
        options = []
        for k, slot in enumerate(slots):
            u = model.new_bool_var(f"u{a}_{o}_{k}")
            model.add_implication(u, slot.present)
            model.add(slot.start <= tm.steps[o]).only_enforce_if(u)
            model.add(slot.end >= tm.steps[o] + 1).only_enforce_if(u)
            options.append(u)
            covering[k].append(u)
            tm.cover[(a, o, k)] = u
        model.add_exactly_one(options)
    if spec.boundary is not None:
        _add_boundary(tm, struct, spec, covering)
        return
    for k in range(1, spec.num_slots):
        model.add_bool_or(covering[k]).only_enforce_if(slots[k].present)


def _add_boundary(
    tm: _TrafficModel, struct: Structure, spec: TensorSpec, covering: list[list[Any]]
) -> None:
    """A part tensor's store literal and its slots at the cut (see :func:`_add_tensor`)."""
    model, a, n = tm.model, spec.tensor, struct.n_steps
    boundary = spec.boundary
    assert boundary is not None and struct.cut
    slots = tm.slots[a]
    opens = []
    for k, slot in enumerate(slots):
        if spec.window[1] <= n:
            is_open: Any = None  # cannot reach the cut
        else:
            is_open = model.new_bool_var(f"o{a}_{k}")
            model.add(slot.end == n + 1).only_enforce_if(is_open)
            model.add(slot.end <= n).only_enforce_if(~is_open)
            model.add_implication(is_open, slot.present)
            if boundary.leave_offset_units is not None and struct.placement:
                model.add(slot.offset == boundary.leave_offset_units).only_enforce_if(is_open)
        opens.append(is_open)
        if k > 0:  # a load covers a read, or comes back for the cut
            reasons = [*covering[k], *([is_open] if is_open is not None else [])]
            model.add_bool_or(reasons).only_enforce_if(slot.present)
    tm.opens[a] = opens
    if boundary.leave_offset_units is not None:
        model.add_exactly_one([o for o in opens if o is not None])
    if spec.stores():
        stored = model.new_bool_var(f"st{a}")
        tm.stores[a] = stored
        if opens[0] is not None:
            model.add_implication(stored, ~opens[0])  # stored when it ends, inside the part
        for slot in slots[1:]:
            model.add_implication(slot.present, stored)  # a reload needs the copy
        if boundary.leave_copy:
            model.add(stored == 1)
        tm.cost_terms.append((stored, spec.size_bytes))


def _build_traffic_model(struct: Structure, deadline: Budget) -> _TrafficModel:
    """The traffic model; raises :class:`BuildTimeout` when ``deadline`` passes."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    tm = _TrafficModel(model, _step_vars(model, struct))
    for spec in struct.tensors:
        check_deadline(deadline)
        _add_tensor(tm, struct, spec)
    if struct.placement:
        model.add_no_overlap_2d(tm.time_intervals, tm.address_intervals)
    model.add_cumulative(tm.time_intervals, tm.demands, struct.capacity_units)
    model.minimize(sum(var * cost for var, cost in tm.cost_terms))
    return tm


def _add_hints(tm: _TrafficModel, struct: Structure, hint: Hint) -> None:
    """Hint the order, the slots and the read covers of a plan in the model's space."""
    step_of = {int(o): t for t, o in enumerate(hint.plan.order)}
    for o, var in enumerate(tm.steps):
        if not struct.op_fixed(o):
            tm.model.add_hint(var, step_of[o])
    for spec in struct.tensors:
        values = hint.slots.get(spec.tensor, [])
        lo = spec.window[0]
        for k, slot in enumerate(tm.slots[spec.tensor]):
            value = values[k] if k < len(values) else None
            if k > 0:
                tm.model.add_hint(slot.present, value is not None)
            start, end = (value.start, value.end) if value else (lo, lo + 1)
            fixed_first = k == 0 and (spec.activation or spec.enters)  # start is no variable
            if not fixed_first:
                tm.model.add_hint(slot.start, start)
            tm.model.add_hint(slot.end, end)
            # A hint that misses variables makes CP-SAT complete it first, which on large
            # models ignored the time limit for minutes: hint every variable (constants,
            # such as an entering slot's offset, cannot be hinted twice).
            tm.model.add_hint(slot.length, end - start)
            if not (k == 0 and spec.enters):
                tm.model.add_hint(slot.offset, value.offset_units if value else 0)
        for o in spec.consumers:
            t = step_of[o]
            covering = next((k for k, v in enumerate(values) if v.start <= t < v.end), None)
            for k in range(spec.num_slots):
                tm.model.add_hint(tm.cover[(spec.tensor, o, k)], k == covering)
        for k, is_open in enumerate(tm.opens.get(spec.tensor, [])):
            if is_open is not None:
                tm.model.add_hint(is_open, k < len(values) and values[k].end > struct.n_steps)
        if spec.tensor in tm.stores:
            assert spec.boundary is not None
            stored = len(values) > 1 or spec.boundary.leave_copy
            tm.model.add_hint(tm.stores[spec.tensor], stored)


def _extract_slots(tm: _TrafficModel, solver: Any) -> dict[int, list[SlotValue]]:
    return {
        a: [
            SlotValue(solver.value(s.start), solver.value(s.end), solver.value(s.offset))
            for s in slots
            if solver.value(s.present)
        ]
        for a, slots in tm.slots.items()
    }


def solve_traffic(
    struct: Structure,
    budget: Budget,
    *,
    hint: Hint | None,
    workers: int,
    seed: int,
    verbose: bool,
    deterministic_s: float | None = None,
    pin_objective: int | None = None,
    objective_floor: int = 0,
    progress: SearchProgress | None = None,
) -> Outcome:
    """Minimise non-compulsory traffic; a hint (a full plan) seeds the search.

    Args:
        struct: the shared structure (windows, slots, units).
        budget: time limit and stop event of the build and the search.
        hint: a plan in the model's space with its slot values, or None.
        workers: CP-SAT worker threads.
        seed: CP-SAT random seed.
        verbose: print the CP-SAT search log.
        deterministic_s: a deterministic work limit (reproducible) on top of the wall
            limit, or None.
        pin_objective: only look for solutions of exactly this objective (re-finding a
            proven optimum), or None.
        objective_floor: a lower bound over all plans (so over the model's too): the
            search stops at a solution that meets it; 0 for none. (As a constraint on the
            objective it slowed the proof of the vit MR optimum from 28 s to 45 s.)
        progress: called with (objective, bound) in bytes as the search improves.

    Returns:
        The outcome; objective and bound in bytes. SKIPPED when the build ran out of time.
    """
    from ortools.sat.python import cp_model

    try:
        tm = _build_traffic_model(struct, budget)
    except BuildTimeout:
        return Outcome.skipped("the cpsat model build ran out of time", out_of_time=True)
    if pin_objective is not None and tm.cost_terms:
        tm.model.add(sum(var * cost for var, cost in tm.cost_terms) == pin_objective)
    if hint is not None:
        _add_hints(tm, struct, hint)
    solver = cp_model.CpSolver()
    _params(solver, budget, workers, seed, verbose, deterministic_s)
    code = run_search(tm.model, solver, budget, progress, stop_at_objective=objective_floor)
    if code is None:
        return Outcome(BackendStatus.UNKNOWN, stats=dict(_ABANDONED))
    status, stats = _status(code), _counters(tm.model, solver, code)
    if not status.has_solution:
        return Outcome(status, bound=_bound_without_solution(solver, status), stats=stats)
    # Without cost terms CP-SAT reports no objective: every plan moves 0 bytes.
    value = round(solver.objective_value) if tm.cost_terms else 0
    bound = round(solver.best_objective_bound) if tm.cost_terms else 0
    return Outcome(
        status, _order_of(solver, tm.steps), _extract_slots(tm, solver), value, bound, stats
    )


# ---------------------------------------------------------------- peak model
def _build_peak_model(
    struct: Structure,
    hint_order: Sequence[int] | None,
    lower_bound_units: int,
    upper_bound_units: int,
) -> tuple[Any, list[Any]]:
    """The peak model and its step variables, hinted with ``hint_order`` (whose peak is
    ``upper_bound_units``) when given."""
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    steps = _step_vars(model, struct)
    intervals, demands = [], []
    lives: list[tuple[TensorSpec, Any, Any, Any]] = []  # spec, start, end, length
    for spec in struct.tensors:
        a = spec.tensor
        lo, hi = spec.window
        if spec.producer is not None:
            start = steps[spec.producer]
        else:
            start = model.new_int_var(lo, hi - 1, f"s{a}")
            model.add_min_equality(start, [steps[o] for o in spec.consumers])
        end = model.new_int_var(lo + 1, hi, f"e{a}")
        ends = [steps[o] + 1 for o in spec.consumers]
        if spec.producer is not None:
            ends.append(steps[spec.producer] + 1)
        model.add_max_equality(end, ends)
        length = model.new_int_var(1, hi - lo, f"d{a}")
        intervals.append(model.new_interval_var(start, length, end, f"i{a}"))
        demands.append(spec.units)
        lives.append((spec, start, end, length))
    peak = model.new_int_var(lower_bound_units, max(upper_bound_units, lower_bound_units), "peak")
    model.add_cumulative(intervals, demands, peak)
    model.minimize(peak)
    if hint_order is not None:
        # Every variable (see _add_hints); ``upper_bound_units`` is the order's peak.
        step_of = {int(o): t for t, o in enumerate(hint_order)}
        for o, var in enumerate(steps):
            if not struct.op_fixed(o):
                model.add_hint(var, step_of[o])
        for spec, start, end, length in lives:
            touching = [step_of[o] for o in spec.consumers]
            if spec.producer is not None:
                touching.append(step_of[spec.producer])
            else:
                model.add_hint(start, min(touching))
            model.add_hint(end, max(touching) + 1)
            model.add_hint(length, max(touching) + 1 - min(touching))
        model.add_hint(peak, upper_bound_units)
    return model, steps


def solve_peak(
    struct: Structure,
    budget: Budget,
    *,
    hint_order: Sequence[int] | None,
    lower_bound_units: int,
    upper_bound_units: int,
    workers: int,
    seed: int,
    verbose: bool,
) -> Outcome:
    """Minimise the peak live units over orders, with no spilling (MPMF).

    The outcome's ``objective`` and ``bound`` are in address units; ``slots`` is None.
    """
    from ortools.sat.python import cp_model

    model, steps = _build_peak_model(struct, hint_order, lower_bound_units, upper_bound_units)
    solver = cp_model.CpSolver()
    _params(solver, budget, workers, seed, verbose)
    code = run_search(model, solver, budget)
    if code is None:
        return Outcome(BackendStatus.UNKNOWN, stats=dict(_ABANDONED))
    status, stats = _status(code), _counters(model, solver, code)
    if not status.has_solution:
        return Outcome(status, bound=_bound_without_solution(solver, status), stats=stats)
    return Outcome(
        status,
        _order_of(solver, steps),
        None,
        round(solver.objective_value),
        round(solver.best_objective_bound),
        stats,
    )
