"""The timing models on random plans: every rule of PROBLEM.md section 7 holds, and
the overlap latency sits between the serial one and what any schedule needs.

:func:`check_overlap_rules` re-derives, from the timeline's own step times, when each
transfer was ready, which step waits for it, that the engine ran one transfer at a time
and never left a ready transfer with a better claim waiting (first come, first served;
ties to the earlier deadline, then the lower tensor id), and when each step started. It
shares no code with the simulator, so it checks it.
"""

from __future__ import annotations

import pytest

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.fallback import spill_everything_plan
from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem, Scope
from memplan.solver import Budget, make_solver
from memplan.testing import random_dag
from memplan.timing import Timeline, TransferKind, simulate

EPS = 1e-12


def _problems() -> list[tuple[str, Problem]]:
    out = []
    for seed in range(6):
        graph = random_dag(seed, 24 + 4 * seed)
        for scope in (Scope.ACTIVATIONS, Scope.ALL):
            acc = Accelerator(
                "random",
                0,
                dram_bytes_per_s=1e6 * (1 + seed % 3),
                mac_per_s=1e5,
                timing_model="overlap",
            )
            base = Problem(graph, acc, scope)
            for budget in ("MR", "MH"):
                capacity = resolve_budget(budget, base).capacity_bytes
                out.append((f"{seed}-{scope.value}-{budget}", base.with_capacity(capacity)))
    return out


PROBLEMS = _problems()


def _plans(problem: Problem) -> list[Plan]:
    result = make_solver("greedy").solve(problem, Budget())
    assert result.plan is not None
    order = result.plan.order
    return [result.plan, spill_everything_plan(problem, order)]


def _first_read(problem: Problem, plan: Plan, tensor: int, start: int, end: int) -> int | None:
    for step in range(start, end):
        if tensor in problem.graph.ops[plan.order[step]].inputs:
            return step
    return None


def check_overlap_rules(problem: Problem, plan: Plan, timeline: Timeline) -> None:
    """Assert that ``timeline`` follows every rule of the overlap model for ``plan``."""
    graph, acc = problem.graph, problem.accelerator
    n = len(plan.order)
    start, end = timeline.step_start_s, timeline.step_end_s

    def e(step: int) -> float:
        return end[step] if step >= 0 else 0.0

    def s(step: int) -> float:
        return start[step] if step >= 0 else 0.0

    # The transfers: one per load and per store residency, one per streamed weight read.
    expected = []
    for i, r in enumerate(plan.residencies):
        if r.arrive is Arrive.LOAD:
            due = _first_read(problem, plan, r.tensor, r.start, r.end)
            expected.append(
                (TransferKind.LOAD, i, e(r.start - 1), due, r.end if due is None else due)
            )
        if r.leave is Leave.STORE:
            ready = e(r.start) if r.arrive is Arrive.PRODUCE else s(r.start)
            expected.append((TransferKind.STORE, i, ready, r.end, r.end))
    for step, op in enumerate(plan.order):
        for t in dict.fromkeys(graph.ops[op].inputs):
            if graph.tensors[t].kind is TensorKind.WEIGHT and not problem.in_scope[t]:
                expected.append((TransferKind.STREAM, (step, t), s(step - 1), step, step))
    got = {
        (tr.kind, tr.residency if tr.residency is not None else (tr.waited_by_step, tr.tensor)): tr
        for tr in timeline.transfers
    }
    assert len(got) == len(timeline.transfers) == len(expected)
    rank = {}
    for kind, key, ready, due, tie in expected:
        tr = got[(kind, key)]
        assert tr.ready_s == pytest.approx(ready, abs=EPS), (kind, key)
        assert tr.waited_by_step == due, (kind, key)
        assert tr.duration_s == pytest.approx(tr.size_bytes / acc.dram_bytes_per_s)
        rank[id(tr)] = (tie, int(tr.tensor))
    # One engine, work-conserving, first come first served.
    transfers = timeline.transfers
    previous_finish = 0.0
    for k, tr in enumerate(transfers):
        assert tr.issue_s == pytest.approx(max(previous_finish, tr.ready_s), abs=EPS)
        previous_finish = tr.finish_s
        for later in transfers[k + 1 :]:
            if later.ready_s > tr.issue_s + EPS:
                continue
            earlier = later.ready_s < tr.ready_s - EPS
            tied = abs(later.ready_s - tr.ready_s) <= EPS and rank[id(later)] < rank[id(tr)]
            assert not (earlier or tied), f"{later} was ready before {tr} issued"
    # Steps start when the previous one ended and everything they wait for arrived.
    for t in range(n):
        waits = [tr.finish_s for tr in transfers if tr.waited_by_step == t]
        assert start[t] == pytest.approx(max([e(t - 1), *waits]), abs=EPS)
        macs = graph.ops[plan.order[t]].macs
        assert end[t] == pytest.approx(start[t] + macs / acc.mac_per_s, abs=EPS)
    stores = [tr.finish_s for tr in transfers if tr.kind is TransferKind.STORE]
    assert timeline.latency_s == pytest.approx(max([e(n - 1), *stores]), abs=EPS)


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
