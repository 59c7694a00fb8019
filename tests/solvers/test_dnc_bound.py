"""The bound from one part (solvers/dnc/bound.py): never above the whole optimum, and
tight where a large tensor is read far apart (the NASNet stem)."""

from __future__ import annotations

import pytest

from memplan.accelerator import Accelerator
from memplan.analysis import named_order
from memplan.ir import GraphBuilder, TensorKind
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status, make_solver
from memplan.testing import min_traffic, tiny_spill_graph
from memplan.traffic_bound import traffic_lower_bound

pytest.importorskip("ortools")

from memplan.solvers.dnc.bound import busiest_window, part_bound, window_bound
from memplan.solvers.dnc.search import RunSettings, part_solver_class

KIB = 1024


def settings(fixed_order: bool = False) -> RunSettings:
    return RunSettings(part_solver_class(), fixed_order, work_s=5.0, workers=1, seed=0)


def tiny_at_mr(seed: int, n_ops: int) -> Problem:
    scope = (Scope.ACTIVATIONS, Scope.ALL)[seed % 2]
    problem = Problem(tiny_spill_graph(seed, n_ops), Accelerator("t", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes)


@pytest.mark.parametrize(("seed", "n_ops"), [(1, 6), (4, 6), (0, 10), (5, 10), (11, 10)])
def test_no_part_proves_more_than_the_whole_optimum(seed: int, n_ops: int) -> None:
    """Windows of an order, also under inner=ilp-fixed settings (the bound runs over
    every order of the part anyway), prove at most the whole graph's optimum (found by
    enumeration on 6 ops, proven by the ilp on 10); the whole graph's relaxation is
    solved to optimality and proves something wherever the optimum is not 0."""
    problem = tiny_at_mr(seed, n_ops)
    if n_ops <= 6:
        optimum = min_traffic(problem)
    else:
        ilp = make_solver("ilp", {}).solve(problem, Budget(time_limit_s=60))
        assert ilp.status is Status.OPTIMAL and ilp.cost is not None
        optimum = ilp.cost.non_compulsory_bytes
    assert optimum is not None and optimum > 0
    order = named_order(problem.graph, "rpo", problem.aligned_sizes_bytes, problem.in_scope)
    n = len(order)
    windows = [(0, 3), (2, 5), (n - 3, n), (1, n), (0, n)]
    for k, (start, end) in enumerate(windows):
        fixed = k % 2 == 1
        found = window_bound(problem, order, start, end, settings(fixed), Budget(30))
        assert found is not None and found.steps == (start, end) and found.optimal
        assert 0 <= found.bound_bytes <= optimum
    assert found.bound_bytes > 0  # the whole graph, without offsets


def stem_graph() -> Problem:
    """A 4 KiB tensor ``s`` read by three branches; each branch's second op needs 5 KiB
    besides ``s``, and the capacity is 8 KiB: ``s`` must be off chip during each branch
    but the last, so it is stored once and loaded twice (12 KiB) in every order, and the
    branches' 1 KiB results wait for the join.
    A tail of small ops follows (the part must find the busy steps)."""
    b = GraphBuilder("stem")
    x = b.tensor("x", KIB, TensorKind.INPUT)
    s = b.tensor("s", 4 * KIB)
    b.op("stem", "Conv", [x], [s])
    ends = []
    for i in range(3):
        r = b.tensor(f"r{i}", 4 * KIB)
        b.op(f"relu{i}", "Relu", [s], [r])
        c = b.tensor(f"c{i}", KIB)
        b.op(f"conv{i}", "Conv", [r], [c])
        ends.append(c)
    prev = b.tensor("joined", KIB)
    b.op("join", "Concat", ends, [prev])
    for i in range(2):
        out = b.tensor(f"t{i}", KIB, is_output=i == 1)
        b.op(f"tail{i}", "Relu", [prev], [out])
        prev = out
    problem = Problem(b.build(), Accelerator("t", 1 << 20, KIB), Scope.ACTIVATIONS)
    return problem.with_capacity(8 * KIB)


def test_a_part_around_the_stem_proves_its_store_and_two_loads() -> None:
    problem = stem_graph()
    plan = make_solver("greedy", {}).solve(problem, Budget(time_limit_s=30)).plan
    assert plan is not None
    start, end = busiest_window(problem, plan, 8)
    assert (start, end) == (0, 8)  # stem, the three branches, the join
    found = part_bound(problem, plan, 8, settings(), Budget(time_limit_s=30))
    assert found is not None and found.optimal
    ilp = make_solver("ilp", {}).solve(problem, Budget(time_limit_s=60))
    assert ilp.status is Status.OPTIMAL and ilp.cost is not None
    assert found.bound_bytes == ilp.cost.non_compulsory_bytes  # the part's bound is tight
    assert found.bound_bytes >= 12 * KIB  # at least s stored once and loaded twice
    regions = traffic_lower_bound(problem, plan.order)
    assert regions.bound_bytes < found.bound_bytes  # the crowded regions see less
