"""A traffic lower bound from one part of the graph, solved on its own by the ilp.

On large graphs the crowded-region bound of :mod:`memplan.traffic_bound` is weak where
the traffic comes from a few large tensors read far apart (nasnet_a_large at MH: the
stem's 10.45 MB output, read by three branches that each need 20.9 MB around them, must
be stored and reloaded; that bound proves 8.0 MB). The ilp solves the part of the graph
around such a tensor exactly in seconds, and what it proves there holds for the whole.

Lemma. Let ``P`` be any set of ops and ``Q`` the problem of the subgraph ``P`` induces
(:meth:`memplan.ir.Graph.subgraph`: a tensor produced outside ``P`` and read in it becomes
a graph input of ``Q``; every other tensor keeps its kind and output flag), at the same
capacity, alignment and scope. Then every valid plan ``W`` of the whole problem moves at
least ``OPT(Q)`` non-compulsory bytes.

Proof. Restrict ``W`` to ``P``: the ops of ``P`` in ``W``'s relative order (a topological
order of ``Q``), and a tensor of ``Q`` resident at the step of an op of ``P`` exactly when
``W`` has it resident at that op's step, at ``W``'s offset. At each step the residents are
some of ``W``'s, so they fit and do not overlap, and every op finds its tensors on chip:
the restriction ``R`` is a valid plan of ``Q``. A non-compulsory load in ``R`` (a tensor
on chip at one step of ``P`` after having been on chip at an earlier one and off chip
between) is matched by a load in ``W`` between those two steps, a different one for each
(the intervals between consecutive steps of ``P`` are disjoint), and that load is not
``W``'s first load of the tensor, so it is not compulsory in ``W`` either. A
non-compulsory store in ``R`` stores an activation of ``Q`` that is not a graph output
(an activation of ``Q`` is produced in ``P``), once, before a reload: ``W`` reloads it
too, so ``W`` stores it, and not compulsorily. Hence ``W`` moves at least what ``R``
moves, and ``R`` at least ``OPT(Q)``. Dropping the offsets (only the bytes on chip per
step bounded) relaxes ``Q`` further, so a bound the ilp proves for that model holds as
well. QED

Several parts do not simply add (a tensor read in two parts could be counted twice)
unless each tensor is charged in one part only, which the next lemma does.

Lemma 2 (parts that own disjoint tensors add). Let ``P_1 .. P_m`` be disjoint sets of
ops, and give every in-scope tensor at most one *owner* among them. Let ``Q_k`` be the
problem of ``P_k`` in which the ops no longer read the tensors ``P_k`` does not own
(``Graph.subgraph(P_k, unread=...)``: such a tensor produced in ``P_k`` stays an
output there that no op reads; one produced elsewhere is not part of ``Q_k``). Then
every valid plan ``W`` of the whole problem moves at least ``OPT(Q_1) + .. +
OPT(Q_m)`` non-compulsory bytes.

Proof. Build ``R_k`` from ``W`` as in the first lemma, for the tensors of ``Q_k``,
except that a tensor ``P_k`` does not own keeps only its first stay, cut to the step
of its producer (its ``produce`` stay, ending in ``drop``, or in ``store`` for a graph
output: compulsory). Nothing reads it in ``Q_k``, so ``R_k`` is a valid plan of
``Q_k``, and its non-compulsory bytes are moves of tensors ``P_k`` owns. The first
lemma's matching sends each of them to a non-compulsory move of the same tensor in
``W``, a different one for each. Owners are unique, so the moves matched for
different parts are moves of different tensors, and no move of ``W`` is matched
twice: ``W`` moves at least ``sum_k cost(R_k) >= sum_k OPT(Q_k)``, and at least the sum
of any bounds the ilp proves for the ``Q_k`` without placement. A part that owns no
tensor the plan ``W`` moves beyond the compulsory adds 0 (``R_k`` moves nothing), so
only the other parts are solved. QED

Lemma 3 (weights streamed relax). In ``all`` scope, let ``A`` be the same problem in
``activations`` scope at the same capacity. Every valid plan ``W`` of the first moves
at least ``OPT(A)`` non-compulsory bytes. Proof: drop ``W``'s stays of weights. Each op
still finds its activations and graph inputs on chip, fewer tensors share each step,
so this is a valid plan of ``A`` (whose streamed weights are compulsory), and its
non-compulsory bytes are ``W``'s moves of activations and inputs only. QED Its parts
have fewer tensors, so the ilp proves as much sooner where weights do not crowd
(darts_v2_cifar, all, M_R: 4.13 MB in 16 s against 23 s with the weights).

:func:`additive_bound` cuts an order into runs of consecutive steps at narrow places
(few live bytes cross, as dnc cuts its parts), and gives each tensor to the run that
holds it longest (the span from its first to its last touch there; ties go to the
later run), where its pressure is.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from memplan.cut import crossing_bytes
from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem, Scope
from memplan.solver import Budget
from memplan.solvers.dnc.cuts import choose_cuts
from memplan.solvers.dnc.search import (
    RunSettings,
    constant_bytes,
    part_solver_class,
    resolve_run,
)
from memplan.solvers.replacement import simulate

#: Window start candidates looked at: the first steps of the largest reloaded tensors.
CANDIDATES = 64


@dataclass(frozen=True)
class PartBound:
    """What one part proves."""

    steps: tuple[int, int]  # the part: steps [start, end) of the plan's order
    bound_bytes: int  # non-compulsory bytes every plan of the whole moves at least
    optimal: bool  # the ilp proved the part's relaxation optimal (the bound is its optimum)

    @property
    def method(self) -> str:
        """How the bound was found, for messages (the caller names the order)."""
        return f"the ilp without placement on steps {self.steps[0]}-{self.steps[1]}"


def busiest_window(problem: Problem, plan: Plan, width: int) -> tuple[int, int]:
    """Steps ``[start, start + width)`` of ``plan``'s order whose tensors reload the most
    bytes while their first stay on chip starts inside them too (so the part sees why
    they were reloaded)."""
    n = len(plan.order)
    if n <= width:
        return 0, n
    first: dict[int, int] = {}
    starts, reloads, sizes = [], [], []
    for stay in sorted(plan.residencies, key=lambda r: r.start):
        if stay.tensor in first:
            starts.append(first[stay.tensor])
            reloads.append(stay.start)
            sizes.append(problem.aligned_sizes_bytes[stay.tensor])
        else:
            first[stay.tensor] = stay.start
    if not reloads:
        return 0, width
    a, s, b = np.array(starts), np.array(reloads), np.array(sizes, np.int64)
    candidates = {min(int(x), n - width) for x in a[np.argsort(-b)[:CANDIDATES]]}
    scored = [(int(b[(a >= w) & (s < w + width)].sum()), -w) for w in candidates]
    best = max(scored)
    return -best[1], -best[1] + width


def part_bound(
    problem: Problem,
    plan: Plan,
    width: int,
    settings: RunSettings,
    budget: Budget,
) -> PartBound | None:
    """The bound of the lemma for the busiest ``width`` steps of ``plan``
    (:func:`busiest_window`; None when the ilp proves nothing in the budget).

    Args:
        problem: the whole problem.
        plan: a plan of it (its order and reloads choose the part).
        width: ops in the part.
        settings: how the ilp runs (its placement setting is ignored: no offsets).
        budget: the time for the part's plan and the ilp.
    """
    start, end = busiest_window(problem, plan, width)
    return window_bound(problem, plan.order, start, end, settings, budget)


def window_bound(
    problem: Problem,
    order: Sequence[int],
    start: int,
    end: int,
    settings: RunSettings,
    budget: Budget,
) -> PartBound | None:
    """The bound of the lemma for the ops at steps ``[start, end)`` of ``order`` (None
    when the ilp proves nothing in the budget); the part's search starts from the greedy
    stack's stays of those ops in that order."""
    return _owned_part_bound(problem, order, start, end, (), settings, budget)


def _owned_part_bound(
    problem: Problem,
    order: Sequence[int],
    start: int,
    end: int,
    unread: Sequence[int],
    settings: RunSettings,
    budget: Budget,
) -> PartBound | None:
    """What the ilp without placement proves for the ops at steps ``[start, end)`` of
    ``order`` when they do not read ``unread`` (Lemma 1 with ``unread`` empty, a part of
    Lemma 2 otherwise; None when it proves nothing in the budget)."""
    ops = [int(o) for o in order[start:end]]
    sub = problem.graph.subgraph(ops, unread=unread)
    part = Problem(sub.graph, problem.accelerator, problem.scope).with_capacity(
        problem.capacity_bytes
    )
    position = {o: i for i, o in enumerate(ops)}
    part_order = sorted(range(len(ops)), key=lambda o: position[int(sub.parent_ops[o])])
    # Belady's stays, no offsets: the hint of a run without placement (greedy's whole
    # stack packed them too, half a second per run of 48 ops for nothing).
    seed = simulate(part, part_order, part.capacity_bytes).plan(part_order)
    if budget.should_stop():
        return None
    # Every order of the part (also under inner=ilp-fixed: a bound must hold for all),
    # no offsets; CP-SAT's deterministic work grows with the part (window_time_s per 16).
    relaxed = replace(
        settings, placement=False, fixed_order=False, work_s=settings.work_s * len(ops) / 16
    )
    _, _, outcome = resolve_run(part, seed, 0, len(ops), relaxed, budget)
    if outcome.bound_bytes is None:
        return None
    moved = max(0, outcome.bound_bytes - constant_bytes(part))
    return PartBound((start, end), moved, outcome.optimal)


@dataclass(frozen=True)
class AdditiveBound:
    """What the parts of :func:`additive_bound` prove together."""

    bound_bytes: int  # non-compulsory bytes every plan of the whole moves at least
    width: int  # steps per part asked for (each between half and 1.5 times it)
    parts: tuple[PartBound, ...]  # the parts that proved more than 0
    solved: int  # parts the ilp ran on (those owning tensors the plan moves)
    to_solve: int  # parts owning tensors the plan moves (the others add 0)

    @property
    def method(self) -> str:
        """How the bound was found, for messages (the caller names the order)."""
        return (
            f"the ilp without placement on {self.solved} of {self.to_solve} parts of about "
            f"{self.width} steps that own disjoint tensors, added"
        )


def moved_bytes_per_tensor(problem: Problem, plan: Plan) -> dict[int, int]:
    """Per tensor, the non-compulsory bytes ``plan`` moves for it (loads beyond a weight's
    or input's first, every load of an activation, stores beyond a graph output's one,
    and an activation's stores); tensors that move nothing extra are left out."""
    graph = problem.graph
    loads: dict[int, int] = {}
    stores: dict[int, int] = {}
    for stay in plan.residencies:
        if stay.arrive is Arrive.LOAD:
            loads[stay.tensor] = loads.get(stay.tensor, 0) + 1
        if stay.leave is Leave.STORE:
            stores[stay.tensor] = stores.get(stay.tensor, 0) + 1
    moved: dict[int, int] = {}
    for tensor in loads.keys() | stores.keys():
        info = graph.tensors[tensor]
        free_loads = 0 if info.kind is TensorKind.ACTIVATION else 1
        extra = max(0, loads.get(tensor, 0) - free_loads)
        extra += max(0, stores.get(tensor, 0) - (1 if info.is_output else 0))
        if extra:
            moved[tensor] = extra * info.size_bytes
    return moved


def tensor_owners(problem: Problem, order: Sequence[int], cuts: Sequence[int]) -> dict[int, int]:
    """Per in-scope tensor, the run of ``order`` that owns it (Lemma 2; run ``k`` is the
    steps from cut ``k - 1`` to cut ``k``, the cuts increasing, strictly inside the
    order): the one with the longest span of its touches (ties: the later run)."""
    spans: dict[int, dict[int, tuple[int, int]]] = {}
    in_scope = problem.in_scope
    for step, op in enumerate(order):
        part = bisect.bisect_right(cuts, step)
        node = problem.graph.ops[op]
        for tensor in (*node.inputs, *node.outputs):
            if in_scope[tensor]:
                first, _ = spans.setdefault(tensor, {}).get(part, (step, step))
                spans[tensor][part] = (first, step)
    return {
        tensor: max(parts, key=lambda k: (parts[k][1] - parts[k][0], k))
        for tensor, parts in spans.items()
    }


def weights_streamed(problem: Problem, plan: Plan) -> tuple[Problem, Plan]:
    """Lemma 3's relaxation of an ``all``-scope problem: the same problem in
    ``activations`` scope, and ``plan`` without its stays of weights (a valid plan of
    it). A problem already in ``activations`` scope comes back as it is."""
    if problem.scope is Scope.ACTIVATIONS:
        return problem, plan
    relaxed = Problem(problem.graph, problem.accelerator, Scope.ACTIVATIONS).with_capacity(
        problem.capacity_bytes
    )
    kept = tuple(r for r in plan.residencies if relaxed.in_scope[r.tensor])
    return relaxed, Plan(plan.order, kept)


def additive_bound(
    problem: Problem,
    plan: Plan,
    width: int,
    settings: RunSettings,
    budget: Budget,
) -> AdditiveBound | None:
    """The bound of Lemma 2 for runs of about ``width`` steps of ``plan``'s order (cut at
    narrow places: :func:`memplan.solvers.dnc.cuts.choose_cuts`), the runs owning the
    most moved bytes first; cut short by ``budget``, the parts solved so far
    still add up to a bound (None when they prove nothing).

    Args:
        problem: the whole problem.
        plan: a valid plan of it (its order makes the runs; its moves choose the runs
            worth solving).
        width: steps per run (between half and one and a half times it).
        settings: how the ilp runs (its placement setting is ignored: no offsets).
        budget: the time for every part.
    """
    order = [int(o) for o in plan.order]
    # Runs end at narrow places of the order (few live bytes cross, as dnc's parts):
    # a crowded region then lies inside one run, with the tensors that crowd it.
    cuts = choose_cuts(list(crossing_bytes(problem, order)), width)
    bounds = [0, *cuts, len(order)]
    owners = tensor_owners(problem, order, cuts)
    moved = moved_bytes_per_tensor(problem, plan)
    owned_moved: dict[int, int] = {}
    for tensor, nbytes in moved.items():
        if tensor in owners:
            owned_moved[owners[tensor]] = owned_moved.get(owners[tensor], 0) + nbytes
    runs = sorted(owned_moved, key=lambda k: (-owned_moved[k], k))
    found: list[PartBound] = []
    solved = 0
    for left, part in zip(range(len(runs), 0, -1), runs, strict=True):
        if budget.should_stop():
            break
        start, end = bounds[part], bounds[part + 1]
        unread = [t for t, owner in owners.items() if owner != part]
        # An even share of the time left: one hard part must not starve the others.
        share = Budget(time_limit_s=budget.remaining_s() / left, stop_event=budget.stop_event)
        got = _owned_part_bound(problem, order, start, end, unread, settings, share)
        solved += 1
        if got is not None and got.bound_bytes > 0:
            found.append(got)
    if not found:
        return None
    total = sum(p.bound_bytes for p in found)
    return AdditiveBound(total, width, tuple(found), solved, len(runs))


def ilp_part_bound(
    problem: Problem, plan: Plan, width: int, budget: Budget, seed: int = 0
) -> PartBound | None:
    """:func:`part_bound` with the ilp's defaults as dnc runs it (1 deterministic second
    of CP-SAT work per 16 ops, one thread), for solvers without settings of their own.

    Raises:
        ConfigError: when the ilp's CP-SAT backend is not installed.
    """
    settings = RunSettings(
        part_solver=part_solver_class(), fixed_order=False, work_s=1.0, workers=1, seed=seed
    )
    return part_bound(problem, plan, width, settings, budget)
