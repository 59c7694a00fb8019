"""The prefetch pass: earlier loads, same traffic, never slower, always valid."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from timing_examples import random_problems, section7_plan, section7_problem
from timing_rules import EPS, check_overlap_rules

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.plan import Arrive, Plan
from memplan.problem import Problem
from memplan.solver import Budget, Status, make_solver
from memplan.solvers.prefetch import moved_residencies, prefetch
from memplan.testing import random_dag
from memplan.timing import simulate
from memplan.validate import validate

X = 1  # tensor id of x in the section 7 example
PROBLEMS = random_problems()


def _x(plan: Plan):
    [x] = [r for r in plan.residencies if r.tensor == X]
    return x


def test_section_example_load_moves_behind_enough_compute() -> None:
    problem = section7_problem()
    plan = section7_plan(problem, x_start=5)
    result = prefetch(problem, plan)
    # x needs 1.5 s of compute before step 5: steps 3 and 4 (2 s); its addresses are
    # free, so it starts at 3 in place and the whole load hides: 0.5 + 5.5 + 0.2 s.
    assert (result.latency_before_s, result.latency_after_s) == pytest.approx((7.7, 6.2))
    assert (_x(result.plan).start, _x(result.plan).offset) == (3, 8192)
    assert (result.moved_loads, result.moved_steps, result.replaced) == (1, 2, False)
    assert result.candidate == "same offsets, window 1x"
    assert validate(problem, result.plan) == []
    before, after = evaluate(problem, plan), evaluate(problem, result.plan)
    assert after.traffic_bytes == before.traffic_bytes
    assert after.latency_s == pytest.approx(6.2)


def test_blocked_addresses_are_freed_by_placing_again() -> None:
    problem = section7_problem()
    # x at 2048 overlaps a1 ([2048, 2148), steps [1, 3)) and a2 ([3072, 3172), [2, 4)):
    # in place it can start at 4 only (0.5 s stall); placed again, at 3 (no stall).
    plan = section7_plan(problem, x_start=5, x_offset=2048)
    placed = prefetch(problem, plan, allocator="first-fit-decreasing", window_factors=(1.0,))
    assert placed.replaced
    assert placed.latency_after_s == pytest.approx(6.2)
    assert _x(placed.plan).start == 3
    assert validate(problem, placed.plan) == []
    only_same_offsets = prefetch(
        problem, plan, allocator="first-fit-decreasing", window_factors=(1.0,), fill_shares=()
    )
    assert (_x(only_same_offsets.plan).start, only_same_offsets.replaced) == (4, False)
    assert only_same_offsets.latency_after_s == pytest.approx(6.7)


def test_nothing_to_gain_returns_the_input_plan() -> None:
    problem = section7_problem()
    plan = section7_plan(problem, x_start=0)  # x already loaded at the start
    result = prefetch(problem, plan)
    assert result.plan is plan
    assert (result.moved_loads, result.candidate) == (0, "input plan")
    assert result.latency_after_s == result.latency_before_s


def test_a_stopped_budget_keeps_the_input_plan() -> None:
    problem = section7_problem()
    plan = section7_plan(problem, x_start=5)
    stop = threading.Event()
    stop.set()
    result = prefetch(problem, plan, Budget(stop_event=stop))
    assert result.timed_out and result.plan is plan


def _signature(plan: Plan) -> Counter:
    """What the pass must keep: each stay's tensor, end, arrival and departure."""
    return Counter((r.tensor, r.end, r.arrive, r.leave) for r in plan.residencies)


@pytest.mark.parametrize(("name", "problem"), PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_random_plans_get_no_slower_with_the_same_traffic(name, problem: Problem) -> None:
    plan = make_solver("greedy").solve(problem, Budget()).plan
    assert plan is not None
    result = prefetch(problem, plan)
    assert validate(problem, result.plan) == []
    assert result.plan.order == plan.order
    assert _signature(result.plan) == _signature(plan)
    before, after = evaluate(problem, plan), evaluate(problem, result.plan)
    for field in ("traffic_bytes", "loaded_bytes", "stored_bytes", "non_compulsory_bytes"):
        assert getattr(after, field) == getattr(before, field)
    assert result.latency_before_s == pytest.approx(before.overlap_latency_s)
    assert result.latency_after_s == pytest.approx(after.overlap_latency_s)
    assert result.latency_after_s <= result.latency_before_s + EPS
    moved = moved_residencies(plan, result.plan)
    assert all(r.arrive is Arrive.LOAD and r.start < old for r, old in moved)
    assert len(moved) == result.moved_loads
    # Prefetched loads start before their first read: the timing rules still hold.
    check_overlap_rules(problem, result.plan, simulate(problem, result.plan, "overlap"))


def test_prefetch_helps_on_random_plans() -> None:
    """Not vacuous: on these random spilling plans most instances get faster."""
    faster = 0
    for _, problem in PROBLEMS:
        plan = make_solver("greedy").solve(problem, Budget()).plan
        result = prefetch(problem, plan)
        faster += result.latency_after_s < result.latency_before_s * (1 - 1e-9)
    assert faster >= len(PROBLEMS) // 2


def test_greedy_objective_latency_prefetches_at_the_same_traffic() -> None:
    for _, problem in PROBLEMS[::3]:
        traffic = make_solver("greedy").solve(problem, Budget())
        latency = make_solver("greedy", {"objective": "latency"}).solve(problem, Budget())
        assert latency.plan is not None and traffic.cost is not None and latency.cost is not None
        assert latency.cost.non_compulsory_bytes == traffic.cost.non_compulsory_bytes
        assert latency.cost.overlap_latency_s <= traffic.cost.overlap_latency_s + EPS
        assert latency.status is Status.FEASIBLE  # latency is never proven optimal
        assert latency.stats["prefetch_latency_after_s"] == pytest.approx(
            latency.cost.overlap_latency_s
        )


def test_greedy_objective_latency_ranks_tied_orders_by_latency() -> None:
    """Traffic first, then latency: here both orders move no extra byte; the min-peak
    order was kept for its lower peak and prefetched alone (410.4 s), where the model
    order's prefetched plan takes 390.1 s."""
    graph = random_dag(46, 30)
    accelerator = Accelerator("r", 0, dram_bytes_per_s=1e3, mac_per_s=1e3)
    base = Problem(graph, accelerator.with_timing_model("overlap"))
    problem = base.with_capacity(resolve_budget("2*MP", base).capacity_bytes)
    by_order = {
        order: make_solver("greedy", {"objective": "latency", "order": order}).solve(
            problem, Budget()
        )
        for order in ("model", "min-peak")
    }
    costs = {order: r.cost for order, r in by_order.items() if r.cost is not None}
    assert costs["model"].non_compulsory_bytes == costs["min-peak"].non_compulsory_bytes == 0
    assert costs["model"].overlap_latency_s < costs["min-peak"].overlap_latency_s - 1
    assert costs["model"].peak_bytes > costs["min-peak"].peak_bytes
    auto = make_solver("greedy", {"objective": "latency"}).solve(problem, Budget())
    assert auto.cost is not None and validate(problem, auto.plan) == []
    assert auto.cost.non_compulsory_bytes == 0
    assert auto.cost.overlap_latency_s == pytest.approx(costs["model"].overlap_latency_s)
    assert auto.stats["order"] == "model"
    assert set(auto.stats["orders_tried"]) == {"model", "min-peak"}
