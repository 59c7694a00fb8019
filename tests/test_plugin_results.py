"""A solver plug-in that builds its result itself (not with make_result) is held to the
contract by ``memplan optimize`` before anything is written: a None result was a
traceback, an invalid plan was written as a plan, an OPTIMAL without a bound was
reported as proven (:func:`memplan.solver.checked_result`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pytest
from helpers import random_graph

import memplan.registry
from memplan.accelerator import Accelerator
from memplan.cli import EXIT_BAD_INPUT, EXIT_OK, main
from memplan.cost import evaluate
from memplan.errors import PluginResultError
from memplan.fallback import spill_everything_plan
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.registry import PluginKind
from memplan.solver import Budget, SolveResult, Status, checked_result, make_result


def _spill_all(problem):
    return spill_everything_plan(problem, tuple(range(problem.graph.num_ops)))


@dataclass(frozen=True)
class ReturnsNone:
    name: ClassVar[str] = "returns-none"
    seed: int = 0

    def solve(self, problem, budget):
        return None


@dataclass(frozen=True)
class ClaimsOptimal:
    name: ClassVar[str] = "claims-optimal"
    seed: int = 0

    def solve(self, problem, budget):
        plan = _spill_all(problem)
        return SolveResult(Status.OPTIMAL, plan, evaluate(problem, plan), None, 0.0, self.name)


@dataclass(frozen=True)
class EmptyPlan:
    name: ClassVar[str] = "empty-plan"
    seed: int = 0

    def solve(self, problem, budget):
        plan = Plan.make(tuple(range(problem.graph.num_ops)), [])
        return SolveResult(Status.FEASIBLE, plan, None, None, 0.0, self.name)


@dataclass(frozen=True)
class WrongCost:
    name: ClassVar[str] = "wrong-cost"
    seed: int = 0

    def solve(self, problem, budget):
        plan = _spill_all(problem)
        cost = dataclasses.replace(evaluate(problem, plan), non_compulsory_bytes=0)
        return SolveResult(Status.FEASIBLE, plan, cost, None, 0.0, self.name)


@dataclass(frozen=True)
class Honest:
    name: ClassVar[str] = "honest"
    seed: int = 0

    def solve(self, problem, budget):
        return make_result(self, problem, Status.FEASIBLE, _spill_all(problem), budget)


@pytest.fixture
def model(tmp_path):
    from memplan.ir import graph_to_json

    path = tmp_path / "g.json"
    path.write_text(graph_to_json(random_graph(4, 12)))
    return path


@pytest.mark.parametrize(
    ("plugin", "said"),
    [
        (ReturnsNone, "returned None, not a memplan.solver.SolveResult"),
        (ClaimsOptimal, "broke the result contract: it claims OPTIMAL"),
        (EmptyPlan, "returned an invalid plan ("),
        (WrongCost, "reported a cost that is not the cost model's"),
    ],
)
def test_optimize_refuses_a_plugin_result_that_breaks_the_contract(
    plugin, said, model, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(memplan.registry._registered[PluginKind.SOLVER], plugin.name, plugin)
    out = tmp_path / "plan.json"
    code = main(["optimize", str(model), "--solver", plugin.name, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert said in err and "Traceback" not in err and "nothing was written" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_honest_plugin_is_written(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(memplan.registry._registered[PluginKind.SOLVER], "honest", Honest)
    out = tmp_path / "plan.json"
    assert main(["optimize", str(model), "--solver", "honest", "-o", str(out)]) == EXIT_OK
    assert out.exists()


def test_checked_result_passes_a_result_of_make_result():
    problem = Problem(random_graph(4, 12), Accelerator("a", 1 << 30, 64))
    problem = problem.with_capacity(problem.min_resident_bytes)
    result = Honest().solve(problem, Budget(5))
    assert checked_result("honest", problem, result) is result
    with pytest.raises(PluginResultError, match="'x' returned 3, not"):
        checked_result("x", problem, 3)
