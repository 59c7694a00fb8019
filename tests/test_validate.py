"""The validator: one broken plan per violation kind, and random mutations of greedy plans."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable

import pytest
from hand_plans import A, B, C, D, W, X, hand_plan, hand_problem, hand_residencies

from memplan.accelerator import Accelerator
from memplan.analysis import steps_of
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.errors import InvalidPlanError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, Scope
from memplan.solver import Budget, make_solver
from memplan.testing.graphs import random_dag as random_graph
from memplan.validate import ViolationKind as V
from memplan.validate import check_plan, validate, validate_report

ORDER = [0, 1, 2, 3]


def _edit(tensor: int, first_step: int, **changes: object) -> list[Residency]:
    """The hand residencies with the stay of ``tensor`` starting at ``first_step`` changed."""
    out = []
    for r in hand_residencies():
        if r.tensor == tensor and r.start == first_step:
            r = dataclasses.replace(r, **changes)  # type: ignore[arg-type]
        out.append(r)
    return out


def _without(tensor: int) -> list[Residency]:
    return [r for r in hand_residencies() if r.tensor != tensor]


# Each case breaks the valid hand plan in one way. Most rules can be broken alone; four
# cannot, and their expected set names the unavoidable companion:
# - a consumer running before its producer needs its input on chip before it is
#   produced (BEFORE_PRODUCED), and the produce stay then starts off the producer's step;
# - an activation produced twice has two stays at its producer's step (TIME_OVERLAP);
# - a produce stay that starts early is on chip before its producer runs;
# - a stay before the producer runs cannot have a stored DRAM copy to load from.
CASES: dict[V, tuple[list[int], list[Residency], set[V]]] = {
    V.ORDER_NOT_PERMUTATION: ([0, 1, 1, 3], hand_residencies(), {V.ORDER_NOT_PERMUTATION}),
    V.ORDER_DEPENDENCY: (
        [1, 0, 2, 3],
        [
            Residency(X, 1, 2, 0, Arrive.LOAD),
            Residency(A, 0, 4, 1024, Arrive.PRODUCE),
            Residency(B, 0, 3, 4096, Arrive.PRODUCE),
            Residency(C, 2, 4, 8192, Arrive.PRODUCE),
            Residency(D, 3, 4, 12288, Arrive.PRODUCE, Leave.STORE),
        ],
        {V.ORDER_DEPENDENCY, V.PRODUCE_STEP, V.BEFORE_PRODUCED},
    ),
    V.UNKNOWN_TENSOR: (
        ORDER,
        [*hand_residencies(), Residency(W, 1, 2, 14336, Arrive.LOAD)],  # weight, activations scope
        {V.UNKNOWN_TENSOR},
    ),
    V.BAD_INTERVAL: (
        ORDER,
        [*hand_residencies(), Residency(X, 2, 6, 14336, Arrive.LOAD)],
        {V.BAD_INTERVAL},
    ),
    V.NOT_RESIDENT: (ORDER, _edit(A, 0, end=2), {V.NOT_RESIDENT}),
    V.PRODUCE_COUNT: (
        ORDER,
        [*hand_residencies(), Residency(A, 0, 1, 14336, Arrive.PRODUCE)],
        {V.PRODUCE_COUNT, V.TIME_OVERLAP},
    ),
    V.PRODUCE_STEP: (ORDER, _edit(B, 1, start=0), {V.PRODUCE_STEP, V.BEFORE_PRODUCED}),
    V.PRODUCE_NON_ACTIVATION: (
        ORDER,
        _edit(X, 0, arrive=Arrive.PRODUCE),
        {V.PRODUCE_NON_ACTIVATION},
    ),
    V.LOAD_WITHOUT_COPY: (
        ORDER,
        [
            *_without(A),
            Residency(A, 0, 2, 1024, Arrive.PRODUCE),
            Residency(A, 2, 4, 1024, Arrive.LOAD),
        ],
        {V.LOAD_WITHOUT_COPY},
    ),
    V.TIME_OVERLAP: (
        ORDER,
        [*hand_residencies(), Residency(X, 0, 2, 14336, Arrive.LOAD)],
        {V.TIME_OVERLAP},
    ),
    V.BEFORE_PRODUCED: (
        ORDER,
        [*hand_residencies(), Residency(B, 0, 1, 14336, Arrive.LOAD)],
        {V.BEFORE_PRODUCED, V.LOAD_WITHOUT_COPY},
    ),
    V.MISALIGNED: (ORDER, _edit(D, 3, offset=12288 + 32), {V.MISALIGNED}),
    V.OUT_OF_BOUNDS: (ORDER, _edit(D, 3, offset=16384 - 64), {V.OUT_OF_BOUNDS}),
    V.ADDRESS_OVERLAP: (ORDER, _edit(B, 1, offset=2048), {V.ADDRESS_OVERLAP}),
    V.OUTPUT_NOT_STORED: (ORDER, _edit(D, 3, leave=Leave.DROP), {V.OUTPUT_NOT_STORED}),
}


def test_hand_plan_is_valid_in_both_scopes() -> None:
    for scope in Scope:
        assert validate(hand_problem(scope), hand_plan(scope)) == []


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(V)


@pytest.mark.parametrize("kind", list(V), ids=[k.value for k in V])
def test_each_violation_kind(kind: V) -> None:
    order, residencies, expected = CASES[kind]
    problem = hand_problem()
    violations = validate(problem, Plan.make(order, residencies))
    assert {v.kind for v in violations} == expected
    assert all(v.message for v in violations)
    with pytest.raises(InvalidPlanError, match=kind.value):
        check_plan(problem, Plan.make(order, residencies))


def test_violation_names_the_tensor() -> None:
    order, residencies, _ = CASES[V.OUTPUT_NOT_STORED]
    (violation,) = validate(hand_problem(), Plan.make(order, residencies))
    assert "'d'" in violation.message and violation.tensors == (D,)


# ----------------------------------------------------------------- random mutations
def _greedy_plans() -> list[tuple[Problem, Plan]]:
    """Valid greedy plans (with spills) on seeded random graphs, both scopes."""
    from memplan.accelerator import Accelerator

    out = []
    for seed in range(6):
        graph = random_graph(100 + seed, 25)
        for scope in Scope:
            base = Problem(graph, Accelerator("m", 0), scope)
            for spec in ("MR", "MH"):
                problem = base.with_capacity(resolve_budget(spec, base).capacity_bytes)
                result = make_solver("greedy", {"allocator": "portfolio"}).solve(problem, Budget())
                assert result.plan is not None
                out.append((problem, result.plan))
    return out


PLANS = _greedy_plans()
Mutation = Callable[[random.Random, Problem, Plan], "tuple[Plan, set[V] | None]"]


def _swap(plan: Plan, residencies: list[Residency]) -> Plan:
    return Plan.make(plan.order, residencies)


def _pick(rng: random.Random, plan: Plan) -> tuple[int, Residency]:
    i = rng.randrange(len(plan.residencies))
    return i, plan.residencies[i]


def _overlap_in_time(a: Residency, b: Residency) -> bool:
    return a.start < b.end and b.start < a.end


def collide(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """Move a residency onto the offset of another one live at the same time."""
    pairs = [
        (i, j)
        for i, a in enumerate(plan.residencies)
        for j, b in enumerate(plan.residencies)
        if i != j and _overlap_in_time(a, b)
    ]
    i, j = rng.choice(pairs)
    rs = list(plan.residencies)
    rs[i] = dataclasses.replace(rs[i], offset=rs[j].offset)
    return _swap(plan, rs), {V.ADDRESS_OVERLAP}


def shift(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """Move a residency to a random aligned offset; overlap is judged by brute force."""
    i, r = _pick(rng, plan)
    size = problem.graph.tensors[r.tensor].size_bytes
    top = (problem.capacity_bytes - size) // problem.alignment_bytes
    moved = dataclasses.replace(r, offset=rng.randint(0, top) * problem.alignment_bytes)
    rs = list(plan.residencies)
    rs[i] = moved
    sizes = [t.size_bytes for t in problem.graph.tensors]
    clash = any(
        j != i
        and _overlap_in_time(moved, o)
        and moved.offset < o.offset + sizes[o.tensor]
        and o.offset < moved.offset + size
        for j, o in enumerate(rs)
    )
    return _swap(plan, rs), ({V.ADDRESS_OVERLAP} if clash else None)


def drop(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """Remove one residency: its first step is a use or the production, so it is missed."""
    i, _ = _pick(rng, plan)
    rs = list(plan.residencies)
    del rs[i]
    return _swap(plan, rs), {V.NOT_RESIDENT}


def swap_dependent(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """Swap an op with one of its producers in the order (residencies unchanged)."""
    graph = problem.graph
    step = steps_of(plan.order)
    edges = [(p, op.id) for op in graph.ops for p in graph.predecessors(op.id)]
    producer, consumer = rng.choice(edges)
    order = list(plan.order)
    order[step[producer]], order[step[consumer]] = consumer, producer
    return Plan.make(order, plan.residencies), {V.ORDER_DEPENDENCY}


def flip_arrive(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """produce <-> load: an activation then has no produce stay, or an input is produced."""
    i, r = _pick(rng, plan)
    flipped = Arrive.LOAD if r.arrive is Arrive.PRODUCE else Arrive.PRODUCE
    rs = list(plan.residencies)
    rs[i] = dataclasses.replace(r, arrive=flipped)
    return _swap(plan, rs), {V.PRODUCE_COUNT, V.PRODUCE_NON_ACTIVATION}


def flip_leave(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """store -> drop is caught (a later load or the output lacks its copy); drop -> store
    is legal (wasteful) and must be accepted."""
    i, r = _pick(rng, plan)
    rs = list(plan.residencies)
    if r.leave is Leave.STORE:
        rs[i] = dataclasses.replace(r, leave=Leave.DROP)
        return _swap(plan, rs), {V.LOAD_WITHOUT_COPY, V.OUTPUT_NOT_STORED}
    rs[i] = dataclasses.replace(r, leave=Leave.STORE)
    return _swap(plan, rs), None


def misalign(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """Add less than one alignment unit to an offset."""
    i, r = _pick(rng, plan)
    rs = list(plan.residencies)
    rs[i] = dataclasses.replace(r, offset=r.offset + rng.randint(1, problem.alignment_bytes - 1))
    return _swap(plan, rs), {V.MISALIGNED}


def move_interval(rng: random.Random, problem: Problem, plan: Plan) -> tuple[Plan, set[V] | None]:
    """Shorten a residency by one step at its start: the op there loses a tensor."""
    candidates = [i for i, r in enumerate(plan.residencies) if r.end - r.start >= 2]
    if not candidates:
        return plan, None
    i = rng.choice(candidates)
    rs = list(plan.residencies)
    rs[i] = dataclasses.replace(rs[i], start=rs[i].start + 1)
    return _swap(plan, rs), {V.NOT_RESIDENT, V.PRODUCE_STEP, V.LOAD_WITHOUT_COPY}


MUTATIONS = [collide, shift, drop, swap_dependent, flip_arrive, flip_leave, misalign, move_interval]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.__name__ for m in MUTATIONS])
def test_random_mutations_are_caught(mutation: Mutation) -> None:
    rng = random.Random(mutation.__name__)
    caught = accepted = 0
    for trial in range(60):
        problem, plan = PLANS[trial % len(PLANS)]
        assert validate(problem, plan) == []
        mutated, expected = mutation(rng, problem, plan)
        kinds = {v.kind for v in validate(problem, mutated)}
        if expected is None:
            assert kinds == set(), f"{mutation.__name__}: a legal mutation was rejected: {kinds}"
            accepted += 1
        else:
            assert kinds & expected, f"{mutation.__name__}: expected one of {expected}, got {kinds}"
            caught += 1
    assert caught > 0


def test_extra_store_is_legal_but_costs() -> None:
    """drop -> store keeps the plan valid and shows up as non-compulsory traffic."""
    problem, plan = PLANS[0]
    i = next(i for i, r in enumerate(plan.residencies) if r.leave is Leave.DROP)
    rs = list(plan.residencies)
    rs[i] = dataclasses.replace(rs[i], leave=Leave.STORE)
    mutated = Plan.make(plan.order, rs)
    assert validate(problem, mutated) == []
    extra = problem.graph.tensors[rs[i].tensor].size_bytes
    before, after = evaluate(problem, plan), evaluate(problem, mutated)
    assert after.non_compulsory_bytes == before.non_compulsory_bytes + extra


def test_a_weight_stay_in_activations_scope_names_the_weight() -> None:
    """It said 'residency t4 [1, 2) @ 14336 load->drop names tensor id 4, which is not an
    in-scope tensor': an id where the plan file has a name."""
    order, residencies, _ = CASES[V.UNKNOWN_TENSOR]
    (violation,) = validate(hand_problem(), Plan.make(order, residencies))
    assert violation.message.startswith("weight 'w' has a residency [1, 2), but scope")
    assert "scope all" in violation.message and "tensor id" not in violation.message
    assert violation.tensors == (W,) and violation.steps == (1,)


def test_a_broken_order_still_reports_the_rules_that_need_no_steps() -> None:
    """With an order that is not a permutation, only that was reported: an empty plan
    said 'order has 0 entries' and nothing of its unstored output or unproduced
    activations. Rules that need the producer's step are the only ones left out."""
    residencies = [*_edit(D, 3, leave=Leave.DROP), Residency(X, 0, 2, 14336, Arrive.LOAD)]
    kinds = {v.kind for v in validate(hand_problem(), Plan.make([0, 1, 1, 3], residencies))}
    assert kinds == {V.ORDER_NOT_PERMUTATION, V.OUTPUT_NOT_STORED, V.TIME_OVERLAP}
    empty = {v.kind for v in validate(hand_problem(), Plan.make([], []))}
    assert empty == {V.ORDER_NOT_PERMUTATION, V.PRODUCE_COUNT, V.OUTPUT_NOT_STORED}


# ----------------------------------------------------------------- large plans
def test_report_lists_a_few_of_each_kind_and_counts_every_one() -> None:
    """2,000 copies of one stay gave 2 million address-overlap lines (7 s, 200 MB of
    text; 59 s and 4 GB with --json). A report lists the first of each kind and counts
    every violation; validate() still returns them all."""
    copies = [Residency(A, 0, 4, 1024, Arrive.PRODUCE)] * 300
    problem, plan = hand_problem(), Plan.make(ORDER, [*hand_residencies(), *copies])
    every = validate(problem, plan)
    report = validate_report(problem, plan, per_kind=5)
    by_kind = {kind: [v for v in every if v.kind is kind] for kind in V}
    assert dict(report.counts) == {k: len(vs) for k, vs in by_kind.items() if vs}
    assert report.counts == (
        (V.PRODUCE_COUNT, 1),
        (V.TIME_OVERLAP, 300),
        (V.ADDRESS_OVERLAP, 301 * 300 // 2),
    )
    assert report.total == len(every) and not report.valid
    seen: dict[V, int] = {}
    first_five = []
    for v in every:
        seen[v.kind] = seen.get(v.kind, 0) + 1
        if seen[v.kind] <= 5:
            first_five.append(v)
    assert list(report.listed) == first_five
    assert report.unlisted == {V.TIME_OVERLAP: 295, V.ADDRESS_OVERLAP: 301 * 300 // 2 - 5}
    assert validate_report(problem, plan, per_kind=None).listed == tuple(every)
    assert validate_report(hand_problem(), hand_plan()).valid
    with pytest.raises(InvalidPlanError, match="per_kind"):
        validate_report(problem, plan, per_kind=-1)


def test_every_overlapping_pair_is_reported_once() -> None:
    """The sweep finds exactly the pairs an all-pairs comparison finds, on random stays
    (many colliding, at random offsets and times)."""
    problem = hand_problem(Scope.ALL)
    size = {t.id: t.size_bytes for t in problem.graph.tensors}
    for seed in range(200):
        rng = random.Random(seed)
        stays = []
        for _ in range(rng.randint(0, 14)):
            start = rng.randrange(4)
            tensor = rng.randrange(6)
            stays.append(
                Residency(tensor, start, rng.randint(start + 1, 4), 64 * rng.randrange(40))
            )
        expected = sorted(
            (tuple(sorted((a.tensor, b.tensor))), max(a.start, b.start))
            for k, a in enumerate(stays)
            for b in stays[k + 1 :]
            if max(a.start, b.start) < min(a.end, b.end)
            and max(a.offset, b.offset) < min(a.offset + size[a.tensor], b.offset + size[b.tensor])
        )
        found = sorted(
            (tuple(sorted(v.tensors)), v.steps[0])
            for v in validate(problem, Plan.make(ORDER, stays))
            if v.kind is V.ADDRESS_OVERLAP
        )
        assert found == expected, seed


def test_overlapping_pairs_are_counted_as_many_as_are_listed() -> None:
    """The count of a report that lists only some pairs is the number of pairs listed
    when all are (random stays, many colliding, at random offsets and times)."""
    problem = hand_problem(Scope.ALL)
    for seed in range(200):
        rng = random.Random(seed)
        stays = []
        for _ in range(rng.randint(0, 30)):
            start = rng.randrange(4)
            stays.append(
                Residency(
                    rng.randrange(6), start, rng.randint(start + 1, 4), 64 * rng.randrange(40)
                )
            )
        plan = Plan.make(ORDER, stays)
        every = validate_report(problem, plan, per_kind=None)
        listed = sum(v.kind is V.ADDRESS_OVERLAP for v in every.listed)
        for per_kind in (0, 1, 5):
            counts = dict(validate_report(problem, plan, per_kind=per_kind).counts)
            assert counts.get(V.ADDRESS_OVERLAP, 0) == listed, (seed, per_kind)


def test_billions_of_overlapping_pairs_are_counted_in_seconds() -> None:
    """Every pair was enumerated to be counted: 12,000 copies of one plan (a 76 MB plan
    file) took half an hour in memplan validate; 1,000 copies of it, 33 million pairs, 10 s.
    Past the listed ones they are counted without being enumerated."""
    copies = 6_000
    problem = hand_problem()
    plan = Plan.make(ORDER, list(hand_residencies()) * copies)
    started = time.perf_counter()
    report = validate_report(problem, plan)
    assert time.perf_counter() - started < 5.0  # about 0.4 s; enumerating them: 30 s
    # The hand plan is valid: only the copies of one stay overlap, pairwise.
    stays = sum(problem.in_scope[r.tensor] for r in hand_residencies())
    expected = stays * copies * (copies - 1) // 2
    assert dict(report.counts)[V.ADDRESS_OVERLAP] == expected
    assert sum(v.kind is V.ADDRESS_OVERLAP for v in report.listed) == 20


def test_a_valid_plan_with_one_large_tensor_validates_in_linear_time() -> None:
    """The overlap sweep walked down every live stay below a new one as far as the
    largest tensor could reach: one 1 MiB tensor among 20,000 live 64-byte stays made a
    valid plan take minutes (6,000: 5 s). A new stay that overlaps nothing live can only
    touch its neighbours in offset order."""
    n, big = 20_000, 1 << 20
    g = GraphBuilder("many_live")
    large = g.tensor("large", big, TensorKind.INPUT)
    small = [g.tensor(f"in{k}", 64, TensorKind.INPUT) for k in range(n)]
    outs = [g.tensor(f"out{k}", 64, is_output=True) for k in range(n)]
    g.op("first", "Relu", [large, small[0]], [outs[0]])
    for k in range(1, n):
        g.op(f"op{k}", "Relu", [small[k]], [outs[k]])
    accelerator = Accelerator("wide", 64 * (n + 1) + big, alignment_bytes=64)
    problem = Problem(g.build(), accelerator)
    residencies = [Residency(large, 0, 1, 64 * (n + 1), Arrive.LOAD)]
    residencies += [Residency(small[k], 0, k + 1, 64 * k, Arrive.LOAD) for k in range(n)]
    residencies += [
        Residency(outs[k], k, k + 1, 64 * n, Arrive.PRODUCE, Leave.STORE) for k in range(n)
    ]
    plan = Plan.make(list(range(n)), residencies)
    started = time.perf_counter()
    assert validate(problem, plan) == []
    assert time.perf_counter() - started < 5.0  # about 0.5 s; the quadratic sweep: minutes
