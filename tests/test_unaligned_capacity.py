"""A capacity that is not a multiple of the alignment (possible from Python and spec
files; every budget memplan resolves is aligned down). PROBLEM.md rule 6 bounds
``offset + size_bytes``, so the top tensor may end in the unaligned tail: a plan may
exist below M_R, and a solver's optimum over aligned sizes may be beaten. No solver may
then claim INFEASIBLE or a bound it has not proven."""

from __future__ import annotations

import itertools

import pytest

from memplan.accelerator import Accelerator
from memplan.errors import ConfigError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem
from memplan.solver import Budget, Status, make_solver
from memplan.validate import validate

SOLVERS = ("greedy", "ilp", "dnc", "rl")


def _copy_op(capacity: int) -> Problem:
    """x (3 B input) -> y (3 B output), alignment 4: M_R = 8 B, but 7 B hold both (x at
    0, y at 4: 4 + 3 <= 7)."""
    b = GraphBuilder("copy")
    x = b.tensor("x", 3, TensorKind.INPUT)
    y = b.tensor("y", 3, is_output=True)
    b.op("o", "Copy", [x], [y])
    return Problem(b.build(), Accelerator("a4", capacity, 4))


def test_the_least_capacity_is_m_r_less_the_top_tensors_padding() -> None:
    problem = _copy_op(7)
    assert (problem.min_resident_bytes, problem.least_capacity_bytes) == (8, 7)
    plan = Plan.make(
        [0],
        [Residency(0, 0, 1, 0, Arrive.LOAD), Residency(1, 0, 1, 4, Arrive.PRODUCE, Leave.STORE)],
    )
    assert validate(problem, plan) == []  # a plan below M_R: no solver may say none exists
    for offsets in itertools.product(range(0, 8, 4), repeat=2):  # below 7 B, none fits
        small = _copy_op(6)
        tried = Plan.make(
            [0],
            [
                Residency(0, 0, 1, offsets[0], Arrive.LOAD),
                Residency(1, 0, 1, offsets[1], Arrive.PRODUCE, Leave.STORE),
            ],
        )
        assert validate(small, tried) != []


@pytest.mark.parametrize("solver", SOLVERS)
def test_no_solver_claims_infeasible_where_a_plan_exists(solver: str) -> None:
    """At 7 B the solvers (aligned sizes) cannot plan, and say so in one line; at 6 B no
    plan exists, and INFEASIBLE is proven."""
    with pytest.raises(ConfigError, match="not a multiple of the alignment 4 B"):
        make_solver(solver).solve(_copy_op(7), Budget(time_limit_s=5))
    assert make_solver(solver).solve(_copy_op(6), Budget(time_limit_s=5)).status is (
        Status.INFEASIBLE
    )


def _spilling_chain(capacity: int) -> Problem:
    """x -> a -> c -> d -> out, where the last op reads a again: at the middle op a, c and
    d (96 aligned bytes) are live, above M_R (72 B), so a must spill: the optimum moves
    bytes, and a solver that proves it reports a positive bound."""
    b = GraphBuilder("skip")
    x = b.tensor("x", 30, TensorKind.INPUT)
    a = b.tensor("a", 30)
    c = b.tensor("c", 30)
    d = b.tensor("d", 30)
    out = b.tensor("out", 8, is_output=True)
    b.op("p", "Relu", [x], [a])
    b.op("q", "Relu", [a], [c])
    b.op("r", "Relu", [c], [d])
    b.op("s", "Add", [a, d], [out])
    return Problem(b.build(), Accelerator("a8", capacity, 8))


@pytest.mark.parametrize("solver", ("ilp", "dnc"))
def test_bounds_are_dropped_at_an_unaligned_capacity(solver: str) -> None:
    """At an aligned capacity the ilp proves its plan optimal; one byte more (unaligned),
    its bound is over aligned sizes only: no bound, FEASIBLE, and the message says why."""
    aligned = _spilling_chain(72)  # M_R
    proven = make_solver(solver).solve(aligned, Budget(time_limit_s=30))
    assert proven.status is Status.OPTIMAL and proven.lower_bound_bytes
    unaligned = make_solver(solver).solve(_spilling_chain(73), Budget(time_limit_s=30))
    assert unaligned.plan is not None and validate(_spilling_chain(73), unaligned.plan) == []
    assert unaligned.status is Status.FEASIBLE and unaligned.lower_bound_bytes is None
    assert "not a multiple of the alignment 8 B" in unaligned.message
