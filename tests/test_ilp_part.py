"""The ilp on one part of a plan under fixed boundaries (PROBLEM.md section 8)."""

from __future__ import annotations

import random

import pytest
from helpers import greedy_case

from memplan.accelerator import Accelerator
from memplan.cost import evaluate
from memplan.cut import (
    PART_SOLVER,
    BoundaryState,
    PartSpec,
    join,
    part_traffic,
    required_state,
    restrict,
    split,
)
from memplan.ir import OpId
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.registry import PluginKind, providers
from memplan.solver import Budget, Status, make_solver
from memplan.testing import min_traffic, tiny_spill_graph
from memplan.validate import validate

pytest.importorskip("ortools")

from memplan.solvers.dnc.search import without_offsets
from memplan.solvers.ilp import IlpSolver
from memplan.solvers.ilp.milp import solve_traffic_milp
from memplan.solvers.ilp.model import build_structure
from memplan.solvers.ilp.part import build_part
from memplan.solvers.packing import pack

KIB = 1024


def spec_of(problem: Problem, plan: Plan, start: int, end: int, entering=None) -> PartSpec:
    return PartSpec(
        problem,
        tuple(plan.order[start:end]),
        frozenset(OpId(o) for o in plan.order[end:]),
        entering if entering is not None else restrict(problem, plan, start, end).entering,
        required_state(problem, plan, end),
    )


def test_the_ilp_declares_the_part_capability():
    assert "ilp" in providers(PluginKind.SOLVER, PART_SOLVER)


@pytest.mark.parametrize("seed", range(12))
def test_parts_solved_with_fixed_boundaries_stitch_into_a_valid_plan(seed):
    """Cut greedy's plan into parts, solve each part with the ilp under the boundaries
    the plan gives it (entering state, required leaving state), join: one valid plan,
    moving no more bytes than greedy's, part by part."""
    problem, plan = greedy_case(seed, ("MR", "MH")[seed % 2])
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(plan.order)), 3))
    solved = []
    for part in split(problem, plan, cuts):
        outcome = IlpSolver.solve_part(
            spec_of(problem, plan, part.start, part.end),
            part.order,
            fixed_order=seed % 3 == 0,
            hint=part.pieces,
            budget=Budget(time_limit_s=30),
            deterministic_s=5,
        )
        assert outcome.part is not None, outcome.status
        assert outcome.traffic_bytes == part_traffic(problem, outcome.part.pieces)
        assert outcome.traffic_bytes <= part_traffic(problem, part.pieces)
        solved.append(outcome.part)
    joined = join(problem, solved)
    assert validate(problem, joined) == []
    waste = evaluate(problem, joined).non_compulsory_bytes
    assert waste <= evaluate(problem, plan).non_compulsory_bytes


@pytest.mark.parametrize("seed", range(8))
def test_a_part_keeps_the_rest_of_the_plan(seed):
    problem, plan = greedy_case(seed, "MR")
    n = len(plan.order)
    start, end = n // 3, 2 * n // 3
    old = restrict(problem, plan, start, end)
    outcome = IlpSolver.solve_part(
        spec_of(problem, plan, start, end), old.order, fixed_order=False, hint=old.pieces,
        budget=Budget(time_limit_s=30), deterministic_s=5,
    )  # fmt: skip
    assert outcome.part is not None
    parts = [restrict(problem, plan, 0, start), outcome.part, restrict(problem, plan, end, n)]
    joined = join(problem, parts)
    assert joined.order[:start] == plan.order[:start] and joined.order[end:] == plan.order[end:]
    assert sorted(joined.order[start:end]) == sorted(plan.order[start:end])
    outside = [r for r in plan.residencies if r.end <= start or r.start >= end]
    assert set(outside) <= set(joined.residencies)


CASES = [(1, Scope.ACTIVATIONS, 0), (3, Scope.ACTIVATIONS, 1), (4, Scope.ALL, 0), (4, Scope.ALL, 1)]


@pytest.mark.parametrize(("seed", "scope", "extra_kib"), CASES)
def test_one_part_for_the_whole_graph_is_the_ilp_optimum(seed, scope, extra_kib):
    """Empty entering state, the outputs' copies required at the end: the part is the
    whole problem, and its optimum is the ilp's (and enumeration's) over all plans."""
    problem = Problem(tiny_spill_graph(seed, 5), Accelerator("tiny", 1 << 20, KIB), scope)
    problem = problem.with_capacity(problem.min_resident_bytes + extra_kib * KIB)
    optimum = min_traffic(problem)
    whole = make_solver("ilp", {"hint": "false"}).solve(problem, Budget(time_limit_s=60))
    assert whole.status is Status.OPTIMAL and whole.cost.non_compulsory_bytes == optimum
    n = problem.graph.num_ops
    spec = spec_of(problem, whole.plan, 0, n, BoundaryState(0, ()))
    outcome = IlpSolver.solve_part(
        spec, whole.plan.order, fixed_order=False, hint=None, budget=Budget(time_limit_s=60)
    )
    assert outcome.optimal and outcome.part is not None
    joined = join(problem, [outcome.part])
    assert validate(problem, joined) == []
    assert evaluate(problem, joined).non_compulsory_bytes == optimum


@pytest.mark.parametrize("seed", range(6))
def test_a_part_without_placement_packs_into_a_valid_plan(seed):
    """Without offsets the part bounds only the bytes per step; the joined plan (offsets
    0) then packs with the allocator when the capacity leaves room."""
    problem, placed = greedy_case(seed, "MH")
    plan = without_offsets(placed)  # an interval plan: every offset 0
    n = len(plan.order)
    start, end = n // 4, 3 * n // 4
    old = restrict(problem, plan, start, end)
    outcome = IlpSolver.solve_part(
        spec_of(problem, plan, start, end), old.order, fixed_order=False, hint=old.pieces,
        budget=Budget(time_limit_s=30), deterministic_s=5, placement=False,
    )  # fmt: skip
    assert outcome.part is not None
    assert all(piece.offset == 0 for piece in outcome.part.pieces)
    parts = [restrict(problem, plan, 0, start), outcome.part, restrict(problem, plan, end, n)]
    joined = join(problem, parts, validate=False)
    assert part_traffic(problem, joined.residencies) <= part_traffic(problem, plan.residencies)
    packed = pack(problem, joined, 10.0, seed)
    if packed is not None:
        assert validate(problem, packed) == []
        assert packed.order == joined.order


def test_the_milp_backend_refuses_parts():
    problem, plan = greedy_case(1, "MR")
    struct, _ = build_part(spec_of(problem, plan, 2, 8), plan.order[2:8], False, True)
    with pytest.raises(ValueError, match="parts use cpsat"):
        solve_traffic_milp(struct, Budget(5), engine="highs", verbose=False, threads=1, seed=0)
    assert not build_structure(problem, None, -1).cut
