"""The ilp's crowded-region floor (:mod:`memplan.traffic_bound`): a bound over all plans
that every mode reports, that proves an incumbent meeting it optimal without a search,
and that the CP-SAT search stops at (held to brute force on tiny graphs)."""

from __future__ import annotations

import pytest
from helpers import assert_only_floor_bound

from memplan.accelerator import Accelerator
from memplan.analysis import named_order
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status
from memplan.testing import min_traffic as brute_free_traffic
from memplan.testing import tiny_spill_graph as tiny_graph
from memplan.traffic_bound import traffic_lower_bound
from memplan.validate import validate

pytest.importorskip("ortools")

from memplan.solvers.ilp import IlpSolver

KIB = 1024


def _tiny(seed: int, scope: Scope = Scope.ACTIVATIONS) -> Problem:
    problem = Problem(tiny_graph(seed, 5), Accelerator("tiny", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes)


def _floor(problem: Problem) -> int:
    order = named_order(problem.graph, "min-peak", problem.aligned_sizes_bytes, problem.in_scope)
    return traffic_lower_bound(problem, order).bound_bytes


#: Tiny graphs at M_R whose crowded regions prove a positive floor; on the first three a
#: plan of the model order meets it, on the last two none does (brute force).
MET, NOT_MET = (1, 10, 11), (3, 4)


@pytest.mark.parametrize("seed", MET + NOT_MET)
def test_a_fixed_order_optimum_reports_the_floor_and_is_optimal_where_it_meets_it(seed):
    # Before the floor, a fixed-order optimum was FEASIBLE with no bound even where it is
    # the optimum over all plans.
    problem = _tiny(seed)
    floor, optimum = _floor(problem), brute_free_traffic(problem)
    assert 0 < floor <= optimum
    result = IlpSolver(mode="fixed", order="model", hint=False).solve(problem, Budget(30))
    assert not validate(problem, result.plan)
    value = result.cost.non_compulsory_bytes
    assert_only_floor_bound(result)
    assert result.stats["floor_bytes"] == result.lower_bound_bytes == floor
    if seed in MET:
        assert value == floor == optimum and result.status is Status.OPTIMAL
        assert "meets the lower bound over all plans" in result.message
    else:
        assert value > floor and result.status is Status.FEASIBLE
        assert result.stats["optimal_for_order"] is True


@pytest.mark.parametrize("seed", MET)
def test_an_incumbent_at_the_floor_skips_the_search(seed):
    problem = _tiny(seed)
    result = IlpSolver().solve(problem, Budget(30))
    assert result.stats["skipped"] == "an incumbent meets the lower bound"
    assert result.status is Status.OPTIMAL and result.lower_bound_bytes == _floor(problem)
    assert result.cost.non_compulsory_bytes == brute_free_traffic(problem)


@pytest.mark.parametrize("seed", NOT_MET)
def test_a_free_search_above_the_floor_still_proves_the_optimum(seed):
    problem = _tiny(seed)
    result = IlpSolver().solve(problem, Budget(30))
    assert result.status is Status.OPTIMAL
    assert result.lower_bound_bytes == result.cost.non_compulsory_bytes
    assert result.cost.non_compulsory_bytes == brute_free_traffic(problem) > _floor(problem)


def test_a_search_cut_short_keeps_the_floor_as_its_bound():
    # The ilp proves nothing on this 75-op NAS cell in 3 s (bound 0 before the floor).
    from memplan.accelerator import load_accelerator
    from memplan.budgets import resolve_budget
    from memplan.io.loading import load_model

    problem = Problem(load_model("darts_v2_cifar_small").graph, load_accelerator("edge-npu"))
    problem = problem.with_capacity(resolve_budget("MR", problem).capacity_bytes)
    result = IlpSolver().solve(problem, Budget(time_limit_s=3))
    assert not validate(problem, result.plan)
    floor = result.stats["floor_bytes"]
    assert floor == _floor(problem) > 0
    assert result.lower_bound_bytes is not None
    assert floor <= result.lower_bound_bytes <= result.cost.non_compulsory_bytes
