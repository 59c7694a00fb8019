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
the one store of a spilled non-output activation.

The peak model (MPMF, COSMA's variant giving M_P) drops slots and addresses: each
tensor is one interval from its producer (or first reader) to its last reader and the
objective is the capacity of one ``AddCumulative``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memplan.ir import OpId
from memplan.solver import Budget
from memplan.solvers.ilp.model import SlotValue, Structure


@dataclass
class CpOutcome:
    """What one CP-SAT run found."""

    status: str  # OPTIMAL, FEASIBLE, INFEASIBLE, MODEL_INVALID or UNKNOWN
    order: tuple[OpId, ...] | None  # the schedule of the best solution
    slots: dict[int, list[SlotValue]] | None  # per tensor, its slots in time order
    objective: int | None  # best objective value found
    bound: int | None  # the best proven bound on the objective
    wall_s: float  # solver wall time
    stats: dict[str, Any] = field(default_factory=dict)  # model size, branches, ...


def _params(
    solver: Any,
    budget: Budget,
    workers: int,
    seed: int,
    verbose: bool,
    deterministic_s: float | None = None,
) -> None:
    # CP-SAT's search depends on the value of its time limit, so the limit passed in is
    # the budget's total (the same on every run); the watcher in _run stops the search
    # when the budget's remaining time is up.
    total = budget.time_limit_s if budget.time_limit_s is not None else 1e7
    solver.parameters.max_time_in_seconds = max(0.01, min(total, 1e7))
    if deterministic_s is not None:
        # A work limit where reproducibility matters (warm starts, polishing).
        solver.parameters.max_deterministic_time = max(deterministic_s, 0.01)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    solver.parameters.log_search_progress = verbose
    solver.parameters.relative_gap_limit = 0.0
    solver.parameters.absolute_gap_limit = 0.0


def _run(model: Any, solver: Any, budget: Budget) -> Any:
    """Solve in a worker thread; stop the search when the budget runs out or on Ctrl-C.

    CP-SAT would otherwise catch SIGINT itself, and the caller could not tell an
    interrupted search from one out of time. Here the main thread waits in Python, so the
    CLI's SIGINT handler runs (it sets ``budget.stop_event``), and a bare Ctrl-C in a
    library call sets the stop event too: either way the best plan so far comes back.
    """
    solver.parameters.catch_sigint_signal = False
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["status"] = solver.solve(model)
        except BaseException as error:  # re-raised in the calling thread
            outcome["error"] = error

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    stopped = False
    while worker.is_alive():
        try:
            worker.join(0.05)
        except KeyboardInterrupt:
            budget.stop_event.set()
        if not stopped and budget.should_stop():
            solver.stop_search()
            stopped = True
    if "error" in outcome:
        raise outcome["error"]
    return outcome["status"]


def _step_vars(model: Any, struct: Structure) -> list[Any]:
    steps = []
    for o, (lo, hi) in enumerate(struct.op_windows):
        steps.append(model.new_constant(lo) if lo == hi else model.new_int_var(lo, hi, f"T{o}"))
    if struct.fixed_order is None:
        model.add_all_different(steps)
        for p, c in struct.edges:
            model.add(steps[p] + 1 <= steps[c])
    return steps


def solve_traffic(
    struct: Structure,
    budget: Budget,
    *,
    hint_order: Sequence[int] | None,
    hint_slots: dict[int, list[SlotValue]] | None,
    upper_bound: int | None,
    workers: int,
    seed: int,
    verbose: bool,
    deterministic_s: float | None = None,
    lower_bound: int | None = None,
) -> CpOutcome:
    """Minimise non-compulsory traffic; hints seed the search (a full hint is an incumbent).

    Args:
        struct: the shared structure (windows, slots, units).
        budget: time limit and stop event.
        hint_order: an order to hint, or None.
        hint_slots: slot values of a plan in the model's space, or None.
        upper_bound: only look for solutions with at most this objective, or None.
        lower_bound: a proven lower bound on the objective, or None.
        workers: CP-SAT worker threads.
        seed: CP-SAT random seed.
        verbose: print the CP-SAT search log.
        deterministic_s: a deterministic work limit (reproducible) used instead of the
            budget's wall time, or None.
    """
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    steps = _step_vars(model, struct)
    cap = struct.capacity_units
    time_ivs, addr_ivs, demands = [], [], []
    objective_terms = []
    slot_vars: dict[int, list[tuple[Any, Any, Any, Any]]] = {}
    choice_vars: dict[tuple[int, int, int], Any] = {}
    for spec in struct.tensors:
        a = spec.tensor
        lo, hi = spec.window
        span = hi - lo
        slots: list[tuple[Any, Any, Any, Any]] = []
        for k in range(spec.num_slots):
            forced = k == 0
            present = model.new_constant(1) if forced else model.new_bool_var(f"p{a}_{k}")
            if spec.activation and k == 0:
                start = steps[spec.producer]
            else:
                start = model.new_int_var(lo, hi - 1, f"s{a}_{k}")
            end = model.new_int_var(lo + 1, hi, f"e{a}_{k}")
            length = model.new_int_var(1, span, f"d{a}_{k}")
            y = model.new_int_var(0, max(cap - spec.units, 0), f"y{a}_{k}")
            if forced:
                time_iv = model.new_interval_var(start, length, end, f"it{a}_{k}")
                addr_iv = model.new_fixed_size_interval_var(y, spec.units, f"ia{a}_{k}")
            else:
                time_iv = model.new_optional_interval_var(start, length, end, present, f"it{a}_{k}")
                addr_iv = model.new_optional_fixed_size_interval_var(
                    y, spec.units, present, f"ia{a}_{k}"
                )
                # Absent slots take canonical values (no symmetric copies).
                model.add(start == lo).only_enforce_if(~present)
                model.add(end == lo + 1).only_enforce_if(~present)
                model.add(y == 0).only_enforce_if(~present)
                prev_present, _, prev_end, _ = slots[-1]
                if k > 1:
                    model.add_implication(present, prev_present)
                model.add(start >= prev_end).only_enforce_if(present)
                objective_terms.append((present, spec.size_bytes))
                if spec.store_is_charged() and k == 1:
                    objective_terms.append((present, spec.size_bytes))
            time_ivs.append(time_iv)
            addr_ivs.append(addr_iv)
            demands.append(spec.units)
            slots.append((present, start, end, y))
        slot_vars[a] = slots
        # Every read is covered by one slot.
        covering: list[list[Any]] = [[] for _ in range(spec.num_slots)]
        for o in spec.consumers:
            options = []
            for k in range(spec.num_slots):
                present, start, end, _ = slots[k]
                u = model.new_bool_var(f"u{a}_{o}_{k}")
                model.add_implication(u, present)
                model.add(start <= steps[o]).only_enforce_if(u)
                model.add(end >= steps[o] + 1).only_enforce_if(u)
                options.append(u)
                covering[k].append(u)
                choice_vars[(a, o, k)] = u
            model.add_exactly_one(options)
        # A load slot that covers no read is useless: forbid it.
        for k in range(1, spec.num_slots):
            model.add_bool_or(covering[k]).only_enforce_if(slots[k][0])
    model.add_no_overlap_2d(time_ivs, addr_ivs)
    model.add_cumulative(time_ivs, demands, cap)
    objective = sum(var * coef for var, coef in objective_terms)
    model.minimize(objective)
    if upper_bound is not None and objective_terms:
        model.add(objective <= upper_bound)
    if lower_bound is not None and objective_terms:
        model.add(objective >= lower_bound)

    # Hints: the order and the slots of a plan in the model's space.
    if hint_order is not None:
        hint_step = {int(o): t for t, o in enumerate(hint_order)}
        for o, var in enumerate(steps):
            if not struct.op_fixed(o):
                model.add_hint(var, hint_step[o])
    if hint_slots is not None:
        for spec in struct.tensors:
            values = hint_slots.get(spec.tensor, [])
            lo = spec.window[0]
            for k, (present, start, end, y) in enumerate(slot_vars[spec.tensor]):
                value = values[k] if k < len(values) else None
                if k > 0:
                    model.add_hint(present, value is not None)
                if not (spec.activation and k == 0):
                    model.add_hint(start, value.start if value else lo)
                model.add_hint(end, value.end if value else lo + 1)
                model.add_hint(y, value.offset_units if value else 0)
            if hint_order is not None:
                step_of = {int(o): t for t, o in enumerate(hint_order)}
                for o in spec.consumers:
                    t = step_of[o]
                    k_cover = next((k for k, v in enumerate(values) if v.start <= t < v.end), None)
                    for k in range(spec.num_slots):
                        model.add_hint(choice_vars[(spec.tensor, o, k)], k == k_cover)

    solver = cp_model.CpSolver()
    _params(solver, budget, workers, seed, verbose, deterministic_s)
    code = _run(model, solver, budget)
    status = solver.status_name(code)
    stats = {
        "cpsat_status": status,
        "variables": len(model.proto.variables),
        "constraints": len(model.proto.constraints),
        "branches": solver.num_branches,
        "conflicts": solver.num_conflicts,
    }
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return CpOutcome(status, None, None, None, None, solver.wall_time, stats)
    order_steps = [solver.value(v) for v in steps]
    order = tuple(OpId(o) for o in sorted(range(len(steps)), key=lambda o: order_steps[o]))
    slots_out: dict[int, list[SlotValue]] = {}
    for a, slots in slot_vars.items():
        slots_out[a] = [
            SlotValue(solver.value(s), solver.value(e), solver.value(y))
            for present, s, e, y in slots
            if solver.value(present)
        ]
    value = round(solver.objective_value) if objective_terms else 0
    bound = round(solver.best_objective_bound) if objective_terms else 0
    return CpOutcome(status, order, slots_out, value, bound, solver.wall_time, stats)


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
) -> CpOutcome:
    """Minimise the peak live units over orders, with no spilling (MPMF).

    The outcome's ``objective`` and ``bound`` are in address units; ``slots`` is None.
    """
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    steps = _step_vars(model, struct)
    intervals, demands = [], []
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
    peak = model.new_int_var(lower_bound_units, max(upper_bound_units, lower_bound_units), "peak")
    model.add_cumulative(intervals, demands, peak)
    model.minimize(peak)
    if hint_order is not None:
        step_of = {int(o): t for t, o in enumerate(hint_order)}
        for o, var in enumerate(steps):
            if not struct.op_fixed(o):
                model.add_hint(var, step_of[o])
        model.add_hint(peak, upper_bound_units)
    solver = cp_model.CpSolver()
    _params(solver, budget, workers, seed, verbose)
    code = _run(model, solver, budget)
    status = solver.status_name(code)
    stats = {
        "cpsat_status": status,
        "variables": len(model.proto.variables),
        "constraints": len(model.proto.constraints),
        "branches": solver.num_branches,
    }
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        bound = round(solver.best_objective_bound) if code != cp_model.INFEASIBLE else None
        return CpOutcome(status, None, None, None, bound, solver.wall_time, stats)
    order_steps = [solver.value(v) for v in steps]
    order = tuple(OpId(o) for o in sorted(range(len(steps)), key=lambda o: order_steps[o]))
    return CpOutcome(
        status,
        order,
        None,
        round(solver.objective_value),
        round(solver.best_objective_bound),
        solver.wall_time,
        stats,
    )
