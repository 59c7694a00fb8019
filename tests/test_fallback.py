"""The spill-everything plan is valid at M_R for every order, and moves what it says."""

from __future__ import annotations

import pytest

from memplan.accelerator import Accelerator
from memplan.analysis import breadth_first_order, depth_first_order, model_order
from memplan.cost import evaluate
from memplan.fallback import spill_everything_plan
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
