"""Fake solvers for the benchmark tests only, loaded in workers as ``fake_solvers:X``.

The tests of ``memplan bench`` and ``memplan compare`` (this folder) put it on the
workers' import path; nothing outside tests/bench/ uses it.

Two legal ones, deterministic and independent of any registered solver:

- :class:`SpillAllSolver`: model order; each op's working set is on chip for its own
  step only, stacked from offset 0 (fits at any capacity >= M_R); every activation
  used later is stored after it is produced and loaded again for each use.
- :class:`KeepAllSolver`: model order; every in-scope tensor stays on chip for its
  whole life, placed first-fit; FEASIBLE when that fits, else TIMEOUT without a plan.

And misbehaving ones: one sleeps forever ignoring its budget (after a quick warm-up),
one hangs in its warm-up, one raises, one kills its own process, one returns a plan
that breaks the rules without make_result, one makes claims its plan does not back
(or returns no result, or stops its clock early).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import ClassVar, NoReturn

from memplan.analysis import model_order, tensor_lifetimes
from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem
from memplan.solver import Budget, SolveResult, Status, infeasible_below_mr, make_result


def _arrival(problem: Problem, tensor: int) -> Arrive:
    kind = problem.graph.tensors[tensor].kind
    return Arrive.PRODUCE if kind is TensorKind.ACTIVATION else Arrive.LOAD


@dataclass(frozen=True)
class SpillAllSolver:
    """Every op's working set on chip for its own step only; spill everything between."""

    name: ClassVar[str] = "spill_all"
    seed: int = field(default=0, metadata={"help": "unused (deterministic)"})
    delay_s: float = field(default=0.0, metadata={"help": "seconds to sleep before solving"})

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem``: valid at any capacity >= M_R."""
        if self.delay_s:
            time.sleep(self.delay_s)
        below = infeasible_below_mr(self, problem, budget)
        if below is not None:
            return below
        graph, sizes = problem.graph, problem.aligned_sizes_bytes
        residencies = []
        for step, op_id in enumerate(model_order(graph)):
            op = graph.ops[op_id]
            offset = 0
            for t in dict.fromkeys((*op.inputs, *op.outputs)):
                if not problem.in_scope[t]:
                    continue
                tensor = graph.tensors[t]
                produced_here = t in op.outputs
                arrive = Arrive.PRODUCE if produced_here else Arrive.LOAD
                keep = produced_here and (tensor.is_output or graph.consumers[t])
                leave = Leave.STORE if keep else Leave.DROP
                residencies.append(Residency(t, step, step + 1, offset, arrive, leave))
                offset += sizes[t]
        plan = Plan.make(model_order(graph), residencies)
        return make_result(self, problem, Status.FEASIBLE, plan, budget)


@dataclass(frozen=True)
class KeepAllSolver:
    """Every in-scope tensor on chip for its whole life, first-fit; no spilling."""

    name: ClassVar[str] = "keep_all"
    seed: int = field(default=0, metadata={"help": "unused (deterministic)"})

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` if every tensor fits for its whole life, else TIMEOUT."""
        below = infeasible_below_mr(self, problem, budget)
        if below is not None:
            return below
        graph, sizes = problem.graph, problem.aligned_sizes_bytes
        order = model_order(graph)
        spans = tensor_lifetimes(graph, order, problem.in_scope)
        placed: list[tuple[int, int, int, int]] = []  # start, end, offset, size
        residencies = []
        for t, span in sorted(enumerate(spans), key=lambda item: (item[1] or (0, 0), item[0])):
            if span is None:
                continue
            start, end = span
            offset = 0
            for o_start, o_end, o_offset, o_size in sorted(placed, key=lambda p: p[2]):
                overlaps_time = o_start < end and start < o_end
                if overlaps_time and o_offset < offset + sizes[t] and offset < o_offset + o_size:
                    offset = o_offset + o_size
            if offset + graph.tensors[t].size_bytes > problem.capacity_bytes:
                return make_result(
                    self, problem, Status.TIMEOUT, None, budget, message="does not fit"
                )
            placed.append((start, end, offset, sizes[t]))
            leave = Leave.STORE if graph.tensors[t].is_output else Leave.DROP
            residencies.append(Residency(t, start, end, offset, _arrival(problem, t), leave))  # type: ignore[arg-type]
        plan = Plan.make(order, residencies)
        return make_result(self, problem, Status.FEASIBLE, plan, budget, lower_bound_bytes=0)


@dataclass(frozen=True)
class SleepForeverSolver:
    """Ignores its budget and never returns."""

    name: ClassVar[str] = "sleep_forever"
    seed: int = 0

    def warm_up(self) -> None:
        """Nothing to load: return at once (the hang is in the solve)."""

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Hang."""
        _hang()


@dataclass(frozen=True)
class HangingWarmUpSolver(SleepForeverSolver):
    """Hangs in its warm-up hook, so the bench must kill it before its clock starts."""

    name: ClassVar[str] = "hanging_warm_up"

    def warm_up(self) -> None:
        """Hang."""
        _hang()


def _hang() -> NoReturn:
    """Sleep forever, ignoring every budget."""
    while True:
        time.sleep(1.0)


@dataclass(frozen=True)
class RaisingSolver:
    """Raises an exception with a recognisable message."""

    name: ClassVar[str] = "raising"
    seed: int = 0

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Fail."""
        raise RuntimeError(f"deliberate failure on {problem.graph.name}")


@dataclass(frozen=True)
class CrashingSolver:
    """Kills its own process (like a segfault in a native library)."""

    name: ClassVar[str] = "crashing"
    seed: int = 0

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Die."""
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class CheatingSolver:
    """Returns a plan with no residencies, bypassing make_result's validation."""

    name: ClassVar[str] = "cheating"
    seed: int = 0

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Return an empty, invalid plan marked FEASIBLE."""
        plan = Plan.make(model_order(problem.graph), [])
        return SolveResult(Status.FEASIBLE, plan, None, None, budget.elapsed_s(), self.name)


@dataclass(frozen=True)
class LyingSolver:
    """Returns the spill-all plan with a claim about it the plan does not back, bypassing
    make_result: ``lie`` names which (the harness must not pass it on as a fact).

    - ``optimal``: OPTIMAL without a lower bound;
    - ``bound``: a lower bound above its own plan's traffic;
    - ``infeasible``: INFEASIBLE, yet with a plan;
    - ``none``: returns None instead of a SolveResult;
    - ``clock``: a true result, but it sleeps ``sleep_s`` after make_result stopped its
      clock (its ``wall_s`` is short of the time it took);
    - ``stats``: a true result whose stats JSON refuses (a tuple key, an object);
    - ``exit``: prints a last word on standard error and ends its process (code 5).
    """

    name: ClassVar[str] = "lying"
    lie: str = field(
        default="optimal",
        metadata={"help": "optimal, bound, infeasible, none, clock, stats or exit"},
    )
    sleep_s: float = field(default=0.5, metadata={"help": "seconds slept (lie=clock)"})

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """The spill-all plan, with the lie."""
        result = SpillAllSolver().solve(problem, budget)
        if self.lie == "none":
            return None  # type: ignore[return-value]
        if self.lie == "clock":
            time.sleep(self.sleep_s)
            return result
        if self.lie == "stats":
            return dataclasses.replace(result, stats={(1, 2): object(), "kept": 7})
        if self.lie == "exit" and problem.graph.name != "warm-up":
            print("many lines\n" * 200 + "fatal: the licence server is gone", file=sys.stderr)
            sys.stderr.flush()
            os._exit(5)
        assert result.cost is not None
        claims = {
            "optimal": {"status": Status.OPTIMAL, "lower_bound_bytes": None},
            "bound": {"lower_bound_bytes": result.cost.non_compulsory_bytes + 64},
            "infeasible": {"status": Status.INFEASIBLE},
        }
        return dataclasses.replace(result, **claims[self.lie])  # type: ignore[arg-type]
