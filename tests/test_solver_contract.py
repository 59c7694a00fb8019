"""make_result enforces the result contract: honest bounds and statuses, or a solver bug."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from memplan.accelerator import Accelerator
from memplan.analysis import model_order
from memplan.cost import evaluate
from memplan.errors import MemplanError, SolverContractError
from memplan.fallback import spill_everything_plan
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status, make_result
from memplan.testing.graphs import random_dag


@dataclass(frozen=True)
class Reporter:
    """Stands for any solver: make_result only reads its name and options."""

    name: ClassVar[str] = "reporter"
    seed: int = 0


def _case() -> tuple[Problem, Plan, int]:
    """A problem at M_R, its spill-everything plan and that plan's non-compulsory bytes."""
    graph = random_dag(3, 15)
    base = Problem(graph, Accelerator("t", 0, alignment_bytes=64), Scope.ACTIVATIONS)
    problem = base.with_capacity(base.min_resident_bytes)
    plan = spill_everything_plan(problem, model_order(graph))
    value = evaluate(problem, plan).non_compulsory_bytes
    assert value > 0  # the cases below need a plan that moves something
    return problem, plan, value


def _result(status: Status, plan: Plan | None, bound: int | None):  # type: ignore[no-untyped-def]
    problem, _, _ = _case()
    return make_result(Reporter(), problem, status, plan, Budget(), lower_bound_bytes=bound)


def test_a_bound_above_the_plan_is_a_solver_bug() -> None:
    _, plan, value = _case()
    with pytest.raises(SolverContractError, match="above its own plan"):
        _result(Status.FEASIBLE, plan, value + 1)
    with pytest.raises(SolverContractError, match="above its own plan"):
        _result(Status.TIMEOUT, plan, value + 1)


def test_a_negative_bound_is_a_solver_bug() -> None:
    _, plan, _ = _case()
    with pytest.raises(SolverContractError, match="negative"):
        _result(Status.FEASIBLE, plan, -1)
    with pytest.raises(SolverContractError, match="negative"):
        _result(Status.TIMEOUT, None, -1)


@pytest.mark.parametrize("below_bytes", [None, 1, 64])
def test_optimal_needs_a_bound_equal_to_the_value(below_bytes: int | None) -> None:
    """No bound, or a bound below the value, is not a proof of optimality."""
    _, plan, value = _case()
    with pytest.raises(SolverContractError, match="OPTIMAL needs a lower bound"):
        _result(Status.OPTIMAL, plan, None if below_bytes is None else value - below_bytes)


def test_optimal_without_a_plan_and_infeasible_with_one_are_bugs() -> None:
    _, plan, _ = _case()
    with pytest.raises(SolverContractError, match="without a plan"):
        _result(Status.OPTIMAL, None, 0)
    with pytest.raises(SolverContractError, match="INFEASIBLE"):
        _result(Status.INFEASIBLE, plan, None)


def test_contract_errors_are_not_user_errors() -> None:
    """The CLI turns MemplanError into one line; a solver bug must show as a crash."""
    assert not issubclass(SolverContractError, MemplanError)
    assert issubclass(SolverContractError, AssertionError)


def test_honest_results_pass_unchanged() -> None:
    _, plan, value = _case()
    optimal = _result(Status.OPTIMAL, plan, value)
    assert optimal.lower_bound_bytes == value and optimal.gap == 0.0
    feasible = _result(Status.FEASIBLE, plan, value // 4)
    assert feasible.lower_bound_bytes == value // 4  # kept as given, never clamped
    assert feasible.gap == pytest.approx((value - value // 4) / value)
    unbounded = _result(Status.FEASIBLE, plan, None)
    assert unbounded.lower_bound_bytes is None and unbounded.gap is None
    assert unbounded.to_dict()["gap"] is None
    timeout = _result(Status.TIMEOUT, None, 0)
    assert timeout.plan is None and timeout.cost is None and timeout.gap is None
    infeasible = _result(Status.INFEASIBLE, None, None)
    assert infeasible.status is Status.INFEASIBLE
