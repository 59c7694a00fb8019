"""Large greedy plans on long random DAGs, for benchmarks of the plan checkers.

The validator, the cost model and the timing models are measured on a plan of about
100,000 residencies: a network-like random DAG (:func:`memplan.testing.random_dag`)
planned by the ``greedy`` solver in ``all`` scope at twice M_R, where it spills often.
"""

from __future__ import annotations

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.problem import Problem, Scope
from memplan.solver import Budget, SolveResult, make_solver
from memplan.testing.graphs import random_dag


def large_random_plan(target_residencies: int, seed: int = 7) -> tuple[Problem, SolveResult]:
    """A greedy result with at least ``target_residencies`` residencies, and its problem.

    Grows the graph (about three residencies per op to start with) until the plan is
    large enough; the same arguments give the same plan.
    """
    n_ops = max(10, target_residencies // 3)
    while True:
        graph = random_dag(seed, n_ops, max_size_bytes=4096)
        problem = Problem(graph, Accelerator("bench", 0), Scope.ALL)
        problem = problem.with_capacity(resolve_budget("MR", problem).capacity_bytes * 2)
        result = make_solver("greedy").solve(problem, Budget())
        assert result.plan is not None, "greedy always plans at a capacity >= M_R"
        if len(result.plan.residencies) >= target_residencies:
            return problem, result
        n_ops = int(n_ops * target_residencies / len(result.plan.residencies)) + 100
