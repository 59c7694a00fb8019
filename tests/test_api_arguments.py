"""The Python API refuses wrong arguments with the project's errors, naming them.

A notebook user's slip (a scope as a string, a LoadedModel for a Graph, options as a
list, a plan of another problem) gets a ConfigError or InvalidPlanError that says what
was expected, not an AttributeError or IndexError from deep inside.
"""

from __future__ import annotations

from typing import Any

import pytest

import memplan
from memplan.accelerator import Accelerator
from memplan.dsa import Buffer, allocate
from memplan.errors import ConfigError, InvalidPlanError
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.solver import Budget, make_solver
from memplan.testing import random_dag
from memplan.validate import validate


def _problem(seed: int = 1, n_ops: int = 20) -> Problem:
    problem = Problem(random_dag(seed, n_ops), Accelerator("t", 1, alignment_bytes=64))
    return problem.with_capacity(problem.min_resident_bytes * 2)


def test_a_scope_string_is_parsed_and_a_wrong_one_refused() -> None:
    graph = random_dag(2, 15)
    acc = Accelerator("t", 1 << 20, alignment_bytes=64)
    problem = Problem(graph, acc, "all")  # type: ignore[arg-type]
    assert problem.scope is Scope.ALL and all(problem.in_scope)
    assert problem == Problem(graph, acc, Scope.ALL)
    with pytest.raises(ConfigError, match="unknown scope 'weird'"):
        Problem(graph, acc, "weird")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scope must be"):
        Problem(graph, acc, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("graph", "accelerator", "fragment"),
    [
        (None, Accelerator("t", 1024), "graph must be a memplan Graph, got NoneType"),
        ("randwire_ws_tiny", Accelerator("t", 1024), "graph must be a memplan Graph, got str"),
        (random_dag(1, 5), "edge-npu", "accelerator must be an Accelerator"),
    ],
)
def test_problem_names_a_wrong_argument(graph: Any, accelerator: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Problem(graph, accelerator)


def test_a_loaded_model_for_a_graph_gets_a_hint() -> None:
    loaded = memplan.load_model("light_squeezenet")
    with pytest.raises(ConfigError, match=r"pass load_model\(\.\.\.\)\.graph"):
        Problem(loaded, Accelerator("t", 1024))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        (None, None, "solver name must be a string"),
        ("greedy", [1], "options must be a mapping"),
        ("greedy", "order=dfs", "options must be a mapping"),
        ("greedy", {"max_retries": 2.5}, "option max_retries=2.5 is not a valid int"),
        ("greedy", {"alloc_time_limit_s": float("nan")}, "is not a valid float"),
        ("greedy", {"order": 3}, "option order=3 is not a valid str"),
    ],
)
def test_make_solver_refuses_wrong_types(name: Any, options: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        make_solver(name, options)


def test_make_solver_takes_python_values_of_the_right_type() -> None:
    solver = make_solver("greedy", {"alloc_time_limit_s": 2, "max_retries": 3, "order": "dfs"})
    assert solver.alloc_time_limit_s == 2.0 and isinstance(solver.alloc_time_limit_s, float)
    assert solver.max_retries == 3 and solver.order == "dfs"


def test_scoring_a_plan_of_another_problem_is_an_invalid_plan_error() -> None:
    small, other = _problem(1, 20), _problem(2, 30)
    plan = make_solver("greedy").solve(small, Budget(time_limit_s=10)).plan
    assert plan is not None
    for score in (memplan.evaluate, memplan.simulate):
        with pytest.raises(InvalidPlanError, match="not a permutation of the 30 ops"):
            score(other, plan)
        with pytest.raises(InvalidPlanError, match="not a permutation"):
            score(small, Plan.make([], []))
        with pytest.raises(InvalidPlanError, match="expected a memplan Plan"):
            score(small, None)  # type: ignore[arg-type]
    broken = Plan(plan.order, (*plan.residencies[:-1], plan.residencies[-1].__class__(
        10_000, 0, 1, 0)))  # fmt: skip
    with pytest.raises(InvalidPlanError, match="does not fit graph"):
        memplan.evaluate(small, broken)
    assert memplan.evaluate(small, plan).non_compulsory_bytes >= 0  # a good plan still scores


def test_validate_and_plan_make_name_wrong_arguments() -> None:
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    with pytest.raises(InvalidPlanError, match="expected a Problem"):
        validate(None, plan)  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="expected a Plan, got dict"):
        validate(problem, {"order": []})  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="order must be a list of op ids"):
        Plan.make(None, [])  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="whole numbers"):
        Plan.make(["a"], [])  # type: ignore[list-item]
    with pytest.raises(InvalidPlanError, match="list of Residency"):
        Plan.make([0], [1])  # type: ignore[list-item]
    assert Plan.make(iter(plan.order), iter(plan.residencies)) == plan


def test_allocate_names_wrong_arguments() -> None:
    with pytest.raises(ConfigError, match="buffers must be a list"):
        allocate(None, 1024)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="capacity_bytes must be a whole number"):
        allocate([Buffer("a", 0, 1, 4)], "1MB")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["greedy", "dnc", "rl", "ilp"])
def test_solve_names_wrong_arguments(name: str) -> None:
    solver = make_solver(name)
    with pytest.raises(ConfigError, match=f"{name}.solve: problem must be a memplan Problem"):
        solver.solve(random_dag(1, 5), Budget(time_limit_s=1))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"{name}.solve: budget must be a memplan Budget"):
        solver.solve(_problem(), 5)  # type: ignore[arg-type]
