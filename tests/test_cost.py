"""The cost model on hand plans, with every figure computed by hand (see hand_plans.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hand_plans import A, hand_plan, hand_problem, hand_residencies

from memplan.cost import Cost, evaluate
from memplan.errors import InvalidPlanError
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Scope
from memplan.timing import simulate
from memplan.validate import validate


def test_hand_plan_activations_scope() -> None:
    cost = evaluate(hand_problem(), hand_plan())
    # Loads: x (1000). Stores: d (500). Streamed: w read once by op1 (500).
    assert cost.loaded_bytes == 1000
    assert cost.stored_bytes == 500
    assert cost.streamed_weight_bytes == 500
    assert cost.traffic_bytes == 2000
    assert cost.compulsory_bytes == 2000  # x once + d once + streamed w
    assert cost.non_compulsory_bytes == 0
    assert cost.peak_bytes == 12288 + 500
    # Live (unaligned) bytes per step: x+a, a+b, a+b+c, a+c+d.
    assert cost.max_live_bytes == max(3000, 3000, 4000, 3500)
    # Compute: 100/100 + 200/100 + 0 + 50/100 = 3.5 s; DMA: 2000 B / 1000 B/s = 2 s.
    assert cost.latency_s == pytest.approx(5.5)
    # DRAM 2000 x 1; scratchpad: ops touch 3000+3000+2000+3500 = 11500 B, loads and
    # stores 1500 B, x 0.1; MACs 350 x 0.01.
    assert cost.energy_j == pytest.approx(2000 + 1300 + 3.5)


def test_hand_plan_all_scope() -> None:
    cost = evaluate(hand_problem(Scope.ALL), hand_plan(Scope.ALL))
    assert cost.loaded_bytes == 1500  # x and w
    assert cost.streamed_weight_bytes == 0
    assert cost.compulsory_bytes == 1000 + 500 + 500
    assert cost.non_compulsory_bytes == 0
    assert cost.peak_bytes == 14336 + 500
    assert cost.max_live_bytes == 4000  # step 1 is a+b+w = 3500
    # op1 now reads w on chip: scratchpad bytes 12000 + loads/stores 2000.
    assert cost.energy_j == pytest.approx(2000 + 1400 + 3.5)


def _spilled(stores_twice: bool) -> list[Residency]:
    """``a`` spilled after step 1 and reloaded for step 3 (optionally stored again)."""
    rs = [r for r in hand_residencies() if r.tensor != A]
    rs.append(Residency(A, 0, 2, 1024, Arrive.PRODUCE, Leave.STORE))
    if stores_twice:
        rs.append(Residency(A, 2, 3, 1024, Arrive.LOAD, Leave.STORE))
        rs.append(Residency(A, 3, 4, 14336, Arrive.LOAD, Leave.DROP))
    else:
        rs.append(Residency(A, 3, 4, 14336, Arrive.LOAD, Leave.DROP))
    return rs


def test_spill_is_non_compulsory() -> None:
    problem = hand_problem()
    plan = Plan.make([0, 1, 2, 3], _spilled(stores_twice=False))
    assert validate(problem, plan) == []
    cost = evaluate(problem, plan)
    assert cost.stored_bytes == 500 + 2000
    assert cost.loaded_bytes == 1000 + 2000
    assert cost.non_compulsory_bytes == 4000  # one store and one load of a
    # The reload of a is DMA before step 3, the store after step 1: +4000 B / 1000 B/s.
    assert cost.latency_s == pytest.approx(5.5 + 4.0)
    assert cost.max_live_bytes == 3500  # a is off chip at step 2: b+c = 2000
    assert cost.peak_bytes == 14336 + 2000


def test_storing_twice_is_waste() -> None:
    problem = hand_problem()
    once = evaluate(problem, Plan.make([0, 1, 2, 3], _spilled(stores_twice=False)))
    twice_plan = Plan.make([0, 1, 2, 3], _spilled(stores_twice=True))
    assert validate(problem, twice_plan) == []
    twice = evaluate(problem, twice_plan)
    # The second load and the second store of a (2000 B each) are pure waste.
    assert twice.non_compulsory_bytes == once.non_compulsory_bytes + 4000
    assert twice.compulsory_bytes == once.compulsory_bytes


def test_storing_an_input_is_waste() -> None:
    """An input already has a DRAM copy: storing it again costs its size."""
    problem = hand_problem()
    rs = [
        r if r.tensor != 0 else Residency(0, 0, 1, 0, Arrive.LOAD, Leave.STORE)
        for r in hand_residencies()
    ]
    plan = Plan.make([0, 1, 2, 3], rs)
    assert validate(problem, plan) == []
    assert evaluate(problem, plan).non_compulsory_bytes == 1000


def test_cost_dict_round_trip_and_text() -> None:
    cost = evaluate(hand_problem(), hand_plan())
    assert Cost.from_dict(cost.to_dict()) == cost
    assert "non-compulsory traffic" in cost.to_text()


def test_cost_text_keeps_significant_digits_of_small_and_large_times() -> None:
    """A small model's latencies printed as ``0.002 ms (overlap; serial 0.002 ms)``, so
    --objective latency seemed to change nothing (2.164 against 2.197 us), its energy as
    ``0.0019 mJ``; a huge latency printed as hundreds of digits."""
    small = dataclasses.replace(
        evaluate(hand_problem(), hand_plan()),
        latency_s=2.1642e-6,
        energy_j=1.8812e-6,
        timing_model="overlap",
        serial_latency_s=2.1969e-6,
        overlap_latency_s=2.1642e-6,
    )
    assert small.latency_text() == "2.164 us (overlap; serial 2.197 us)"
    assert "energy                 1.881 uJ" in small.to_text()
    huge = dataclasses.replace(small, latency_s=3.5e30, overlap_latency_s=3.5e30)
    assert huge.latency_text() == "3.5e+30 s (overlap; serial 2.197 us)"
    assert dataclasses.replace(small, latency_s=0.0).latency_text().startswith("0 s (overlap")


def _bypassing(residency: Residency, **fields: object) -> Residency:
    """A copy of ``residency`` with ``fields`` set past Residency's own checks."""
    copy = dataclasses.replace(residency)
    for name, value in fields.items():
        object.__setattr__(copy, name, value)
    return copy


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"arrive": "x"}, r"residencies\[0\] has arrive='x'"),
        ({"leave": None}, r"residencies\[0\] has arrive=.*, leave=None"),
        ({"arrive": Leave.DROP}, r"residencies\[0\] has arrive=<Leave\.DROP"),
        ({"offset": 1.5}, r"residencies\[0\]\.offset is 1\.5; it must be an int"),
        ({"start": "0"}, r"residencies\[0\]\.start is '0'"),
        ({"tensor": True}, r"residencies\[0\]\.tensor is True"),
    ],
)
def test_a_malformed_residency_validate_refuses_is_not_scored(
    fields: dict[str, object], fragment: str
) -> None:
    """arrive='x' on the loaded x was scored as a produce (non-compulsory -1,000 B on the
    hand plan), leave=None as a drop, offset=1.5 as 1: a cost for a plan validate refuses."""
    problem, plan = hand_problem(), hand_plan()
    broken = Plan(plan.order, (_bypassing(plan.residencies[0], **fields), *plan.residencies[1:]))
    with pytest.raises(InvalidPlanError, match=fragment) as refused:
        validate(problem, broken)
    assert str(refused.value).startswith("validate: ")
    with pytest.raises(InvalidPlanError, match=fragment) as refused:
        evaluate(problem, broken)
    assert str(refused.value).startswith("evaluate: ")
    with pytest.raises(InvalidPlanError, match=fragment) as refused:
        simulate(problem, broken)  # the timeline too (it was simulated as if valid)
    assert str(refused.value).startswith("simulate: ")


@pytest.mark.parametrize(
    ("order", "fragment"),
    [
        (lambda p, g: [g.ops[o].name for o in p.order], r"order\[0\] is 'op0'.*ids, not names"),
        (lambda p, g: [float(o) for o in p.order], r"order\[0\] is 0\.0; the order lists op"),
        (lambda p, g: [None, *p.order[1:]], r"order\[0\] is None"),
    ],
)
def test_an_order_of_names_or_floats_is_an_invalid_plan_error(order: Any, fragment: str) -> None:
    """Op names raised ValueError (invalid literal for int()), floats TypeError."""
    problem, plan = hand_problem(), hand_plan()
    broken = Plan(order(plan, problem.graph), plan.residencies)
    with pytest.raises(InvalidPlanError, match="evaluate: " + fragment):
        evaluate(problem, broken)


def test_numpy_integers_in_a_plan_are_scored_like_ints() -> None:
    problem, plan = hand_problem(), hand_plan()
    first = plan.residencies[0]
    numpy_first = Residency(
        np.int64(first.tensor),  # type: ignore[arg-type]
        np.int32(first.start),
        np.int64(first.end),
        np.int64(first.offset),
        first.arrive,
        first.leave,
    )
    numpy_plan = Plan(np.array(plan.order), (numpy_first, *plan.residencies[1:]))  # type: ignore[arg-type]
    assert evaluate(problem, numpy_plan) == evaluate(problem, plan)
