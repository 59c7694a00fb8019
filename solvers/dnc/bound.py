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

Several parts do not simply add (a tensor read in two parts could be counted twice);
the bound is the largest single part's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from memplan.plan import Plan
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.solvers.dnc.search import (
    RunSettings,
    constant_bytes,
    part_solver_class,
    resolve_run,
    without_offsets,
)
from memplan.solvers.greedy import plan_given_order

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
    stack's plan of those ops in that order."""
    ops = [int(o) for o in order[start:end]]
    sub = problem.graph.subgraph(ops)
    part = Problem(sub.graph, problem.accelerator, problem.scope).with_capacity(
        problem.capacity_bytes
    )
    position = {o: i for i, o in enumerate(ops)}
    part_order = sorted(range(len(ops)), key=lambda o: position[int(sub.parent_ops[o])])
    seed_plan = plan_given_order(part, part_order, budget)
    if seed_plan.plan is None or budget.should_stop():
        return None
    # Every order of the part (also under inner=ilp-fixed: a bound must hold for all),
    # no offsets; CP-SAT's deterministic work grows with the part (window_time_s per 16).
    relaxed = replace(
        settings, placement=False, fixed_order=False, work_s=settings.work_s * len(ops) / 16
    )
    _, _, outcome = resolve_run(part, without_offsets(seed_plan.plan), 0, len(ops), relaxed, budget)
    if outcome.bound_bytes is None:
        return None
    moved = max(0, outcome.bound_bytes - constant_bytes(part))
    return PartBound((start, end), moved, outcome.optimal)


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
