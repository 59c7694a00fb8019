"""Every registered solver against the conformance suite (see conformance.py)."""

from __future__ import annotations

import pytest

from memplan.ir import graph_from_json, graph_to_json
from memplan.solver import available_solvers, required_extra
from memplan.testing.solvers import (
    CAPACITIES,
    Case,
    cases,
    check_case,
    check_solver,
    check_solver_class,
    tiny_graphs,
)

SOLVERS = available_solvers()
CASES = list(cases())


def _loadable(name: str) -> None:
    """Skip a solver whose optional extra is not installed."""
    from memplan.errors import ConfigError
    from memplan.solver import solver_class

    try:
        solver_class(name)
    except ConfigError as error:
        if required_extra(name):
            pytest.skip(f"{name}: optional extra missing ({error})")
        raise


def test_tiny_graphs_present_and_round_trip() -> None:
    graphs = tiny_graphs()
    assert len(graphs) >= 8
    for graph in graphs:
        assert graph_from_json(graph_to_json(graph)) == graph
    assert len(CASES) == (len(graphs) + 4) * 2 * len(CAPACITIES)


@pytest.mark.parametrize("name", SOLVERS)
def test_solver_protocol(name: str) -> None:
    _loadable(name)
    check_solver_class(name)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("name", SOLVERS)
def test_solver_case(name: str, case: Case) -> None:
    _loadable(name)
    check_case(name, case, time_limit_s=10.0)


def test_check_solver_whole_suite_on_greedy_instance() -> None:
    """The third-party entry point accepts an instance and counts its cases."""
    from memplan.solver import make_solver

    solver = make_solver(
        "greedy", {"order": "dfs", "replacement": "belady-size", "allocator": "online"}
    )
    graphs = tiny_graphs()
    assert check_solver(solver, graphs=graphs) == len(graphs) * 2 * len(CAPACITIES)


def test_suite_catches_a_broken_solver() -> None:
    """A solver that reports a wrong cost must fail the suite (the checks can fail)."""
    import dataclasses

    from memplan.solver import Budget, SolveResult, make_solver

    @dataclasses.dataclass(frozen=True)
    class Liar:
        name = "greedy"
        seed: int = 0

        def solve(self, problem, budget: Budget) -> SolveResult:  # type: ignore[no-untyped-def]
            result = make_solver("greedy").solve(problem, budget)
            if result.cost is None:
                return result
            cost = dataclasses.replace(result.cost, traffic_bytes=result.cost.traffic_bytes + 1)
            return dataclasses.replace(result, cost=cost)

    case = next(c for c in CASES if c.capacity_spec == "MR")
    with pytest.raises(AssertionError, match="reported cost"):
        check_case(Liar(), case)
