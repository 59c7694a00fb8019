"""Tests of the divide-and-conquer solver: parts under fixed boundaries, cuts, windows."""

from __future__ import annotations

import random
import threading

import pytest
from helpers import random_graph

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.cut import PartSpec, crossing_bytes, join, required_state, restrict, split
from memplan.ir import OpId
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status, make_solver
from memplan.testing import min_traffic, tiny_spill_graph
from memplan.validate import validate

pytest.importorskip("ortools")

import itertools

from memplan.solvers.dnc import DncSolver
from memplan.solvers.dnc.cuts import choose_cuts
from memplan.solvers.dnc.part_model import part_traffic, solve_part

KIB = 1024


def tiny_problem(seed: int, scope: Scope, extra_kib: int = 0) -> Problem:
    problem = Problem(tiny_spill_graph(seed, 5), Accelerator("tiny", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes + extra_kib * KIB)


def greedy_case(seed: int, budget: str, n_ops: int = 18) -> tuple[Problem, object]:
    scope = (Scope.ACTIVATIONS, Scope.ALL)[seed % 2]
    base = Problem(random_graph(seed, n_ops), Accelerator("t", 0, 64), scope)
    problem = base.with_capacity(resolve_budget(budget, base).capacity_bytes)
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=30)).plan
    assert plan is not None
    return problem, plan


CASES = [(1, Scope.ACTIVATIONS, 0), (3, Scope.ACTIVATIONS, 1), (4, Scope.ALL, 0), (4, Scope.ALL, 1)]


@pytest.mark.parametrize(("seed", "scope", "extra_kib"), CASES)
def test_one_part_equals_the_ilp_optimum(seed, scope, extra_kib):
    """With one part (the whole graph, empty boundaries) dnc finds the free-order optimum
    that the ilp proves and that enumeration confirms."""
    problem = tiny_problem(seed, scope, extra_kib)
    optimum = min_traffic(problem)
    ilp = make_solver("ilp", {"hint": "false"}).solve(problem, Budget(time_limit_s=60))
    assert ilp.status is Status.OPTIMAL and ilp.cost.non_compulsory_bytes == optimum
    result = DncSolver(part_ops=100, window_ops=100).solve(problem, Budget(time_limit_s=60))
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert validate(problem, result.plan) == []
    assert result.cost.non_compulsory_bytes == optimum


@pytest.mark.parametrize("seed", range(12))
def test_parts_solved_with_fixed_boundaries_stitch_into_a_valid_plan(seed):
    """Cut greedy's plan into parts, re-solve each part on its own under the boundaries
    the plan gives it (entering state, required leaving state), join: the result is one
    valid plan, and it moves no more bytes than greedy's."""
    problem, plan = greedy_case(seed, ("MR", "MH")[seed % 2])
    n = len(plan.order)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, n), 3))
    parts = split(problem, plan, cuts)
    solved = []
    for part in parts:
        later = frozenset(OpId(o) for o in plan.order[part.end :])
        spec = PartSpec(
            problem, part.order, later, part.entering, required_state(problem, plan, part.end)
        )
        outcome = solve_part(
            spec,
            part.order,
            fixed_order=seed % 3 == 0,
            hint=part.pieces,
            time_limit_s=30,
            deterministic_s=5,
            stop_event=None,
        )
        assert outcome.part is not None, outcome.status
        assert outcome.traffic_bytes == part_traffic(problem, outcome.part.pieces)
        assert outcome.traffic_bytes <= part_traffic(problem, part.pieces)
        solved.append(outcome.part)
    joined = join(problem, solved)
    assert validate(problem, joined) == []
    assert (
        evaluate(problem, joined).non_compulsory_bytes
        <= evaluate(problem, plan).non_compulsory_bytes
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_window_keeps_the_rest_of_the_plan(seed):
    problem, plan = greedy_case(seed, "MR")
    n = len(plan.order)
    start, end = n // 3, 2 * n // 3
    old = restrict(problem, plan, start, end)
    spec = PartSpec(
        problem,
        old.order,
        frozenset(OpId(o) for o in plan.order[end:]),
        old.entering,
        required_state(problem, plan, end),
    )
    outcome = solve_part(
        spec, old.order, fixed_order=False, hint=old.pieces, time_limit_s=30,
        deterministic_s=5, stop_event=None,
    )  # fmt: skip
    assert outcome.part is not None
    joined = join(
        problem, [restrict(problem, plan, 0, start), outcome.part, restrict(problem, plan, end, n)]
    )
    assert joined.order[:start] == plan.order[:start] and joined.order[end:] == plan.order[end:]
    assert sorted(joined.order[start:end]) == sorted(plan.order[start:end])
    outside = [r for r in plan.residencies if r.end <= start or r.start >= end]
    assert set(outside) <= set(joined.residencies)


@pytest.mark.parametrize("seed", range(6))
def test_dnc_never_worse_than_its_greedy_start_and_reproducible(seed):
    problem, _ = greedy_case(seed, ("MR", "MH")[seed % 2], n_ops=30)
    solver = DncSolver(part_ops=10, window_ops=8, max_windows=12, seed=seed)
    first = solver.solve(problem, Budget(time_limit_s=120))
    assert validate(problem, first.plan) == []
    assert first.cost.non_compulsory_bytes <= min(first.stats["greedy_bytes"].values())
    assert first.stats["rejected"] == 0
    again = DncSolver(part_ops=10, window_ops=8, max_windows=12, seed=seed).solve(
        problem, Budget(time_limit_s=120)
    )
    assert again.plan == first.plan


def test_a_stop_request_returns_the_best_plan_at_once():
    problem, _ = greedy_case(2, "MR", n_ops=60)
    budget = Budget(time_limit_s=300)
    threading.Timer(1.5, budget.stop_event.set).start()
    result = DncSolver(window_ops=12).solve(problem, budget)
    assert result.wall_s < 30
    assert validate(problem, result.plan) == []
    if result.cost.non_compulsory_bytes > 0:
        assert result.status is Status.TIMEOUT and "interrupted" in result.message


@pytest.mark.parametrize("seed", range(10))
def test_cuts_keep_parts_within_bounds_and_prefer_narrow_places(seed):
    rng = random.Random(seed)
    n = rng.randint(30, 90)
    crossing = [0] + [rng.randint(1, 50) for _ in range(n - 1)] + [0]
    part_ops = rng.randint(4, 12)
    cuts = choose_cuts(crossing, part_ops)
    points = [0, *cuts, n]
    lengths = [b - a for a, b in itertools.pairwise(points)]
    assert all(part_ops // 2 <= length <= part_ops + part_ops // 2 for length in lengths)
    # No single cut can move to a cheaper place within the bounds.
    for i, c in enumerate(cuts):
        low = max(points[i] + part_ops // 2, points[i + 2] - part_ops - part_ops // 2)
        high = min(points[i] + part_ops + part_ops // 2, points[i + 2] - part_ops // 2)
        assert crossing[c] == min(crossing[low : high + 1])


def test_crossing_bytes_counts_tensors_live_across_each_cut():
    problem, plan = greedy_case(1, "MH")
    crossing = crossing_bytes(problem, plan.order)
    assert crossing[0] == 0 and crossing[-1] == 0
    from memplan.analysis import tensor_lifetimes

    spans = tensor_lifetimes(problem.graph, plan.order, problem.in_scope)
    for c in range(len(plan.order) + 1):
        expected = sum(
            problem.aligned_sizes_bytes[t]
            for t, span in enumerate(spans)
            if span is not None and span[0] < c < span[1]
        )
        assert crossing[c] == expected
