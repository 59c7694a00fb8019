"""The bounds from parts (solvers/dnc/bound.py): one part, and parts that own disjoint
tensors, added. Never above the whole optimum, and tight where a large tensor is read
far apart (the NASNet stem), once per stem when there are several."""

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

from memplan.cost import evaluate
from memplan.solvers.dnc.bound import (
    additive_bound,
    busiest_window,
    moved_bytes_per_tensor,
    part_bound,
    tensor_owners,
    weights_streamed,
    window_bound,
)
from memplan.solvers.dnc.search import RunSettings, part_solver_class
from memplan.validate import validate

KIB = 1024


def settings(fixed_order: bool = False) -> RunSettings:
    return RunSettings(part_solver_class(), fixed_order, work_s=5.0, workers=1, seed=0)


def tiny_at_mr(seed: int, n_ops: int) -> Problem:
    scope = (Scope.ACTIVATIONS, Scope.ALL)[seed % 2]
    problem = Problem(tiny_spill_graph(seed, n_ops), Accelerator("t", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes)


def whole_optimum(problem: Problem, n_ops: int) -> int | None:
    """The optimum over all plans: enumerated up to 6 ops, proven by the ilp above."""
    if n_ops <= 6:
        return min_traffic(problem)
    ilp = make_solver("ilp", {}).solve(problem, Budget(time_limit_s=60))
    assert ilp.status is Status.OPTIMAL and ilp.cost is not None
    return ilp.cost.non_compulsory_bytes


@pytest.mark.parametrize(("seed", "n_ops"), [(1, 6), (4, 6), (0, 10), (5, 10), (11, 10)])
def test_no_part_proves_more_than_the_whole_optimum(seed: int, n_ops: int) -> None:
    """Windows of an order, also under inner=ilp-fixed settings (the bound runs over
    every order of the part anyway), prove at most the whole graph's optimum (found by
    enumeration on 6 ops, proven by the ilp on 10); the whole graph's relaxation is
    solved to optimality and proves something wherever the optimum is not 0."""
    problem = tiny_at_mr(seed, n_ops)
    optimum = whole_optimum(problem, n_ops)
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


def stem_graph(stems: int = 1) -> Problem:
    """``stems`` times in a row: a 4 KiB tensor ``s`` read by three branches; each
    branch's second op needs 5 KiB besides ``s``, and the capacity is 8 KiB: ``s`` must
    be off chip during each branch but the last, so (one stem) it is stored once and
    loaded twice (12 KiB) in every order, and the branches' 1 KiB results wait for the
    join.
    A tail of small ops follows (the part must find the busy steps)."""
    b = GraphBuilder("stem")
    prev = b.tensor("x", KIB, TensorKind.INPUT)
    for k in range(stems):
        s = b.tensor(f"s{k}", 4 * KIB)
        b.op(f"stem{k}", "Conv", [prev], [s])
        ends = []
        for i in range(3):
            r = b.tensor(f"r{k}.{i}", 4 * KIB)
            b.op(f"relu{k}.{i}", "Relu", [s], [r])
            c = b.tensor(f"c{k}.{i}", KIB)
            b.op(f"conv{k}.{i}", "Conv", [r], [c])
            ends.append(c)
        prev = b.tensor(f"joined{k}", KIB)
        b.op(f"join{k}", "Concat", ends, [prev])
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


@pytest.mark.parametrize("seed", range(10))
def test_moved_bytes_per_tensor_add_up_to_the_plans_score(seed: int) -> None:
    problem = tiny_at_mr(seed, 10)
    for solver in ("greedy", "dnc"):
        plan = make_solver(solver, {}).solve(problem, Budget(time_limit_s=10)).plan
        assert plan is not None
        moved = moved_bytes_per_tensor(problem, plan)
        assert sum(moved.values()) == evaluate(problem, plan).non_compulsory_bytes
        assert all(nbytes > 0 for nbytes in moved.values())


def test_each_tensor_has_one_owner_the_run_that_holds_it_longest() -> None:
    problem = stem_graph(2)
    order = list(range(problem.graph.num_ops))  # the model's order is topological
    owners = tensor_owners(problem, order, [4, 8, 12, 16])
    touched = {t for op in problem.graph.ops for t in (*op.inputs, *op.outputs)}
    assert set(owners) == touched
    name = {t.name: t.id for t in problem.graph.tensors}
    # s0 is touched at steps 0, 1, 3, 5: runs 0 (span 3) and 1 (span 0)
    assert owners[name["s0"]] == 0
    # joined0 at steps 7 (run 1) and 8 (run 2): a tie, the later run
    assert owners[name["joined0"]] == 2


@pytest.mark.parametrize(("seed", "n_ops"), [(1, 6), (4, 6), (0, 10), (3, 10), (5, 10), (11, 10)])
@pytest.mark.parametrize("width", [2, 3, 4])
def test_parts_added_never_exceed_the_whole_optimum(seed: int, n_ops: int, width: int) -> None:
    """Lemma 2: the parts' bounds add up to at most the optimum over all plans
    (enumerated on 6 ops, proven by the ilp on 10), for runs of any width over the
    orders of greedy's and dnc's plans."""
    problem = tiny_at_mr(seed, n_ops)
    optimum = whole_optimum(problem, n_ops)
    assert optimum is not None
    for solver in ("greedy", "dnc"):
        plan = make_solver(solver, {}).solve(problem, Budget(time_limit_s=10)).plan
        assert plan is not None
        found = additive_bound(problem, plan, width, settings(), Budget(time_limit_s=60))
        total = 0 if found is None else found.bound_bytes
        assert total <= optimum
        if found is not None:
            assert total == sum(part.bound_bytes for part in found.parts)
            assert found.solved == found.to_solve
        # Lemma 3: with weights streamed (a no-op in activations scope)
        relaxed, relaxed_plan = weights_streamed(problem, plan)
        streamed = additive_bound(relaxed, relaxed_plan, width, settings(), Budget(60))
        assert streamed is None or streamed.bound_bytes <= optimum


@pytest.mark.parametrize("seed", range(8))
def test_weights_streamed_is_a_valid_relaxation(seed: int) -> None:
    """Lemma 3: an all-scope plan without its weights' stays is a valid plan of the
    activations-scope problem at the same capacity, moving at most as much; so that
    problem's optimum is a bound of the all-scope one (enumerated on 6 ops)."""
    problem = Problem(tiny_spill_graph(seed, 6), Accelerator("t", 1 << 20, KIB), Scope.ALL)
    problem = problem.with_capacity(problem.min_resident_bytes)
    plan = make_solver("greedy", {}).solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    relaxed, relaxed_plan = weights_streamed(problem, plan)
    assert relaxed.scope is Scope.ACTIVATIONS
    assert relaxed.capacity_bytes == problem.capacity_bytes
    assert validate(relaxed, relaxed_plan) == []
    moved = evaluate(relaxed, relaxed_plan).non_compulsory_bytes
    assert moved <= evaluate(problem, plan).non_compulsory_bytes
    relaxed_optimum, optimum = min_traffic(relaxed), min_traffic(problem)
    assert relaxed_optimum is not None and optimum is not None
    assert relaxed_optimum <= optimum
    same = tiny_at_mr(0, 6)  # activations scope: nothing to relax
    assert weights_streamed(same, plan)[0] is same


def test_two_stems_prove_twice_what_one_part_proves() -> None:
    """Two stems one after the other, 18 ops: one part of 8 steps proves one stem's
    16 KiB; runs of about 8 steps that own disjoint tensors (the tensor between the
    stems crosses the cut) prove both, 32 KiB: the optimum, which the ilp proves."""
    problem = stem_graph(2)
    plan = make_solver("greedy", {}).solve(problem, Budget(time_limit_s=30)).plan
    assert plan is not None
    one = part_bound(problem, plan, 8, settings(), Budget(time_limit_s=30))
    assert one is not None and one.bound_bytes == 16 * KIB
    both = additive_bound(problem, plan, 8, settings(), Budget(time_limit_s=60))
    assert both is not None and both.bound_bytes == 32 * KIB
    assert [part.steps for part in both.parts] == [(0, 8), (8, 18)]  # cut where 1 KiB crosses
    ilp = make_solver("ilp", {}).solve(problem, Budget(time_limit_s=60))
    assert ilp.status is Status.OPTIMAL and ilp.cost is not None
    assert ilp.cost.non_compulsory_bytes == 32 * KIB


def test_a_stopped_additive_bound_is_none_or_still_a_bound() -> None:
    problem = stem_graph(2)
    plan = make_solver("greedy", {}).solve(problem, Budget(time_limit_s=30)).plan
    assert plan is not None
    budget = Budget(time_limit_s=30)
    budget.stop_event.set()
    assert additive_bound(problem, plan, 8, settings(), budget) is None


def test_dnc_proves_a_chain_of_stems_optimal_with_the_parts_added() -> None:
    """17 stems, 138 ops (over the size the interval phase takes whole, so the parts'
    bound runs at the end): every stem forces 16 KiB, greedy's plan moves exactly that,
    and the runs that own disjoint tensors prove it, where the other bounds prove 12 KiB."""
    problem = stem_graph(17)
    result = make_solver("dnc", {}).solve(problem, Budget(time_limit_s=10))
    assert result.cost is not None and result.status is Status.OPTIMAL
    assert result.cost.non_compulsory_bytes == result.lower_bound_bytes == 17 * 16 * KIB
    assert "own disjoint tensors, added" in result.stats["bound_method"]
