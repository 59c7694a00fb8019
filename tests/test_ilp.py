"""The ilp solver: options, statuses, budgets, plans and the peak model."""

from __future__ import annotations

import threading

import pytest
from helpers import assert_only_floor_bound, random_graph
from plan_fixtures import diamond_graph

from memplan.accelerator import Accelerator
from memplan.analysis import min_peak_order, peak_live_bytes
from memplan.errors import ConfigError
from memplan.plan import Arrive, Leave
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status, make_solver
from memplan.testing import enumerate_min_peak as brute_min_peak
from memplan.testing import tiny_spill_graph as tiny_graph
from memplan.validate import validate

pytest.importorskip("ortools")
pytest.importorskip("pulp")

from memplan.fallback import spill_everything_plan
from memplan.solvers.ilp import IlpSolver
from memplan.solvers.ilp.model import build_structure, op_windows, plan_slots, slot_traffic_bytes


def _problem(graph, capacity=1 << 20, alignment=64, scope=Scope.ACTIVATIONS):
    return Problem(graph, Accelerator("test", capacity, alignment), scope)


def test_registered_and_options_validated():
    solver = make_solver("ilp", {"mode": "fixed", "workers": "1", "verbose": "false"})
    assert isinstance(solver, IlpSolver) and solver.mode == "fixed" and solver.workers == 1
    for bad in ({"objective": "energy"}, {"mode": "both"}, {"backend": "gurobi"},
                {"workers": "0"}, {"order": "random"}, {"max_loads": "-2"},
                {"seed": "-1"}, {"seed": str(2**31)}):  # fmt: skip
        with pytest.raises(ConfigError):
            make_solver("ilp", bad)


def test_below_mr_is_infeasible():
    problem = _problem(diamond_graph())
    small = problem.with_capacity(problem.min_resident_bytes - 64)
    result = IlpSolver().solve(small, Budget(10))
    assert result.status is Status.INFEASIBLE and result.plan is None
    assert str(problem.min_resident_bytes) in result.message


def test_windows_bound_every_topological_order():
    graph = random_graph(3, 12)
    problem = _problem(graph)
    windows = op_windows(problem)
    for order in (min_peak_order(graph, problem.aligned_sizes_bytes, problem.in_scope),
                  tuple(range(graph.num_ops))):  # fmt: skip
        for step, op in enumerate(order):
            lo, hi = windows[op]
            assert lo <= step <= hi


@pytest.mark.parametrize("backend", ["cpsat", "milp"])
@pytest.mark.parametrize("scope", [Scope.ACTIVATIONS, Scope.ALL])
def test_diamond_at_mr_spills_and_validates(backend, scope):
    problem = _problem(diamond_graph(), scope=scope)
    problem = problem.with_capacity(problem.min_resident_bytes)
    result = IlpSolver(backend=backend).solve(problem, Budget(30))
    assert result.status is Status.OPTIMAL
    assert not validate(problem, result.plan)
    assert result.lower_bound_bytes == result.cost.non_compulsory_bytes
    assert result.gap == 0.0
    # At M_R the diamond's long-lived tensor must be spilled: a store and a load.
    assert result.cost.non_compulsory_bytes > 0
    arrivals = {r.arrive for r in result.plan.residencies}
    assert Arrive.LOAD in arrivals


@pytest.mark.parametrize("seed", range(4))
def test_free_never_worse_than_fixed_and_backends_agree(seed):
    graph = tiny_graph(seed, 6)
    problem = _problem(graph, alignment=1024)
    problem = problem.with_capacity(problem.min_resident_bytes)
    values = {}
    for backend in ("cpsat", "milp"):
        for mode in ("free", "fixed"):
            result = IlpSolver(backend=backend, mode=mode, order="model").solve(problem, Budget(60))
            assert not validate(problem, result.plan)
            values[(backend, mode)] = result.cost.non_compulsory_bytes
            if mode == "free" or values[(backend, mode)] == 0:
                assert result.status is Status.OPTIMAL, result.message
            else:  # optimal for the model order: no bound over all plans but the floor
                assert_only_floor_bound(result)
                if result.status is not Status.OPTIMAL:
                    assert result.status is Status.FEASIBLE, result.message
                    assert result.stats["optimal_for_order"] is True
                    assert "optimal for the model order" in result.message
    assert values[("cpsat", "free")] == values[("milp", "free")]
    assert values[("cpsat", "fixed")] == values[("milp", "fixed")]
    assert values[("cpsat", "free")] <= values[("cpsat", "fixed")]


def test_fixed_mode_keeps_the_order():
    graph = random_graph(5, 10)
    problem = _problem(graph)
    problem = problem.with_capacity(problem.min_resident_bytes)
    result = IlpSolver(mode="fixed", order="model").solve(problem, Budget(30))
    assert result.plan.order == tuple(range(graph.num_ops))
    assert result.status is Status.FEASIBLE and result.stats["optimal_for_order"] is True
    assert result.lower_bound_bytes is None


def test_never_worse_than_greedy_when_greedy_exists():
    graph = random_graph(11, 14)
    problem = _problem(graph)
    problem = problem.with_capacity(problem.min_resident_bytes)
    ilp = IlpSolver().solve(problem, Budget(30))
    base = make_solver("greedy").solve(problem, Budget(30))
    assert base.plan is not None and ilp.cost is not None and base.cost is not None
    assert ilp.cost.non_compulsory_bytes <= base.cost.non_compulsory_bytes


def test_same_seed_same_plan():
    graph = random_graph(7, 10)
    problem = _problem(graph)
    problem = problem.with_capacity(problem.min_resident_bytes)
    first = IlpSolver(seed=3, workers=1).solve(problem, Budget(30))
    second = IlpSolver(seed=3, workers=1).solve(problem, Budget(30))
    assert first.plan == second.plan


def test_stop_event_returns_a_valid_plan_quickly():
    graph = random_graph(2, 40)
    problem = _problem(graph)
    problem = problem.with_capacity(problem.min_resident_bytes)
    budget = Budget(time_limit_s=120)
    timer = threading.Timer(1.0, budget.stop_event.set)
    timer.start()
    try:
        result = IlpSolver(hint=False).solve(problem, budget)
    finally:
        timer.cancel()
    assert result.wall_s < 30
    assert result.plan is not None and not validate(problem, result.plan)
    assert result.status in (Status.TIMEOUT, Status.OPTIMAL)
    if result.status is Status.TIMEOUT:
        assert "interrupted" in result.message


@pytest.mark.parametrize("backend", ["cpsat", "milp"])
def test_stopped_before_the_search_says_interrupted(backend):
    problem = _problem(random_graph(2, 30))
    problem = problem.with_capacity(problem.min_resident_bytes)
    budget = Budget(time_limit_s=60)
    budget.stop_event.set()
    result = IlpSolver(backend=backend).solve(problem, budget)
    assert result.plan is not None and not validate(problem, result.plan)
    assert result.wall_s < 10
    if result.cost.non_compulsory_bytes > 0:
        assert result.status is Status.TIMEOUT and "interrupted" in result.message


def test_tiny_time_limit_still_returns_a_plan():
    graph = random_graph(4, 60)
    problem = _problem(graph)
    problem = problem.with_capacity(problem.min_resident_bytes)
    result = IlpSolver(hint=False).solve(problem, Budget(time_limit_s=0.5))
    assert result.plan is not None and not validate(problem, result.plan)
    assert result.status in (Status.TIMEOUT, Status.FEASIBLE, Status.OPTIMAL)


def test_restricted_loads_is_not_called_optimal():
    graph = tiny_graph(1, 6)
    problem = _problem(graph, alignment=1024)
    problem = problem.with_capacity(problem.min_resident_bytes)
    result = IlpSolver(max_loads=0).solve(problem, Budget(30))
    assert result.plan is not None and not validate(problem, result.plan)
    if result.cost.non_compulsory_bytes > 0:
        assert_only_floor_bound(result)


def test_slots_round_trip_and_spill_everything_is_valid():
    graph = random_graph(9, 12)
    problem = _problem(graph)
    problem = problem.with_capacity(problem.min_resident_bytes)
    struct = build_structure(problem, tuple(range(graph.num_ops)), -1)
    plan = spill_everything_plan(problem, tuple(range(graph.num_ops)))
    assert not validate(problem, plan)
    slots = plan_slots(struct, plan)
    assert slots is not None
    from memplan.cost import evaluate

    assert slot_traffic_bytes(struct, slots) == evaluate(problem, plan).non_compulsory_bytes
    assert any(r.leave is Leave.STORE for r in plan.residencies)


# ------------------------------------------------------------------ peak objective
@pytest.mark.parametrize("backend", ["cpsat", "milp"])
@pytest.mark.parametrize("seed", range(3))
def test_exact_min_peak_matches_enumeration(backend, seed):
    problem = _problem(tiny_graph(seed, 6), alignment=1024)
    estimate = IlpSolver.exact_min_peak(problem, Budget(30), backend=backend)
    assert estimate.proven
    assert estimate.value_bytes == brute_min_peak(problem)


def test_peak_objective_at_mp_gives_zero_traffic():
    graph = random_graph(6, 10)
    problem = _problem(graph)
    estimate = IlpSolver.exact_min_peak(problem, Budget(30))
    assert estimate.proven
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    heuristic = peak_live_bytes(graph, min_peak_order(graph, sizes, scope), sizes, scope)
    assert estimate.value_bytes <= heuristic
    roomy = problem.with_capacity(2 * estimate.value_bytes)
    result = IlpSolver(objective="peak").solve(roomy, Budget(30))
    assert result.status is Status.OPTIMAL
    assert result.cost.non_compulsory_bytes == 0
    assert result.stats["peak_bytes"] == estimate.value_bytes
    # Traffic objective at a capacity of M_P: no spill is needed.
    at_mp = problem.with_capacity(estimate.value_bytes)
    traffic = IlpSolver().solve(at_mp, Budget(30))
    assert traffic.cost.non_compulsory_bytes == 0


@pytest.mark.parametrize("backend", ["cpsat", "milp"])
def test_largest_seed_reaches_the_engines(backend):
    problem = _problem(diamond_graph())
    problem = problem.with_capacity(problem.min_resident_bytes)
    result = IlpSolver(backend=backend, seed=2**31 - 1).solve(problem, Budget(30))
    assert result.status is Status.OPTIMAL and not validate(problem, result.plan)
