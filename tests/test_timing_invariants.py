"""The timing models on random plans: every rule of PROBLEM.md section 7 holds
(:func:`timing_rules.check_overlap_rules`), and the overlap latency sits between the
serial one and what any schedule needs.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from timing_examples import random_problems, section7_plan, section7_problem
from timing_rules import EPS, check_overlap_rules

from memplan.cost import evaluate
from memplan.fallback import spill_everything_plan
from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem
from memplan.solver import Budget, make_solver
from memplan.timing import simulate

PROBLEMS = random_problems()


def _plans(problem: Problem) -> list[Plan]:
    result = make_solver("greedy").solve(problem, Budget())
    assert result.plan is not None
    order = result.plan.order
    return [result.plan, spill_everything_plan(problem, order)]


@pytest.mark.parametrize(("name", "problem"), PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_overlap_follows_the_rules_and_sits_between_the_bounds(name, problem) -> None:
    for plan in _plans(problem):
        overlap = simulate(problem, plan, "overlap")
        serial = simulate(problem, plan, "serial")
        check_overlap_rules(problem, plan, overlap)
        assert overlap.latency_s <= serial.latency_s + EPS
        assert overlap.latency_s >= max(overlap.compute_s, overlap.dma_busy_s) - EPS
        # Serial: compute plus every transfer, nothing hidden.
        assert serial.latency_s == pytest.approx(serial.compute_s + serial.dma_busy_s)
        assert serial.hidden_dma_share == pytest.approx(0.0, abs=1e-9)
        assert overlap.dma_busy_s == pytest.approx(serial.dma_busy_s)
        assert 0.0 <= overlap.hidden_dma_share <= 1.0
        assert sum(overlap.step_stall_s) + overlap.tail_s == pytest.approx(overlap.stall_s)
        # The cost model: the same traffic whichever model latency_s uses.
        by_overlap, by_serial = evaluate(problem, plan), evaluate(problem, plan, "serial")
        assert by_overlap.latency_s == pytest.approx(overlap.latency_s)
        assert by_serial.latency_s == pytest.approx(serial.latency_s)
        for field in ("traffic_bytes", "non_compulsory_bytes", "peak_bytes", "energy_j"):
            assert getattr(by_overlap, field) == getattr(by_serial, field)


def test_serial_latency_is_the_per_step_sum() -> None:
    """The serial model equals the per-step rule: compute + loads, weights and stores."""
    for _, problem in PROBLEMS[:8]:
        plan = _plans(problem)[0]
        acc = problem.accelerator
        total = sum(problem.graph.ops[op].macs for op in plan.order) / acc.mac_per_s
        sizes = problem.graph.tensors
        moved = sum(
            sizes[r.tensor].size_bytes * ((r.arrive is Arrive.LOAD) + (r.leave is Leave.STORE))
            for r in plan.residencies
        )
        moved += sum(problem.streamed_weight_bytes(op) for op in plan.order)
        expected = total + moved / acc.dram_bytes_per_s
        assert evaluate(problem, plan, "serial").latency_s == pytest.approx(expected)


def test_the_rule_checker_catches_a_wrong_timeline() -> None:
    """The checker is not vacuous: a served-out-of-turn or late-started timeline fails."""
    problem = section7_problem()
    plan = section7_plan(problem, x_start=0)  # in0 and x both ready at 0
    timeline = simulate(problem, plan)
    check_overlap_rules(problem, plan, timeline)
    first, second, *rest = timeline.transfers
    # Serve x (deadline 5) before in0 (deadline 0), times consistent with that order.
    swapped = (
        replace(second, issue_s=0.0, finish_s=second.duration_s),
        replace(first, issue_s=second.duration_s, finish_s=second.duration_s + first.duration_s),
        *rest,
    )
    with pytest.raises(AssertionError, match="was ready before"):
        check_overlap_rules(problem, plan, replace(timeline, transfers=swapped))
    late = (timeline.step_start_s[0] + 0.1, *timeline.step_start_s[1:])
    with pytest.raises(AssertionError):
        check_overlap_rules(problem, plan, replace(timeline, step_start_s=late))
