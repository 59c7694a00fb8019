"""``objective=latency`` on ilp, dnc and rl (:mod:`memplan.solvers.latency`) from
Python: what passes through unchanged (infeasible, the bound) and what a stop does."""

from __future__ import annotations

import pytest
from helpers import random_graph

from memplan.accelerator import Accelerator
from memplan.problem import Problem
from memplan.solver import Budget, Status, make_solver
from memplan.validate import validate

pytest.importorskip("ortools")

SOLVERS = ("ilp", "dnc", "rl")


def _problem(seed: int) -> Problem:
    problem = Problem(random_graph(seed, 14), Accelerator("a", 1 << 30, 64))
    return problem.with_capacity(problem.min_resident_bytes)


@pytest.mark.parametrize("name", SOLVERS)
def test_below_m_r_is_infeasible_with_no_plan(name):
    problem = _problem(3)
    below = problem.with_capacity(problem.min_resident_bytes - 64)
    result = make_solver(name, {"objective": "latency"}).solve(below, Budget(10))
    assert result.status is Status.INFEASIBLE and result.plan is None
    assert result.options["objective"] == "latency"


@pytest.mark.parametrize("name", SOLVERS)
def test_same_traffic_and_bound_no_slower_and_never_optimal(name):
    problem = _problem(5)
    plain = make_solver(name, {"seed": 1}).solve(problem, Budget(10))
    fast = make_solver(name, {"seed": 1, "objective": "latency"}).solve(problem, Budget(10))
    assert not validate(problem, fast.plan)
    assert fast.status is not Status.OPTIMAL
    if plain.status is Status.OPTIMAL:  # both proven: the same optimum, the same bound
        assert fast.cost.non_compulsory_bytes == plain.cost.non_compulsory_bytes
        assert fast.lower_bound_bytes == plain.lower_bound_bytes
    before = fast.stats["prefetch_latency_before_s"]
    assert fast.cost.overlap_latency_s <= before * (1 + 1e-12)
    assert fast.stats["prefetch_latency_after_s"] == pytest.approx(fast.cost.overlap_latency_s)


@pytest.mark.parametrize("name", SOLVERS)
def test_a_stopped_solve_is_timeout_with_a_valid_plan(name):
    problem = _problem(7)
    budget = Budget(10)
    budget.stop_event.set()  # as after a Ctrl-C
    result = make_solver(name, {"objective": "latency"}).solve(problem, budget)
    assert result.status is Status.TIMEOUT
    assert result.plan is not None and not validate(problem, result.plan)
