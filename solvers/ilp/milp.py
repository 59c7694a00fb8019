"""COSMA's time-indexed MILP, built with PuLP and solved with HiGHS or CBC.

Per op ``o`` and step ``t`` in its window, ``x[o,t] = 1`` when ``o`` runs at ``t``. Per
tensor ``a`` and step ``t`` in its lifetime window (COSMA's variables):

- ``C[a,t]``: created at ``t`` (= ``x[producer,t]``, so sibling outputs are created
  together);
- ``P[a,t]``: preserved on chip from ``t - 1``; ``S[a,t]``: spilled (stored) after
  ``t - 1``; ``R[a,t]``: retrieved (loaded) for ``t``;
- ``L[a,t]``: its address in units, pinned while preserved.

Resident at ``t`` means ``C + P + R = 1``. Rows: at most one of C/P/S/R per (a,t);
``P`` and ``S`` only after a step on chip, and both 0 at the window's first step;
retrieving an activation needs an earlier spill; at most one spill per tensor; every
read has its tensor preserved or retrieved at the reader's step; one op per step and one
step per op (explicit rows); precedence in the aggregated form
``sum_{t' <= t} x[c,t'] <= sum_{t' < t} x[p,t']``; the capacity per step; big-M
non-overlap between tensors resident at the same step, with one order binary per pair
and step. Tensors exist only inside their windows, so they are forced out after them.

Sizes and addresses are in units (the GCD of aligned sizes) and costs in units of the
GCD of sizes, so the big-M constants stay small and integral. The MIP gap is set to 0,
and the solver's own status is read (PuLP reports "Optimal" for a timed-out incumbent).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from memplan.ir import OpId
from memplan.plan import Plan
from memplan.solver import Budget
from memplan.solvers.ilp.model import SlotValue, Structure, slots_to_plan


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

    def __init__(self, pulp: Any, lp: Any, struct: Structure) -> None:
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
            for t in range(n):
                ops = [self.x[(o, t)] for o in range(n) if (o, t) in self.x]
                lp += pulp.lpSum(ops) == 1, f"one_op_at_{t}"
            for p, c in struct.edges:
                for t in range(n):
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


def _val(v: Any) -> float:
    if isinstance(v, int | float):
        return float(v)
    value = v.value()
    return 0.0 if value is None else float(value)


def _solve(
    pulp: Any, lp: Any, budget: Budget, engine: str, verbose: bool, threads: int, seed: int
) -> dict[str, Any]:
    """Run the engine; return its own status, whether a solution exists, and the bound."""
    limit = budget.remaining_s()
    time_limit = None if math.isinf(limit) else max(limit, 0.01)
    if engine == "cbc":
        solver = pulp.PULP_CBC_CMD(
            msg=verbose,
            timeLimit=time_limit,
            gapRel=0.0,
            gapAbs=0.0,
            threads=threads,
            options=[f"randomSeed {seed + 1}", f"randomCbcSeed {seed + 1}"],
        )
        with _quiet(not verbose):
            lp.solve(solver)
        has_solution = lp.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        proven = lp.sol_status == pulp.LpSolutionOptimal and lp.status == pulp.LpStatusOptimal
        infeasible = lp.status == pulp.LpStatusInfeasible
        return {
            "engine_status": pulp.LpStatus.get(lp.status, str(lp.status)),
            "has_solution": has_solution,
            "proven": proven,
            "infeasible": infeasible,
            "bound": None,
        }

    import highspy

    class StoppableHiGHS(pulp.HiGHS):
        """pulp.HiGHS whose run is cancelled when the budget's stop event is set."""

        def callSolver(self, lp_: Any) -> None:
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

    solver = StoppableHiGHS(
        msg=verbose,
        timeLimit=time_limit,
        gapRel=0.0,
        gapAbs=0.0,
        threads=threads,
        random_seed=seed,
    )
    with _quiet(not verbose):
        lp.solve(solver)
    highs = lp.solverModel
    status = highs.getModelStatus()
    info = highs.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    return {
        "engine_status": highs.modelStatusToString(status),
        "has_solution": has_solution,
        "proven": status == highspy.HighsModelStatus.kOptimal,
        "infeasible": status == highspy.HighsModelStatus.kInfeasible,
        "bound": info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else None,
    }


def _status(run: dict[str, Any]) -> str:
    if run["proven"] and run["has_solution"]:
        return "OPTIMAL"
    if run["has_solution"]:
        return "FEASIBLE"
    if run["infeasible"]:
        return "INFEASIBLE"
    return "UNKNOWN"


def solve_traffic_milp(
    struct: Structure,
    budget: Budget,
    *,
    engine: str,
    hint_plan: Plan | None,
    verbose: bool,
    threads: int,
    seed: int,
) -> Any:
    """Minimise non-compulsory traffic with the time-indexed MILP.

    Returns a :class:`memplan.solvers.ilp.solver.Outcome`; its objective and bound are
    in bytes.
    """
    import pulp

    from memplan.solvers.ilp.solver import Outcome

    del hint_plan  # PuLP passes no MIP start to HiGHS; the incumbent is kept by the caller
    lp = pulp.LpProblem("cosma", pulp.LpMinimize)
    steps = _Steps(pulp, lp, struct)
    cap = struct.capacity_units
    cost_unit = 0
    for spec in struct.tensors:
        cost_unit = math.gcd(cost_unit, spec.size_bytes)
    cost_unit = max(cost_unit, 1)
    var = lp.add_variable
    res: dict[tuple[int, int], Any] = {}
    pres: dict[tuple[int, int], Any] = {}
    retr: dict[tuple[int, int], Any] = {}
    spill: dict[tuple[int, int], Any] = {}
    addr: dict[tuple[int, int], Any] = {}
    objective = []
    for spec in struct.tensors:
        a = spec.tensor
        lo, hi = spec.window
        weight = spec.size_bytes // cost_unit
        spilled_so_far: list[Any] = []
        for t in range(lo, hi):
            created = steps.at(spec.producer, t) if spec.producer is not None else 0
            r = var(f"R_{a}_{t}", cat="Binary")
            p = var(f"P_{a}_{t}", cat="Binary") if t > lo else 0  # P = S = 0 at the start
            s = var(f"S_{a}_{t}", cat="Binary") if t > lo and spec.activation else 0
            retr[(a, t)], pres[(a, t)], spill[(a, t)] = r, p, s
            res[(a, t)] = created + p + r
            lp += created + p + r + s <= 1, f"one_of_CPSR_{a}_{t}"
            if t > lo:
                lp += p + s <= res[(a, t - 1)], f"after_resident_{a}_{t}"
            if spec.activation:
                spilled_so_far.append(s)
                lp += r <= pulp.lpSum(spilled_so_far), f"retrieve_after_spill_{a}_{t}"
            addr[(a, t)] = var(
                f"L_{a}_{t}", lowBound=0, upBound=max(cap - spec.units, 0), cat="Integer"
            )
            if t > lo:
                big = cap
                lp += addr[(a, t)] - addr[(a, t - 1)] <= big * (1 - p), f"pin_up_{a}_{t}"
                lp += addr[(a, t - 1)] - addr[(a, t)] <= big * (1 - p), f"pin_down_{a}_{t}"
            objective.append(weight * r)
            if spec.store_is_charged():
                objective.append(weight * s)
        if spec.activation:
            lp += pulp.lpSum(spill[(a, t)] for t in range(lo, hi)) <= 1, f"spill_once_{a}"
        for o in spec.consumers:
            olo, ohi = struct.op_windows[o]
            for t in range(olo, ohi + 1):
                lp += steps.at(o, t) <= pres[(a, t)] + retr[(a, t)], f"read_{a}_{o}_{t}"
        if not spec.activation:
            objective.append(-weight)  # the first load is compulsory
    for t in range(struct.n_steps):
        here = [s for s in struct.tensors if s.window[0] <= t < s.window[1]]
        lp += pulp.lpSum(s.units * res[(s.tensor, t)] for s in here) <= cap, f"capacity_{t}"
        for i, sa in enumerate(here):
            for sb in here[i + 1 :]:
                a, b = sa.tensor, sb.tensor
                z = var(f"z_{a}_{b}_{t}", cat="Binary")
                both = 2 - res[(a, t)] - res[(b, t)]
                lp += (
                    addr[(a, t)] + sa.units <= addr[(b, t)] + cap * (1 - z) + cap * both,
                    f"below_{a}_{b}_{t}",
                )
                lp += (
                    addr[(b, t)] + sb.units <= addr[(a, t)] + cap * z + cap * both,
                    f"above_{a}_{b}_{t}",
                )
    lp += pulp.lpSum(objective)
    run = _solve(pulp, lp, budget, engine, verbose, threads, seed)
    status = _status(run)
    stats = {
        "milp_engine": engine,
        "engine_status": run["engine_status"],
        "variables": lp.numVariables(),
        "constraints": lp.numConstraints(),
    }
    bound = None
    if run["bound"] is not None:
        bound = max(0, math.ceil(run["bound"] - 1e-6)) * cost_unit
    if not run["has_solution"]:
        return Outcome(status, None, None, None, bound, stats)
    order = tuple(OpId(o) for o in sorted(range(struct.n_steps), key=lambda o: steps.value(o)))
    slots: dict[int, list[SlotValue]] = {}
    for spec in struct.tensors:
        a = spec.tensor
        lo, hi = spec.window
        values: list[SlotValue] = []
        start = None
        for t in range(lo, hi + 1):
            on = t < hi and _val(res[(a, t)]) > 0.5
            kept = on and t > lo and _val(pres[(a, t)]) > 0.5
            if start is not None and not kept:
                offset = round(_val(addr[(a, start)]))
                values.append(SlotValue(start, t, offset))
                start = None
            if on and not kept:
                start = t
        slots[a] = values
    plan = slots_to_plan(struct, order, slots)
    value = round(_val(lp.objective) if lp.objective is not None else 0) * cost_unit
    if run["proven"]:
        bound = value
    return Outcome(status, order, plan, value, bound, stats)


def solve_peak_milp(
    struct: Structure,
    budget: Budget,
    *,
    engine: str,
    upper_units: int,
    verbose: bool,
    threads: int,
    seed: int,
) -> Any:
    """Minimise the peak live units over orders with no spilling (COSMA's MPMF)."""
    import pulp

    from memplan.solvers.ilp.solver import Outcome

    lp = pulp.LpProblem("cosma_mpmf", pulp.LpMinimize)
    steps = _Steps(pulp, lp, struct)
    lower = struct.problem.min_resident_bytes // struct.unit_bytes
    peak = lp.add_variable("peak", lowBound=lower, upBound=max(upper_units, lower))
    live: dict[tuple[int, int], Any] = {}
    for spec in struct.tensors:
        a = spec.tensor
        lo, hi = spec.window
        for t in range(lo, hi):
            v = lp.add_variable(f"live_{a}_{t}", lowBound=0, upBound=1)
            live[(a, t)] = v
            if spec.producer is not None:
                firsts = [spec.producer]
                lasts = list(spec.consumers) or [spec.producer]
            else:
                firsts = list(spec.consumers)
                lasts = list(spec.consumers)
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
    lp += peak
    run = _solve(pulp, lp, budget, engine, verbose, threads, seed)
    status = _status(run)
    stats = {
        "milp_engine": engine,
        "engine_status": run["engine_status"],
        "variables": lp.numVariables(),
        "constraints": lp.numConstraints(),
    }
    bound = math.ceil(run["bound"] - 1e-6) if run["bound"] is not None else None
    if not run["has_solution"]:
        return Outcome(status, None, None, None, bound, stats)
    order = tuple(OpId(o) for o in sorted(range(struct.n_steps), key=lambda o: steps.value(o)))
    value = round(_val(peak))
    return Outcome(status, order, None, value, value if run["proven"] else bound, stats)
