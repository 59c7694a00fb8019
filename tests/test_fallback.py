"""The spill-everything plan is valid at M_R for every order, and moves what it says."""

from __future__ import annotations

import pytest

from memplan.accelerator import Accelerator
from memplan.analysis import breadth_first_order, depth_first_order, model_order
from memplan.cost import evaluate
from memplan.fallback import is_spill_everything, plan_source, spill_everything_plan
from memplan.plan import Arrive
from memplan.problem import Problem, Scope
from memplan.solver import relative_gap
from memplan.testing.graphs import random_dag
from memplan.validate import validate


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("scope", list(Scope))
def test_valid_at_mr_for_every_order(seed: int, scope: Scope) -> None:
    graph = random_dag(seed, 25)
    base = Problem(graph, Accelerator("t", 0, alignment_bytes=64), scope)
    problem = base.with_capacity(base.min_resident_bytes)
    for order in (model_order(graph), depth_first_order(graph), breadth_first_order(graph)):
        plan = spill_everything_plan(problem, order)
        assert validate(problem, plan) == []
        assert all(r.end == r.start + 1 for r in plan.residencies)
        loads = sum(1 for r in plan.residencies if r.arrive is Arrive.LOAD)
        uses = sum(1 for op in graph.ops for t in dict.fromkeys(op.inputs) if problem.in_scope[t])
        assert loads == uses  # every read is a load
        assert evaluate(problem, plan).non_compulsory_bytes >= 0


def test_relative_gap() -> None:
    assert relative_gap(100, None) is None
    assert relative_gap(100, 100) == 0.0
    assert relative_gap(0, 0) == 0.0
    assert relative_gap(100, 25) == 0.75


def test_the_fallback_is_named_as_such() -> None:
    """A solver out of time returns the spill-everything plan; messages must say so."""
    from memplan.solver import Budget, make_solver

    graph = random_dag(3, 30)
    base = Problem(graph, Accelerator("t", 0, alignment_bytes=64))
    problem = base.with_capacity(base.min_resident_bytes * 2)
    greedy = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert greedy is not None
    fallback = spill_everything_plan(problem, greedy.order)
    assert (
        evaluate(problem, greedy).non_compulsory_bytes
        < evaluate(problem, fallback).non_compulsory_bytes
    )
    assert is_spill_everything(problem, fallback) and not is_spill_everything(problem, greedy)
    assert plan_source(problem, greedy, "greedy", "rpo") == "greedy (rpo order)"
    assert plan_source(problem, fallback, "greedy", "rpo") == (
        "spill everything (greedy's fallback, rpo order)"
    )


def test_dnc_names_greedys_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """dnc returning greedy's out-of-time plan (too little time left) names the fallback."""
    pytest.importorskip("ortools")
    from memplan.solver import Budget, make_solver
    from memplan.solvers.dnc.solver import DncSolver

    graph = random_dag(3, 30)
    base = Problem(graph, Accelerator("t", 0, alignment_bytes=64))
    problem = base.with_capacity(base.min_resident_bytes)
    monkeypatch.setattr(
        DncSolver,
        "_greedy_default",
        lambda self, problem, budget: spill_everything_plan(problem, model_order(problem.graph)),
    )
    result = make_solver("dnc").solve(problem, Budget(time_limit_s=0.2))
    assert result.stats["start"] == "spill everything (greedy's fallback, auto order)"
    assert "greedy (" not in result.message
