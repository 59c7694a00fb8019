"""Tests of cuts, boundary states, restricting a plan to parts and joining them again."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from helpers import greedy_case
from plan_fixtures import diamond_problem, spill_plan

from memplan.cut import (
    BoundaryTensor,
    PartSpec,
    Piece,
    boundary_state,
    join,
    required_state,
    restrict,
    satisfies,
    spill_part,
    split,
)
from memplan.errors import InvalidPlanError
from memplan.ir import OpId
from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem
from memplan.validate import validate


def random_cuts(rng: random.Random, n: int, count: int) -> list[int]:
    return sorted(rng.sample(range(1, n), min(count, n - 1)))


@pytest.mark.parametrize("seed", range(16))
def test_restrict_then_join_gives_back_the_same_plan(seed):
    problem, plan = greedy_case(seed, ("MR", "MH")[seed % 2], n_ops=14)
    rng = random.Random(seed)
    for count in (1, 3, len(plan.order)):
        parts = split(problem, plan, random_cuts(rng, len(plan.order), count))
        assert [p.start for p in parts] == sorted(p.start for p in parts)
        assert join(problem, parts) == plan
        for left, right in itertools.pairwise(parts):
            assert left.leaving == right.entering


def test_boundary_state_of_a_spilled_tensor():
    problem = diamond_problem()
    plan = spill_plan(problem, "a")  # a: produced at 0 and stored, reloaded for step 1..5
    a = problem.graph.tensor_by_name("a").id
    [first, second] = plan.residencies_of(a)
    at_one = boundary_state(problem, plan, 1)
    assert at_one.get(a) == BoundaryTensor(a, None, True)  # stored, not on chip
    inside = boundary_state(problem, plan, second.start + 1)
    assert inside.get(a) == BoundaryTensor(a, second.offset, True)
    assert boundary_state(problem, plan, 0).tensors == ()
    assert first.leave is Leave.STORE


@pytest.mark.parametrize("seed", range(10))
def test_a_plan_meets_its_own_requirements(seed):
    problem, plan = greedy_case(seed, n_ops=14)
    for step in range(len(plan.order) + 1):
        state = boundary_state(problem, plan, step)
        need = required_state(problem, plan, step)
        assert satisfies(state, need) == []
        assert {e.tensor for e in state.resident()} == {e.tensor for e in need.resident()}


def test_satisfies_names_what_is_missing():
    problem = diamond_problem()
    plan = spill_plan(problem, "a")
    a = problem.graph.tensor_by_name("a").id
    need = required_state(problem, plan, 1)
    assert need.get(a) == BoundaryTensor(a, None, True)  # the suffix reloads a
    stale = dataclasses.replace(
        boundary_state(problem, plan, 1), tensors=(BoundaryTensor(a, None, False),)
    )
    assert any("DRAM copy" in reason for reason in satisfies(stale, need))


def test_join_rejects_parts_that_do_not_meet():
    problem, plan = greedy_case(3, "MH", n_ops=14)
    parts = split(problem, plan, [len(plan.order) // 2])
    left, right = parts
    opened = [p for p in left.pieces if p.leave is None]
    if opened:  # move one open piece: its partner is no longer at the same offset
        moved = dataclasses.replace(opened[0], offset=opened[0].offset + 64)
        pieces = tuple(moved if p == opened[0] else p for p in left.pieces)
        with pytest.raises(InvalidPlanError, match=r"continue|open piece"):
            join(problem, [dataclasses.replace(left, pieces=pieces), right])
    with pytest.raises(InvalidPlanError, match="tile"):
        join(problem, [right, left])
    dangling = Piece(left.pieces[0].tensor, left.end - 1, left.end, 0, Arrive.LOAD, None)
    with pytest.raises(InvalidPlanError):
        join(problem, [dataclasses.replace(left, pieces=(*left.pieces, dangling)), right])


def test_join_validates_the_joined_plan():
    problem, plan = greedy_case(5, n_ops=14)
    left, right = split(problem, plan, [3])
    # Drop every piece of the right part: the pieces meet, but ops lose their tensors.
    bare = dataclasses.replace(right, pieces=tuple(p for p in right.pieces if p.arrive is None))
    closed = tuple(dataclasses.replace(p, leave=Leave.DROP) for p in bare.pieces)
    with pytest.raises(InvalidPlanError, match="joined plan"):
        join(problem, [left, dataclasses.replace(bare, pieces=closed)])


def part_spec(problem: Problem, plan: Plan, start: int, end: int, entering) -> PartSpec:
    return PartSpec(
        problem,
        tuple(plan.order[start:end]),
        frozenset(OpId(o) for o in plan.order[end:]),
        entering,
        None,
    )


@pytest.mark.parametrize("seed", range(16))
def test_parts_solved_separately_join_into_a_valid_plan(seed):
    """Keep greedy's plan up to a cut, then solve every later part on its own, each from
    the state the part before it left: the join passes the validator as one plan."""
    problem, plan = greedy_case(seed, ("MR", "MH")[seed % 2], n_ops=14)
    rng = random.Random(seed)
    cuts = random_cuts(rng, len(plan.order), 4)
    kept, *rest = split(problem, plan, cuts)
    solved = [kept]
    points = [kept.end, *(p.end for p in rest)]
    for start, end in itertools.pairwise(points):
        spec = part_spec(problem, plan, start, end, solved[-1].leaving)
        part = spill_part(spec, spec.ops)
        # None would mean the state greedy left cannot host the next op's new tensors; on
        # these seeds it always can, so the join below is really tested.
        assert part is not None, f"seed {seed}: part [{start}, {end}) has no spill plan"
        assert part.entering == solved[-1].leaving and part.end == end
        solved.append(part)
    joined = join(problem, solved)
    assert validate(problem, joined) == []
    assert joined.order == plan.order


def test_spill_part_from_the_start_is_the_spill_everything_plan():
    from memplan.fallback import spill_everything_plan

    problem, plan = greedy_case(2, n_ops=14)
    spec = part_spec(problem, plan, 0, len(plan.order), boundary_state(problem, plan, 0))
    part = spill_part(spec, plan.order)
    assert part is not None
    joined = join(problem, [part])
    assert joined.order == plan.order
    expected = spill_everything_plan(problem, plan.order)
    assert {(r.tensor, r.start, r.end, r.arrive, r.leave) for r in joined.residencies} == {
        (r.tensor, r.start, r.end, r.arrive, r.leave) for r in expected.residencies
    }


def test_restrict_rejects_cuts_outside_the_plan():
    problem, plan = greedy_case(1, n_ops=14)
    with pytest.raises(ValueError, match="cuts"):
        restrict(problem, plan, 3, 3)
