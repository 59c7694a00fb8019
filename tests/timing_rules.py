"""An independent check of a timeline against every rule of the overlap model.

:func:`check_overlap_rules` re-derives, from the timeline's own step times, when each
transfer was ready, which step waits for it, that the engine ran one transfer at a time
and never left a ready transfer with a better claim waiting (first come, first served;
ties to the earlier deadline, then the lower tensor id), and when each step started. It
shares no code with :mod:`memplan.timing`, so it checks it.
"""

from __future__ import annotations

import pytest

from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem
from memplan.timing import Timeline, TransferKind

EPS = 1e-12


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
