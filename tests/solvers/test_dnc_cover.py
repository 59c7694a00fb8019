"""The cut-cover bound (solvers/dnc/cover.py): never above the optimum over all plans
(enumerated on 5 ops, proven by the ilp on 10), and stronger than the crowded regions
where many crowded ops share no region."""

from __future__ import annotations

import pytest

from memplan.accelerator import Accelerator
from memplan.analysis import min_peak_order
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status, make_solver
from memplan.testing import min_traffic, tiny_spill_graph
from memplan.traffic_bound import traffic_lower_bound

pytest.importorskip("ortools")

from memplan.solvers.dnc.cover import cover_bound

KIB = 1024


def tiny_at_mr(seed: int, n_ops: int, scope: Scope) -> Problem:
    problem = Problem(tiny_spill_graph(seed, n_ops), Accelerator("t", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes)


def _bound(problem: Problem) -> int:
    found = cover_bound(problem, Budget(time_limit_s=20))
    return 0 if found is None else found.bound_bytes


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 7, 8, 12, 13])
@pytest.mark.parametrize("scope", list(Scope))
def test_never_above_the_enumerated_optimum(seed: int, scope: Scope) -> None:
    problem = tiny_at_mr(seed, 5, scope)
    optimum = min_traffic(problem)
    assert optimum is not None
    assert _bound(problem) <= optimum


def test_never_above_the_ilp_optimum_and_often_meets_it() -> None:
    """16 graphs of 10 ops at M_R: the bound is at most the ilp's proven optimum on every
    one, meets it on most, and proves more than the crowded regions on several."""
    met = stronger = 0
    for seed in range(16):
        problem = tiny_at_mr(seed, 10, (Scope.ACTIVATIONS, Scope.ALL)[seed % 2])
        result = make_solver("ilp").solve(problem, Budget(time_limit_s=60))
        assert result.status is Status.OPTIMAL and result.cost is not None
        optimum, bound = result.cost.non_compulsory_bytes, _bound(problem)
        assert bound <= optimum
        met += bound == optimum
        order = min_peak_order(problem.graph, problem.aligned_sizes_bytes, problem.in_scope)
        stronger += bound > traffic_lower_bound(problem, order).bound_bytes
    assert met >= 10 and stronger >= 5  # measured: 12 and 9


def test_a_stopped_search_still_returns_a_valid_bound_or_none() -> None:
    problem = tiny_at_mr(11, 10, Scope.ALL)
    budget = Budget(time_limit_s=30)
    budget.stop_event.set()
    found = cover_bound(problem, budget)
    assert found is None or found.bound_bytes <= 14_336  # the ilp's optimum


@pytest.mark.parametrize(("seed", "optimum"), [(0, 4096), (5, 6144), (11, 14336), (12, 6144)])
def test_dnc_proves_its_plan_optimal_with_it(seed: int, optimum: int) -> None:
    """Where greedy's plan is optimal and the crowded regions prove less, the cut cover
    proves it: dnc stops at once, OPTIMAL (the whole-graph ilp would run otherwise)."""
    problem = tiny_at_mr(seed, 10, (Scope.ACTIVATIONS, Scope.ALL)[seed % 2])
    result = make_solver("dnc").solve(problem, Budget(time_limit_s=30))
    assert result.status is Status.OPTIMAL and result.cost is not None
    assert result.cost.non_compulsory_bytes == result.lower_bound_bytes == optimum
    assert result.stats["bound_method"].startswith("the cut-cover model")
