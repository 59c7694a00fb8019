"""COSMA's time-indexed MILP, built with PuLP and solved with HiGHS or CBC.

Per op ``o`` and step ``t`` in its window, ``x[o,t] = 1`` when ``o`` runs at ``t``. Per
tensor ``a`` and step ``t`` in its lifetime window (COSMA's variables):

- ``C[a,t]``: created at ``t`` (= ``x[producer,t]``, so sibling outputs are created
  together);
- ``P[a,t]``: preserved on chip from ``t - 1``; ``S[a,t]``: spilled (stored) after
  ``t - 1``; ``R[a,t]``: retrieved (loaded) for ``t``;
- ``L[a,t]``: its address in units, pinned while preserved.

Resident at ``t`` means ``C + P + R = 1``. Rows: at most one of C/P/R per (a,t);
``P`` and ``S`` only after a step on chip (not both), and both 0 at the window's first
step; retrieving an activation needs a spill at or before that step; at most one spill
per tensor; every read has its tensor preserved or retrieved at the reader's step; one op
per step and one step per op (explicit rows); precedence in the aggregated form
``sum_{t' <= t} x[c,t'] <= sum_{t' < t} x[p,t']``; the capacity per step; big-M
non-overlap between tensors resident at the same step, with one order binary per pair
and step. Tensors exist only inside their windows, so they are forced out after them.

One deviation from COSMA's rows: COSMA puts ``S`` in the at-most-one row, which forbids
storing a tensor after ``t - 1`` and loading it again for ``t`` (a move to a new address
through DRAM). Plans may do that, and the CP-SAT model allows it, so ``S`` stays out of
the row here: otherwise the MILP's optimum and bound would be over fewer plans.

Sizes and addresses are in units (the GCD of aligned sizes) and costs in units of the
GCD of sizes, so the big-M constants stay small and integral. The objective has a
constant (minus the compulsory first load of every input and weight); PuLP does not pass
constants to HiGHS, so it is set as HiGHS's objective offset, and HiGHS's dual bound is a
bound on non-compulsory bytes. The MIP gap is set to 0, and the engine's own status is
read (PuLP reports "Optimal" for a timed-out incumbent).

Time: the model is built with deadline checks, and HiGHS's time limit is set to what
remains once the model has been handed over; a watcher cancels the run on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from memplan.ir import OpId
from memplan.solver import Budget
from memplan.solvers.ilp.model import SlotValue, Structure, TensorSpec
from memplan.solvers.ilp.outcome import BackendStatus, Outcome
from memplan.solvers.ilp.phases import (
    BuildTimeout,
    check_deadline,
    check_handover,
    engine_limit_s,
)


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence stdout at the file-descriptor level (highspy prints a banner there)."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class _Steps:
    """The op-step binaries ``x[o,t]`` (constants in fixed mode) and their prefix sums."""

    def __init__(self, pulp: Any, lp: Any, struct: Structure, deadline: Budget) -> None:
        self.struct = struct
        self.x: dict[tuple[int, int], Any] = {}
        n = struct.n_steps
        for o, (lo, hi) in enumerate(struct.op_windows):
            if lo == hi:
                self.x[(o, lo)] = 1
                continue
            for t in range(lo, hi + 1):
                self.x[(o, t)] = lp.add_variable(f"x_{o}_{t}", cat="Binary")
            lp += pulp.lpSum(self.x[(o, t)] for t in range(lo, hi + 1)) == 1, f"once_{o}"
        if struct.fixed_order is None:
            at_step: list[list[Any]] = [[] for _ in range(n)]
            for (_, t), var in self.x.items():
                at_step[t].append(var)
            for t in range(n):
                lp += pulp.lpSum(at_step[t]) == 1, f"one_op_at_{t}"
            for p, c in struct.edges:
                check_deadline(deadline)
                # Before c's window the row reads 0 <= ..., after p's window ... <= 1.
                for t in range(struct.op_windows[c][0], struct.op_windows[p][1] + 1):
                    lp += self.done(c, t) <= self.done(p, t - 1), f"prec_{p}_{c}_{t}"

    def at(self, op: int, t: int) -> Any:
        """``x[op, t]`` (0 outside the op's window)."""
        return self.x.get((op, t), 0)

    def done(self, op: int, t: int) -> Any:
        """1 when ``op`` runs at a step ``<= t``."""
        lo, hi = self.struct.op_windows[op]
        terms = [self.x[(op, s)] for s in range(lo, min(hi, t) + 1)]
        return sum(terms) if terms else 0

    def value(self, op: int) -> int:
        """The step of ``op`` in the solution."""
        lo, hi = self.struct.op_windows[op]
        return max(range(lo, hi + 1), key=lambda t: _val(self.x[(op, t)]))

    def order(self) -> tuple[OpId, ...]:
        """The ops sorted by their step in the solution."""
        return tuple(OpId(o) for o in sorted(range(self.struct.n_steps), key=self.value))


def _val(v: Any) -> float:
    if isinstance(v, int | float):
        return float(v)
    value = v.value()
    return 0.0 if value is None else float(value)


def _floor_bound(value: float) -> int:
    """The integer objective values at or above a float dual bound: its ceiling, less a
    relative tolerance so that round-off never lifts the bound past an optimum."""
    return max(0, math.ceil(value - 1e-6 * max(1.0, abs(value))))


# ---------------------------------------------------------------- engine runs
@dataclass(frozen=True, slots=True)
class _Engine:
    """Which MILP engine to run, and how."""

    name: str  # highs or cbc
    budget: Budget  # time limit and stop event
    verbose: bool  # print the engine's log
    threads: int  # engine threads
    seed: int  # engine random seed
    options: Mapping[str, Any]  # further options, by the engine's own names


@dataclass(frozen=True, slots=True)
class _Run:
    """What one engine run reports."""

    engine_status: str  # the engine's own status name
    status: BackendStatus  # in backend-neutral form
    dual_bound: float | None  # the engine's proven bound (objective offset included)


def _neutral(solved: bool, proven: bool, infeasible: bool) -> BackendStatus:
    if solved:
        return BackendStatus.OPTIMAL if proven else BackendStatus.FEASIBLE
    return BackendStatus.INFEASIBLE if infeasible else BackendStatus.UNKNOWN


def _run_cbc(pulp: Any, lp: Any, engine: _Engine) -> _Run:
    limit_s = engine_limit_s(engine.budget)
    solver = pulp.PULP_CBC_CMD(
        msg=engine.verbose,
        timeLimit=None if math.isinf(limit_s) else limit_s,
        gapRel=0.0,
        gapAbs=0.0,
        threads=engine.threads,
        options=[
            # CBC reads 0 as "no seed"; keep 1 .. 2**31 - 1.
            f"randomSeed {engine.seed % (2**31 - 2) + 1}",
            f"randomCbcSeed {engine.seed % (2**31 - 2) + 1}",
            *(f"{key} {value}" for key, value in engine.options.items()),
        ],
    )
    with _quiet(not engine.verbose):
        lp.solve(solver)
    status = _neutral(
        solved=lp.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible),
        proven=lp.sol_status == pulp.LpSolutionOptimal and lp.status == pulp.LpStatusOptimal,
        infeasible=lp.status == pulp.LpStatusInfeasible,
    )
    # PuLP reads no dual bound from CBC: a proven optimum is its own bound.
    bound = _val(lp.objective) if status is BackendStatus.OPTIMAL else None
    return _Run(pulp.LpStatus.get(lp.status, str(lp.status)), status, bound)


def _run_highs(pulp: Any, lp: Any, engine: _Engine) -> _Run:
    import highspy

    budget = engine.budget

    class BudgetedHiGHS(pulp.HiGHS):
        """pulp.HiGHS with the objective's constant, a time limit set after the model is
        handed over, and a run cancelled when the budget's stop event is set."""

        def buildSolverModel(self, lp_: Any) -> None:
            super().buildSolverModel(lp_)
            lp_.solverModel.changeObjectiveOffset(float(lp_.objective.constant))

        def findSolutionValues(self, lp_: Any) -> Any:
            try:
                return super().findSolutionValues(lp_)
            except KeyError:
                # A HiGHS status PuLP does not map (e.g. a node limit). The values are
                # already read, and the status is taken from HiGHS itself below.
                return pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound

        def callSolver(self, lp_: Any) -> None:
            # HiGHS keeps one thread pool per process, sized by the first run; a run with
            # another thread count fails unless the pool is reset.
            highspy.Highs.resetGlobalScheduler(True)
            limit_s = engine_limit_s(budget)
            if not math.isinf(limit_s):
                lp_.solverModel.setOptionValue("time_limit", limit_s)
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    if budget.stop_event.wait(0.05):
                        lp_.solverModel.cancelSolve()
                        return

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            try:
                super().callSolver(lp_)
            finally:
                done.set()
                watcher.join()

    solver = BudgetedHiGHS(
        msg=engine.verbose,
        gapRel=0.0,
        gapAbs=0.0,
        threads=engine.threads,
        random_seed=engine.seed,
        **engine.options,
    )
    with _quiet(not engine.verbose):
        lp.solve(solver)
    highs = lp.solverModel
    model_status = highs.getModelStatus()
    info = highs.getInfo()
    status = _neutral(
        solved=info.primal_solution_status == 2,  # kSolutionStatusFeasible
        proven=model_status == highspy.HighsModelStatus.kOptimal,
        infeasible=model_status == highspy.HighsModelStatus.kInfeasible,
    )
    bound = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None
    return _Run(highs.modelStatusToString(model_status), status, bound)


def _run(pulp: Any, lp: Any, engine: _Engine) -> tuple[_Run, dict[str, Any]]:
    """Solve with ``engine``; the run and its counters for ``stats``."""
    run = (_run_cbc if engine.name == "cbc" else _run_highs)(pulp, lp, engine)
    stats = {
        "milp_engine": engine.name,
        "engine_status": run.engine_status,
        "variables": lp.numVariables(),
        "constraints": lp.numConstraints(),
    }
    return run, stats


# ---------------------------------------------------------------- traffic model
@dataclass
class _TrafficModel:
    """A PuLP traffic model and the handles needed for extraction (filled in while the
    model is built)."""

    lp: Any  # pulp.LpProblem
    steps: _Steps  # op-step binaries
    cost_unit: int  # bytes per objective unit (GCD of the sizes)
    resident: dict[tuple[int, int], Any] = field(default_factory=dict)  # C + P + R
    preserved: dict[tuple[int, int], Any] = field(default_factory=dict)  # P
    retrieved: dict[tuple[int, int], Any] = field(default_factory=dict)  # R
    address: dict[tuple[int, int], Any] = field(default_factory=dict)  # L
    objective: list[Any] = field(default_factory=list)  # cost terms (and constants)


def _add_tensor(pulp: Any, tm: _TrafficModel, struct: Structure, spec: TensorSpec) -> None:
    """C/P/S/R/L of one tensor over its window, its reads, and its costs."""
    lp, steps, var = tm.lp, tm.steps, tm.lp.add_variable
    a = spec.tensor
    lo, hi = spec.window
    cap = struct.capacity_units
    weight = spec.size_bytes // tm.cost_unit
    spills: list[Any] = []
    for t in range(lo, hi):
        created = steps.at(spec.producer, t) if spec.producer is not None else 0
        r = var(f"R_{a}_{t}", cat="Binary")
        p = var(f"P_{a}_{t}", cat="Binary") if t > lo else 0  # P = S = 0 at the start
        s = var(f"S_{a}_{t}", cat="Binary") if t > lo and spec.activation else 0
        tm.retrieved[(a, t)], tm.preserved[(a, t)] = r, p
        tm.resident[(a, t)] = created + p + r
        lp += created + p + r <= 1, f"one_of_CPR_{a}_{t}"
        if t > lo:
            lp += p + s <= tm.resident[(a, t - 1)], f"after_resident_{a}_{t}"
        if spec.activation:
            spills.append(s)
            lp += r <= pulp.lpSum(spills), f"retrieve_after_spill_{a}_{t}"
        address = var(f"L_{a}_{t}", lowBound=0, upBound=max(cap - spec.units, 0), cat="Integer")
        tm.address[(a, t)] = address
        if t > lo:
            previous = tm.address[(a, t - 1)]
            lp += address - previous <= cap * (1 - p), f"pin_up_{a}_{t}"
            lp += previous - address <= cap * (1 - p), f"pin_down_{a}_{t}"
        tm.objective.append(weight * r)
        if spec.store_is_charged():
            tm.objective.append(weight * s)
    if spec.activation:
        lp += pulp.lpSum(spills) <= 1, f"spill_once_{a}"
    for o in spec.consumers:
        olo, ohi = struct.op_windows[o]
        for t in range(olo, ohi + 1):
            lp += (
                steps.at(o, t) <= tm.preserved[(a, t)] + tm.retrieved[(a, t)],
                f"read_{a}_{o}_{t}",
            )
    if not spec.activation:
        tm.objective.append(-weight)  # the first load is compulsory


def _add_step_rows(pulp: Any, tm: _TrafficModel, struct: Structure, t: int) -> None:
    """The capacity row and the pairwise non-overlap rows of step ``t``."""
    lp, cap = tm.lp, struct.capacity_units
    here = [s for s in struct.tensors if s.window[0] <= t < s.window[1]]
    lp += pulp.lpSum(s.units * tm.resident[(s.tensor, t)] for s in here) <= cap, f"capacity_{t}"
    for i, sa in enumerate(here):
        for sb in here[i + 1 :]:
            a, b = sa.tensor, sb.tensor
            z = lp.add_variable(f"z_{a}_{b}_{t}", cat="Binary")
            both = 2 - tm.resident[(a, t)] - tm.resident[(b, t)]
            ya, yb = tm.address[(a, t)], tm.address[(b, t)]
            lp += ya + sa.units <= yb + cap * (1 - z) + cap * both, f"below_{a}_{b}_{t}"
            lp += yb + sb.units <= ya + cap * z + cap * both, f"above_{a}_{b}_{t}"


def _build_traffic_model(pulp: Any, struct: Structure, deadline: Budget) -> _TrafficModel:
    """The traffic MILP; raises :class:`BuildTimeout` when ``deadline`` passes."""
    lp = pulp.LpProblem("cosma", pulp.LpMinimize)
    cost_unit = 0
    for spec in struct.tensors:
        cost_unit = math.gcd(cost_unit, spec.size_bytes)
    tm = _TrafficModel(lp, _Steps(pulp, lp, struct, deadline), max(cost_unit, 1))
    for spec in struct.tensors:
        check_deadline(deadline)
        _add_tensor(pulp, tm, struct, spec)
    for t in range(struct.n_steps):
        check_deadline(deadline)
        _add_step_rows(pulp, tm, struct, t)
    lp += pulp.lpSum(tm.objective)
    return tm


def _extract_slots(tm: _TrafficModel, struct: Structure) -> dict[int, list[SlotValue]]:
    """Per tensor, its maximal on-chip runs (a new run starts wherever P is 0)."""
    slots: dict[int, list[SlotValue]] = {}
    for spec in struct.tensors:
        a = spec.tensor
        lo, hi = spec.window
        values: list[SlotValue] = []
        start = None
        for t in range(lo, hi + 1):
            on = t < hi and _val(tm.resident[(a, t)]) > 0.5
            kept = on and t > lo and _val(tm.preserved[(a, t)]) > 0.5
            if start is not None and not kept:
                values.append(SlotValue(start, t, round(_val(tm.address[(a, start)]))))
                start = None
            if on and not kept:
                start = t
        slots[a] = values
    return slots


def solve_traffic_milp(
    struct: Structure,
    budget: Budget,
    *,
    engine: str,
    verbose: bool,
    threads: int,
    seed: int,
    engine_options: Mapping[str, Any] | None = None,
) -> Outcome:
    """Minimise non-compulsory traffic with the time-indexed MILP.

    Args:
        struct: the shared structure (windows, units).
        budget: time limit and stop event of the build and the search.
        engine: highs or cbc.
        verbose: print the engine's log.
        threads: engine threads.
        seed: engine random seed.
        engine_options: further engine options by the engine's own names (e.g. HiGHS's
            ``mip_max_nodes``), or None.

    Returns:
        The outcome; objective and bound in bytes (the bound from the engine's dual
        bound, HiGHS only). SKIPPED when the build ran out of time.
    """
    import pulp

    if struct.cut or not struct.placement:
        raise ValueError("the milp backend models whole problems only; parts use cpsat")
    try:
        tm = _build_traffic_model(pulp, struct, budget)
        check_handover(budget, tm.lp.numConstraints())
    except BuildTimeout:
        return Outcome.skipped("the milp model build ran out of time", out_of_time=True)
    call = _Engine(engine, budget, verbose, threads, seed, engine_options or {})
    run, stats = _run(pulp, tm.lp, call)
    bound = None if run.dual_bound is None else _floor_bound(run.dual_bound) * tm.cost_unit
    if not run.status.has_solution:
        return Outcome(run.status, bound=bound, stats=stats)
    value = round(_val(tm.lp.objective)) * tm.cost_unit
    slots = _extract_slots(tm, struct)
    return Outcome(run.status, tm.steps.order(), slots, value, bound, stats)


# ---------------------------------------------------------------- peak model
def solve_peak_milp(
    struct: Structure,
    budget: Budget,
    *,
    engine: str,
    upper_units: int,
    verbose: bool,
    threads: int,
    seed: int,
) -> Outcome:
    """Minimise the peak live units over orders with no spilling (COSMA's MPMF).

    The outcome's ``objective`` and ``bound`` are in address units; ``slots`` is None.
    """
    import pulp

    lp = pulp.LpProblem("cosma_mpmf", pulp.LpMinimize)
    try:
        steps = _Steps(pulp, lp, struct, budget)
        peak = _build_peak_rows(pulp, lp, steps, struct, upper_units, budget)
        check_handover(budget, lp.numConstraints())
    except BuildTimeout:
        return Outcome.skipped("the milp peak model build ran out of time", out_of_time=True)
    lp += peak
    run, stats = _run(pulp, lp, _Engine(engine, budget, verbose, threads, seed, {}))
    bound = None if run.dual_bound is None else _floor_bound(run.dual_bound)
    if not run.status.has_solution:
        return Outcome(run.status, bound=bound, stats=stats)
    return Outcome(run.status, steps.order(), None, round(_val(peak)), bound, stats)


def _build_peak_rows(
    pulp: Any, lp: Any, steps: _Steps, struct: Structure, upper_units: int, deadline: Budget
) -> Any:
    """The live indicators and the per-step peak rows; returns the peak variable."""
    lower = struct.problem.min_resident_bytes // struct.unit_bytes
    peak = lp.add_variable("peak", lowBound=lower, upBound=max(upper_units, lower))
    live: dict[tuple[int, int], Any] = {}
    for spec in struct.tensors:
        check_deadline(deadline)
        a = spec.tensor
        lo, hi = spec.window
        if spec.producer is not None:
            firsts = [spec.producer]
            lasts = list(spec.consumers) or [spec.producer]
        else:
            firsts = lasts = list(spec.consumers)
        for t in range(lo, hi):
            v = lp.add_variable(f"live_{a}_{t}", lowBound=0, upBound=1)
            live[(a, t)] = v
            for f in firsts:
                for last in lasts:
                    # On chip from the first touch until the last toucher has run.
                    lp += (
                        v >= steps.done(f, t) - steps.done(last, t - 1),
                        f"live_{a}_{f}_{last}_{t}",
                    )
    for t in range(struct.n_steps):
        here = [s for s in struct.tensors if s.window[0] <= t < s.window[1]]
        lp += pulp.lpSum(s.units * live[(s.tensor, t)] for s in here) <= peak, f"peak_{t}"
    return peak
