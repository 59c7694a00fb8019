"""The timing models on hand-timed plans (PROBLEM.md section 7).

Every accelerator here moves 1000 B/s and computes 100 MAC/s, so a 1500 B load takes
1.5 s and a 100-MAC op 1 s; each expected time below is worked out in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest
from hand_plans import hand_plan, hand_problem
from timing_examples import (
    DROP,
    LOAD,
    PRODUCE,
    STORE,
    checked_plan,
    hand_rates_accelerator,
    section7_plan,
    section7_problem,
)

from memplan.accelerator import Accelerator, load_accelerator
from memplan.cost import evaluate
from memplan.errors import ConfigError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Plan, Residency
from memplan.problem import Problem, Scope
from memplan.timing import TransferKind, simulate


# ------------------------------------------------------------------ section 7's example
def test_section_example_load_at_its_use_stalls_for_the_whole_load() -> None:
    problem = section7_problem()
    timeline = simulate(problem, section7_plan(problem, x_start=5))
    # in0 0-0.5; steps 0..4 run 0.5-5.5; x is ready at E_4 = 5.5 and arrives at 7.0;
    # step 5 runs 7.0-7.5; out is stored 7.5-7.7.
    assert timeline.step_start_s == pytest.approx((0.5, 1.5, 2.5, 3.5, 4.5, 7.0))
    assert timeline.step_stall_s == pytest.approx((0.5, 0, 0, 0, 0, 1.5))
    assert timeline.latency_s == pytest.approx(7.7)
    assert timeline.tail_s == pytest.approx(0.2)
    # Nothing overlapped: the serial figure is the same.
    assert simulate(problem, section7_plan(problem, 5), "serial").latency_s == pytest.approx(7.7)
    assert timeline.hidden_dma_share == pytest.approx(0.0)


def test_section_example_prefetch_hides_behind_step_4() -> None:
    problem = section7_problem()
    timeline = simulate(problem, section7_plan(problem, x_start=4))
    # x is ready at E_3 = 4.5, runs 4.5-6.0 beside step 4 (4.5-5.5); step 5 waits only
    # the 0.5 s the compute did not hide, then out is stored 6.5-6.7.
    load_x = next(tr for tr in timeline.transfers if tr.tensor == 1)
    assert (load_x.ready_s, load_x.issue_s, load_x.finish_s) == pytest.approx((4.5, 4.5, 6.0))
    assert load_x.waited_by_step == 5
    assert timeline.step_stall_s[5] == pytest.approx(0.5)
    assert timeline.latency_s == pytest.approx(6.7)
    # One more step of prefetch hides it all: latency = 0.5 + 5.5 compute + 0.2.
    assert simulate(problem, section7_plan(problem, 3)).latency_s == pytest.approx(6.2)
    cost = evaluate(problem, section7_plan(problem, 4))
    assert cost.timing_model == "overlap"
    assert cost.latency_s == pytest.approx(6.7)
    assert cost.serial_latency_s == pytest.approx(7.7)
    assert cost.latency_under("serial") == pytest.approx(7.7)


# ------------------------------------------------------------- a store delays a reuse
def _store_problem() -> Problem:
    """``in -> op0 -> a (output) -> op1 -> b -> op2 -> c (output)``.

    in 100 B (0.1 s), a 1000 B (1 s), b and c 100 B (0.1 s); op0 and op2 100 MACs (1 s),
    op1 20 MACs (0.2 s).
    """
    g = GraphBuilder("store")
    x = g.tensor("in", 100, TensorKind.INPUT)
    a = g.tensor("a", 1000, is_output=True)
    b = g.tensor("b", 100)
    c = g.tensor("c", 100, is_output=True)
    g.op("op0", "Conv", [x], [a], macs=100)
    g.op("op1", "Relu", [a], [b], macs=20)
    g.op("op2", "Conv", [b], [c], macs=100)
    return Problem(g.build(), hand_rates_accelerator())


def test_store_delays_the_step_that_reuses_its_space() -> None:
    problem = _store_problem()
    plan = checked_plan(
        problem,
        [
            Residency(0, 0, 1, 0, LOAD, DROP),
            Residency(1, 0, 2, 1024, PRODUCE, STORE),  # space free again at step 2
            Residency(2, 1, 3, 4096, PRODUCE, DROP),
            Residency(3, 2, 3, 1024, PRODUCE, STORE),  # reuses a's space
        ],
    )
    timeline = simulate(problem, plan)
    # in 0-0.1; step 0 0.1-1.1; a is final at E_0 = 1.1 and stored 1.1-2.1 while step 1
    # runs 1.1-1.3; step 2 waits for the store (stall 0.8), runs 2.1-3.1; c 3.1-3.2.
    store_a = next(tr for tr in timeline.transfers if tr.tensor == 1)
    assert store_a.kind is TransferKind.STORE
    assert (store_a.ready_s, store_a.finish_s, store_a.waited_by_step) == pytest.approx(
        (1.1, 2.1, 2)
    )
    assert timeline.step_start_s == pytest.approx((0.1, 1.1, 2.1))
    assert timeline.step_stall_s == pytest.approx((0.1, 0.0, 0.8))
    assert timeline.latency_s == pytest.approx(3.2)


def test_last_store_after_the_last_step_counts_in_the_latency() -> None:
    problem = _store_problem()
    plan = checked_plan(
        problem,
        [
            Residency(0, 0, 1, 0, LOAD, DROP),
            Residency(1, 0, 3, 1024, PRODUCE, STORE),  # kept to the end: nobody waits
            Residency(2, 1, 3, 4096, PRODUCE, DROP),
            Residency(3, 2, 3, 2048, PRODUCE, STORE),
        ],
    )
    timeline = simulate(problem, plan)
    # a is stored 1.1-2.1 beside steps 1 (1.1-1.3) and 2 (1.3-2.3); c is final at 2.3 and
    # stored 2.3-2.4, after the last step: latency 2.4, 0.1 s of tail.
    assert timeline.step_start_s == pytest.approx((0.1, 1.1, 1.3))
    assert timeline.latency_s == pytest.approx(2.4)
    assert timeline.tail_s == pytest.approx(0.1)
    assert [tr.waited_by_step for tr in timeline.transfers] == [0, 3, 3]
    # serial: 2.2 s compute + 1.2 s DMA.
    assert simulate(problem, plan, "serial").latency_s == pytest.approx(3.4)


# ----------------------------------------------------------------------------- ties
def _tie_problem(y_first_used_at_1: bool) -> Problem:
    """``op0`` makes ``a`` from ``in``; ``op1`` reads ``a`` (and ``y``); ``op2`` reads x.

    in 100 B, x (id 1) and y (id 2) 500 B each (0.5 s); op0..op2 100 MACs (1 s).
    """
    g = GraphBuilder("ties")
    inp = g.tensor("in", 100, TensorKind.INPUT)
    x = g.tensor("x", 500, TensorKind.INPUT)
    y = g.tensor("y", 500, TensorKind.INPUT)
    a = g.tensor("a", 100)
    b = g.tensor("b", 100)
    c = g.tensor("c", 100, is_output=True)
    g.op("op0", "Conv", [inp], [a], macs=100)
    g.op("op1", "Conv", [a, y] if y_first_used_at_1 else [a, x, y], [b], macs=100)
    g.op("op2", "Conv", [b, x] if y_first_used_at_1 else [b], [c], macs=100)
    return Problem(g.build(), hand_rates_accelerator())


def _tie_plan(problem: Problem, x_end: int) -> Plan:
    return checked_plan(
        problem,
        [
            Residency(0, 0, 1, 0, LOAD, DROP),
            Residency(1, 1, x_end, 1024, LOAD, DROP),
            Residency(2, 1, 2, 2048, LOAD, DROP),
            Residency(3, 0, 2, 3072, PRODUCE, DROP),
            Residency(4, 1, 3, 4096, PRODUCE, DROP),
            Residency(5, 2, 3, 5120, PRODUCE, STORE),
        ],
    )


def test_tie_goes_to_the_earlier_deadline_then_the_lower_tensor_id() -> None:
    # x and y are both ready at E_0 = 1.1. y is read at step 1, x only at step 2: y
    # first (1.1-1.6), then x (1.6-2.1), although x has the lower id.
    problem = _tie_problem(y_first_used_at_1=True)
    timeline = simulate(problem, _tie_plan(problem, x_end=3))
    loads = [tr for tr in timeline.transfers if tr.kind is TransferKind.LOAD][1:]
    assert [tr.tensor for tr in loads] == [2, 1]
    times = [t for tr in loads for t in (tr.issue_s, tr.finish_s)]
    assert times == pytest.approx([1.1, 1.6, 1.6, 2.1])
    # step 1 waits for y only: 1.6; step 2 at 2.6 (x arrived at 2.1).
    assert timeline.step_start_s == pytest.approx((0.1, 1.6, 2.6))
    # Both read at step 1: equal deadlines, the lower id (x) goes first.
    problem = _tie_problem(y_first_used_at_1=False)
    timeline = simulate(problem, _tie_plan(problem, x_end=2))
    loads = [tr for tr in timeline.transfers if tr.kind is TransferKind.LOAD][1:]
    assert [tr.tensor for tr in loads] == [1, 2]
    assert [tr.finish_s for tr in loads] == pytest.approx([1.6, 2.1])
    assert timeline.step_start_s == pytest.approx((0.1, 2.1, 3.1))


def test_a_spill_is_stored_before_its_reload_for_the_next_step() -> None:
    """``a`` (1000 B) is spilled after step 0 and reloaded for step 1: the store and the
    reload are both ready at E_0 = 1.1, waited for by step 1, of one tensor. The reload
    was issued first (1.1-2.1, then the store 2.1-3.1), reading DRAM before the data
    was there; the latency is the same either way."""
    g = GraphBuilder("spill")
    x = g.tensor("x", 100, TensorKind.INPUT)
    a = g.tensor("a", 1000)
    b = g.tensor("b", 100)
    y = g.tensor("y", 100, is_output=True)
    g.op("p", "Conv", [x], [a], macs=100)
    g.op("q", "Conv", [x, a], [b], macs=100)
    g.op("r", "Add", [a, b], [y], macs=100)
    problem = Problem(g.build(), hand_rates_accelerator())
    plan = checked_plan(
        problem,
        [
            Residency(x, 0, 2, 0, LOAD, DROP),
            Residency(a, 0, 1, 1024, PRODUCE, STORE),
            Residency(a, 1, 3, 4096, LOAD, DROP),
            Residency(b, 1, 3, 8192, PRODUCE, DROP),
            Residency(y, 2, 3, 12288, PRODUCE, STORE),
        ],
    )
    timeline = simulate(problem, plan)
    of_a = [(tr.kind, tr.issue_s, tr.finish_s) for tr in timeline.transfers if tr.tensor == a]
    assert [kind for kind, _, _ in of_a] == [TransferKind.STORE, TransferKind.LOAD]
    assert [t for _, *times in of_a for t in times] == pytest.approx([1.1, 2.1, 2.1, 3.1])
    # x 0-0.1; step 0 0.1-1.1; step 1 waits for both (3.1); step 2 4.1-5.1; y 5.1-5.2.
    assert timeline.step_start_s == pytest.approx((0.1, 3.1, 4.1))
    assert timeline.latency_s == pytest.approx(5.2)


# --------------------------------------------------------------- streamed weights
def test_streamed_weight_is_ready_one_step_early_in_activations_scope() -> None:
    problem = hand_problem()
    problem = Problem(problem.graph, problem.accelerator.with_timing_model("overlap"))
    timeline = simulate(problem, hand_plan())
    # x 1000 B 0-1; step 0 1-2; w (500 B, read by op1) is ready at S_0 = 1 and streams
    # 1-1.5, hidden behind step 0; steps 1..3 run 2-4, 4-4, 4-4.5; d is stored 4.5-5.0.
    stream = [tr for tr in timeline.transfers if tr.kind is TransferKind.STREAM]
    assert [(tr.tensor, tr.ready_s, tr.finish_s, tr.waited_by_step) for tr in stream] == [
        (1, pytest.approx(1.0), pytest.approx(1.5), 1)
    ]
    assert timeline.step_start_s == pytest.approx((1.0, 2.0, 4.0, 4.0))
    assert timeline.latency_s == pytest.approx(5.0)
    assert simulate(problem, hand_plan(), "serial").latency_s == pytest.approx(5.5)
    # In scope 'all' w is a placed tensor loaded at step 1: ready at E_0 = 2, stalls 0.5.
    problem_all = Problem(problem.graph, problem.accelerator, Scope.ALL)
    timeline = simulate(problem_all, hand_plan(Scope.ALL))
    assert not [tr for tr in timeline.transfers if tr.kind is TransferKind.STREAM]
    assert timeline.step_stall_s[1] == pytest.approx(0.5)
    assert timeline.latency_s == pytest.approx(5.5)


def test_weight_streamed_for_step_0_ties_with_the_input_load_by_tensor_id() -> None:
    g = GraphBuilder("w0")
    w = g.tensor("w", 300, TensorKind.WEIGHT)  # id 0
    x = g.tensor("x", 200, TensorKind.INPUT)  # id 1
    y = g.tensor("y", 100, is_output=True)
    g.op("op0", "Conv", [x, w], [y], macs=100)
    problem = Problem(g.build(), hand_rates_accelerator())
    plan = checked_plan(
        problem, [Residency(1, 0, 1, 0, LOAD, DROP), Residency(2, 0, 1, 1024, PRODUCE, STORE)]
    )
    timeline = simulate(problem, plan)
    # Both ready at 0 with deadline step 0: w (id 0) streams 0-0.3, x loads 0.3-0.5.
    assert [(tr.kind, tr.finish_s) for tr in timeline.transfers[:2]] == [
        (TransferKind.STREAM, pytest.approx(0.3)),
        (TransferKind.LOAD, pytest.approx(0.5)),
    ]
    assert timeline.latency_s == pytest.approx(0.5 + 1.0 + 0.1)


# --------------------------------------------------------------------- the seam
def test_accelerator_chooses_the_model_and_callers_may_override() -> None:
    problem = section7_problem()
    plan = section7_plan(problem, x_start=4)
    assert evaluate(problem, plan).latency_s == pytest.approx(6.7)  # spec says overlap
    serial = evaluate(problem, plan, timing_model="serial")
    assert (serial.timing_model, serial.latency_s) == ("serial", pytest.approx(7.7))
    assert serial.overlap_latency_s == pytest.approx(6.7)
    with pytest.raises(ConfigError, match="unknown timing model 'dataflow'"):
        simulate(problem, plan, "dataflow")
    with pytest.raises(ConfigError, match="timing_model 'fast' is not one of serial, overlap"):
        Accelerator("bad", 1024, timing_model="fast")


@pytest.mark.parametrize("model", ["", 0, False, np.array(["overlap"])], ids=repr)
def test_an_empty_or_non_string_model_is_refused_not_taken_for_the_default(model) -> None:
    """``evaluate(problem, plan, "")`` or ``simulate(..., 0)`` silently used the
    accelerator's model (a falsy value read as "not given"); an array raised ValueError."""
    problem = section7_problem()
    plan = section7_plan(problem, x_start=4)
    with pytest.raises(ConfigError, match="unknown timing model"):
        evaluate(problem, plan, model)
    with pytest.raises(ConfigError, match="unknown timing model"):
        simulate(problem, plan, model)


def test_preset_timing_models() -> None:
    assert load_accelerator("edge-npu").timing_model == "overlap"
    assert load_accelerator("server-npu").timing_model == "overlap"
    assert load_accelerator("unaligned").timing_model == "serial"
    # A spec without the field keeps the old meaning.
    assert Accelerator.from_dict({"capacity_bytes": 1024}).timing_model == "serial"


def test_cost_from_an_old_plan_file_is_serial() -> None:
    from memplan.cost import Cost

    data = evaluate(section7_problem(), section7_plan(section7_problem(), 4)).to_dict()
    for key in ("timing_model", "serial_latency_s", "overlap_latency_s"):
        data.pop(key)
    data["latency_s"] = 7.7
    old = Cost.from_dict(data)
    assert (old.timing_model, old.latency_under("serial")) == ("serial", 7.7)
    with pytest.raises(ConfigError, match="no overlap latency"):
        old.latency_under("overlap")
