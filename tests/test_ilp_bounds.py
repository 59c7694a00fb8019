"""Every status and bound an ilp path reports, held to the brute-force optimum.

The audit (contract 1): a reported bound is at most the optimum over ALL plans (here
computed by exhaustive search on tiny graphs); OPTIMAL means the value IS that optimum;
a path that optimises over a restriction (a fixed order, ``max_loads``, the peak
objective's fallback) reports no bound of its own and is never OPTIMAL unless its plan
moves 0 bytes (which no plan beats) or meets the crowded-region floor over all plans
(:mod:`memplan.traffic_bound`), the only bound it may report.
"""

from __future__ import annotations

import pytest
from helpers import assert_only_floor_bound

from memplan.accelerator import Accelerator
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status
from memplan.testing import min_traffic as brute_free_traffic
from memplan.testing import min_traffic_for_order as brute_traffic
from memplan.testing import tiny_spill_graph as tiny_graph
from memplan.validate import validate

pytest.importorskip("ortools")
pytest.importorskip("pulp")

from memplan.solvers.ilp import IlpSolver
from memplan.solvers.ilp.model import build_structure
from memplan.solvers.ilp.outcome import BackendStatus

KIB = 1024

# (seed, scope, extra KiB over M_R) whose free-order optimum enumerates in about 1 s.
CASES = [
    (1, Scope.ALL, 0),
    (3, Scope.ACTIVATIONS, 1),
    (3, Scope.ALL, 1),
    (4, Scope.ALL, 0),
]

# Every ilp path, by its options.
PATHS = {
    "free-cpsat": {},
    "free-milp": {"backend": "milp"},
    "fixed-cpsat": {"mode": "fixed", "order": "model"},
    "fixed-milp": {"mode": "fixed", "order": "model", "backend": "milp"},
    "max-loads-0": {"max_loads": 0},
    "peak-free": {"objective": "peak"},
    "peak-fixed": {"objective": "peak", "mode": "fixed", "order": "model"},
}


def _problem(seed: int, scope: Scope, extra_kib: int) -> Problem:
    problem = Problem(tiny_graph(seed, 5), Accelerator("tiny", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes + extra_kib * KIB)


@pytest.fixture(scope="module")
def optima() -> dict[tuple[int, Scope, int], float]:
    """Brute-force free-order optimum of every case."""
    return {case: brute_free_traffic(_problem(*case)) for case in CASES}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("case", CASES, ids=str)
def test_bound_and_status_hold_against_brute_force(path, case, optima):
    problem = _problem(*case)
    result = IlpSolver(hint=False, **PATHS[path]).solve(problem, Budget(60))
    assert result.plan is not None and not validate(problem, result.plan)
    value = result.cost.non_compulsory_bytes
    optimum = optima[case]
    assert value >= optimum
    if result.lower_bound_bytes is not None:
        assert result.lower_bound_bytes <= optimum
        assert result.lower_bound_bytes <= value
    if result.status is Status.OPTIMAL:
        assert value == optimum and result.lower_bound_bytes == value
    restricted = path.startswith(("fixed", "max-loads")) or path == "peak-fixed"
    if restricted and value > 0:
        assert_only_floor_bound(result)
    if path.startswith("fixed") and value > 0 and result.status is not Status.OPTIMAL:
        assert result.status is Status.FEASIBLE and result.stats["optimal_for_order"] is True
        assert "optimal for the model order" in result.message
        assert value == brute_traffic(problem, range(problem.graph.num_ops))
    if path.startswith("free"):
        assert result.status is Status.OPTIMAL and value == optimum


def test_max_loads_that_does_not_bite_keeps_the_global_claims():
    # Every tensor of this graph is read at most twice, so max_loads=2 loses no plan.
    problem = _problem(3, Scope.ACTIVATIONS, 1)
    assert max(len(c) for c in problem.graph.consumers) <= 2
    result = IlpSolver(max_loads=2, hint=False).solve(problem, Budget(60))
    assert result.status is Status.OPTIMAL
    assert result.cost.non_compulsory_bytes == brute_free_traffic(problem)


def test_max_loads_that_bites_is_optimal_only_within_it(optima):
    # (1, ALL, 0) no longer shows it: its max_loads=1 optimum meets the crowded-region
    # floor, so it is proven optimal over all plans (tests/test_ilp_floor.py).
    case = (4, Scope.ALL, 0)
    problem = _problem(*case)
    within = IlpSolver(max_loads=1, hint=False).solve(problem, Budget(60))
    assert within.status is Status.FEASIBLE
    assert_only_floor_bound(within)
    assert within.stats["optimal_for_max_loads"] is True
    assert "optimal over all orders within max_loads=1" in within.message
    assert within.cost.non_compulsory_bytes >= optima[case]
    # max_loads=0 keeps every tensor on chip from first to last use: nothing fits at M_R.
    none = IlpSolver(max_loads=0, hint=False).solve(problem, Budget(60))
    assert none.status is Status.FEASIBLE
    assert_only_floor_bound(none)
    assert "within max_loads=0 has no plan" in none.message
    assert "optimal_for_max_loads" not in none.stats and not validate(problem, none.plan)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_milp_bound_includes_the_objective_constant(case, optima):
    """PuLP drops the objective's constant (minus every input's and weight's compulsory
    first load) on the way to HiGHS; the bound must still be a bound on non-compulsory
    bytes, whether the search is stopped early (node limit) or proves its optimum."""
    from memplan.solvers.ilp.milp import solve_traffic_milp

    problem = _problem(*case)
    struct = build_structure(problem, None, -1)
    constant = sum(s.size_bytes for s in struct.tensors if not s.activation)
    assert constant > 0  # the case has an input (and weights): the constant matters
    optimum = optima[case]
    for node_limit in (1, None):
        options = {"mip_max_nodes": node_limit} if node_limit is not None else None
        outcome = solve_traffic_milp(
            struct, Budget(60), engine="highs", verbose=False, threads=1, seed=0,
            engine_options=options,
        )  # fmt: skip
        assert outcome.bound is not None and outcome.objective is not None
        assert outcome.bound <= optimum <= outcome.objective
        if outcome.status is BackendStatus.OPTIMAL:
            assert outcome.bound == outcome.objective == optimum
        else:
            assert node_limit is not None  # only the node-limited run may stop early


def test_milp_stopped_at_the_root_still_bounds_correctly():
    # These cases (an input, and weights in scope: the objective has a constant) do not
    # close at the root node: the bound of an unfinished search (the case that read "best bound
    # 6221824 B" above a 5619712 B plan on light_densenet121) stays at or below the
    # optimum.
    from memplan.solvers.ilp.milp import solve_traffic_milp

    stopped = 0
    for case in ((4, Scope.ALL, 1), (13, Scope.ALL, 0), (5, Scope.ACTIVATIONS, 0)):
        problem = _problem(*case)
        struct = build_structure(problem, None, -1)
        outcome = solve_traffic_milp(
            struct, Budget(60), engine="highs", verbose=False, threads=1, seed=0,
            engine_options={"mip_max_nodes": 1},
        )  # fmt: skip
        assert outcome.bound is not None and outcome.objective is not None
        assert outcome.bound <= brute_free_traffic(problem) <= outcome.objective
        stopped += outcome.status is BackendStatus.FEASIBLE
    assert stopped > 0


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cpsat_bound_of_a_stopped_search_is_below_the_optimum(case, optima):
    from memplan.solvers.ilp.cpsat import solve_traffic

    problem = _problem(*case)
    struct = build_structure(problem, None, -1)
    for work_s in (0.001, None):
        outcome = solve_traffic(
            struct, Budget(60), hint=None, workers=1, seed=0, verbose=False,
            deterministic_s=work_s,
        )  # fmt: skip
        if outcome.bound is not None:
            assert outcome.bound <= optima[case]
        if outcome.status is BackendStatus.OPTIMAL:
            assert outcome.objective == optima[case]
