"""Both ilp backends against exhaustive search on tiny graphs (memplan.testing.bruteforce).

The graphs have 5 to 7 ops and 1-3 KiB tensors with a 1 KiB alignment, so capacities are
a few address units and the search over orders, residencies, offsets and stores is
exhaustive. Capacities are M_R and M_R + 1 KiB, where spilling matters.
"""

from __future__ import annotations

import pytest
from helpers import assert_only_floor_bound

from memplan.accelerator import Accelerator
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status
from memplan.testing import enumerate_min_peak as brute_min_peak
from memplan.testing import min_traffic as brute_free_traffic
from memplan.testing import min_traffic_for_order as brute_traffic
from memplan.testing import tiny_spill_graph as tiny_graph
from memplan.validate import validate

pytest.importorskip("ortools")
pytest.importorskip("pulp")

from memplan.solvers.ilp import IlpSolver

KIB = 1024


def _problem(seed: int, n_ops: int, scope: Scope, extra_kib: int) -> Problem:
    problem = Problem(tiny_graph(seed, n_ops), Accelerator("tiny", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes + extra_kib * KIB)


def _solve(problem: Problem, backend: str, mode: str) -> int:
    result = IlpSolver(backend=backend, mode=mode, order="model", hint=False).solve(
        problem, Budget(60)
    )
    assert not validate(problem, result.plan)
    value = result.cost.non_compulsory_bytes
    if mode == "free" or value == 0:
        # A global optimum: OPTIMAL, with a bound equal to the value.
        assert result.status is Status.OPTIMAL, result.message
        assert result.lower_bound_bytes == value
    else:
        # Optimal for the model order: OPTIMAL only where it meets the crowded-region
        # floor over all plans, and no bound but that floor.
        assert_only_floor_bound(result)
        if result.status is not Status.OPTIMAL:
            assert result.status is Status.FEASIBLE, result.message
            assert result.stats["optimal_for_order"] is True
    return value


# Free order: cases where the optimum over orders is found by enumeration in ~1 s.
FREE_CASES = [
    (1, Scope.ACTIVATIONS, 0),
    (1, Scope.ALL, 0),
    (3, Scope.ACTIVATIONS, 0),
    (3, Scope.ACTIVATIONS, 1),
    (3, Scope.ALL, 1),
    (4, Scope.ACTIVATIONS, 0),
    (4, Scope.ALL, 0),
    (4, Scope.ALL, 1),
]


@pytest.mark.parametrize(("seed", "scope", "extra_kib"), FREE_CASES)
def test_free_order_optimum_matches_brute_force(seed, scope, extra_kib):
    problem = _problem(seed, 5, scope, extra_kib)
    expected = brute_free_traffic(problem)
    fixed_expected = brute_traffic(problem, range(problem.graph.num_ops))
    for backend in ("cpsat", "milp"):
        assert _solve(problem, backend, "free") == expected
        assert _solve(problem, backend, "fixed") == fixed_expected
    assert expected <= fixed_expected


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("scope", [Scope.ACTIVATIONS, Scope.ALL])
def test_fixed_order_optimum_matches_brute_force(seed, scope):
    problem = _problem(seed, 6, scope, 0)
    expected = brute_traffic(problem, range(problem.graph.num_ops))
    assert _solve(problem, "cpsat", "fixed") == expected
    assert _solve(problem, "milp", "fixed") == expected


@pytest.mark.parametrize("seed", range(6))
def test_min_peak_matches_enumeration_over_orders(seed):
    problem = _problem(seed, 7, Scope.ACTIVATIONS, 0)
    expected = brute_min_peak(problem)
    for backend in ("cpsat", "milp"):
        estimate = IlpSolver.exact_min_peak(problem, Budget(30), backend=backend)
        assert estimate.proven and estimate.value_bytes == expected
