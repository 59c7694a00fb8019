"""Misuse of the public API from Python gets the documented error, one clear line
(found by an outside sweep: each of these raised a raw IndexError, OverflowError or
TypeError, or returned a figure that cannot be)."""

from __future__ import annotations

import dataclasses

import pytest

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.errors import ConfigError, GraphError, InvalidPlanError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Arrive, Plan, Residency
from memplan.problem import Problem
from memplan.solver import relative_gap


def _chain() -> Problem:
    b = GraphBuilder("chain")
    x = b.tensor("x", 100, TensorKind.INPUT)
    y = b.tensor("y", 100)
    z = b.tensor("z", 100, is_output=True)
    b.op("a", "Relu", [x], [y])
    b.op("b", "Relu", [y], [z])
    return Problem(b.build(), Accelerator("t", 1024, 64))


def test_evaluate_refuses_an_offset_beyond_any_scratchpad() -> None:
    plan = Plan.make([0, 1], [Residency(0, 0, 1, 2**70, Arrive.LOAD)])
    with pytest.raises(InvalidPlanError, match=r"residency #0: offset \d+ is beyond"):
        evaluate(_chain(), plan)


def test_evaluate_refuses_a_plan_that_moves_less_than_the_compulsory_bytes() -> None:
    """No residency at all: it cost -200 non-compulsory bytes."""
    with pytest.raises(InvalidPlanError, match="less than the 200 B every valid plan moves"):
        evaluate(_chain(), Plan.make([0, 1], []))


def test_graph_neighbours_of_an_op_that_does_not_exist() -> None:
    graph = _chain().graph
    assert graph.predecessors(1) == (0,) and graph.successors(0) == (1,)
    for bad in (5, -1, True, "a", 1.0):
        with pytest.raises(GraphError, match="has no op"):
            graph.predecessors(bad)  # type: ignore[arg-type]
        with pytest.raises(GraphError, match="has no op"):
            graph.successors(bad)  # type: ignore[arg-type]


def test_a_resolved_budget_is_frozen_with_a_clear_message() -> None:
    budget = resolve_budget("MR", _chain())
    with pytest.raises(dataclasses.FrozenInstanceError, match="a ResolvedBudget is frozen"):
        budget.foo = 1  # type: ignore[attr-defined]


def test_frozen_messages_use_the_right_article() -> None:
    op = _chain().graph.ops[0]
    with pytest.raises(dataclasses.FrozenInstanceError, match="an Op is frozen"):
        op.name = "b"  # type: ignore[misc]


def test_relative_gap_refuses_negative_bytes() -> None:
    assert relative_gap(10, 5) == 0.5
    with pytest.raises(ConfigError, match="never negative"):
        relative_gap(10, -5)
    with pytest.raises(ConfigError, match="never negative"):
        relative_gap(-1, None)
