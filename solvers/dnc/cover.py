"""A traffic lower bound from covering the crowded ops (the *cut-cover* bound), by CP-SAT.

The crowded-region bound (:mod:`memplan.traffic_bound`) counts the excess at a few steps,
and its regions share tensors, so it cannot add up the spills a long graph forces cell
after cell. This bound charges each tensor at most once, whichever ops it crowds:

    x_t = 1   tensor t is reloaded at least once (it costs c_t, below)
    at op o:  every tensor live across o's step and never reloaded sits on chip there,
              beside o's own working set

Lemma. Let W be a valid plan with order pi, and x_t = 1 when W loads tensor t other than
compulsorily (else 0). Take an op o and a tensor t that o does not touch, live at o's step
under pi (touched before and read after it). If x_t = 0, t is on chip at o's step: an
activation never reloaded stays on chip from its production to its last read, an input
or weight loaded once stays from its first to its last read. The tensors on chip at that
step do not overlap and start at aligned offsets below the capacity C, o's own in-scope
tensors among them, so

    sum of aligned(t) over tensors live across o with x_t = 0  <=  align_up(C) - W(o)

with W(o) the aligned bytes of o's distinct in-scope tensors. Every reload is
non-compulsory; an activation that is not a graph output is also stored before it (not
compulsory either), so W moves at least sum_t c_t x_t non-compulsory bytes, where c_t is
twice t's size for such an activation and its size otherwise.

The model below has, for each chosen op o, a variable b(o, v) for every op v that may run
on either side of o (1: before o; an ancestor of o is 1, a descendant 0) with
b(o, v) <= b(o, u) for each edge u -> v between such ops, a live indicator forced to 1
when t's producer (for an input, one of its readers) is before o and one of t's readers
after, and the capacity row above. W's own order and x satisfy every row, so the least
sum_t c_t x_t over the model is at most W's traffic, for every valid W; leaving ops,
tensors or edges out only lowers that least value. The bound reported is CP-SAT's proven
lower bound on the model's optimum, so it holds even when the search is cut short.

Each op gets an order of its own, which is what keeps the model small and also what makes
it weaker than the truth: darts_v2_cifar (activations, M_R) proves 2.06 MB, where dnc's
plan moves 7.45 MB. It pays on graphs whose crowded ops are many and far apart:
randwire_ws_regular (activations, M_R) 27.3 MB in 0.3 s, against 13.9 MB for the crowded
regions; randwire_ws_large (activations, M_R) 11.6 MB in 60 s, where nothing else
proved anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memplan.analysis import working_set_bytes
from memplan.ir import TensorKind
from memplan.problem import Problem
from memplan.schedule import op_closures
from memplan.solver import Budget
from memplan.units import align_up

#: Order variables the model may hold in all: the most crowded ops come first, and ops
#: stop being added when the next one would pass it (randwire_ws_large at M_R: 41,529
#: for 298 ops; 100,000 were solved in 10-30 s).
MAX_ORDER_VARIABLES = 100_000


@dataclass(frozen=True)
class CoverBound:
    """What the cut-cover model proves."""

    bound_bytes: int  # non-compulsory bytes every valid plan moves at least
    ops: int  # crowded ops in the model
    optimal: bool  # CP-SAT solved the model (the bound is its optimum)

    @property
    def method(self) -> str:
        """How the bound was found, for messages."""
        return f"the cut-cover model of {self.ops} crowded ops"


def cover_bound(
    problem: Problem,
    budget: Budget,
    *,
    seed: int = 0,
    workers: int = 1,
    max_order_variables: int = MAX_ORDER_VARIABLES,
) -> CoverBound | None:
    """The cut-cover bound of ``problem`` (module docstring), within ``budget``.

    Returns:
        The bound, or None when no op is crowded, the model is empty, or CP-SAT proved
        nothing in time.
    """
    from ortools.sat.python import cp_model

    from memplan.solvers.ilp.cpsat import run_search

    built = _build(problem, max_order_variables, budget.should_stop)
    if built is None:
        return None
    model, ops = built
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(budget.remaining_s(), 0.01)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    # The ilp's runner: the limit and Ctrl-C stop the search, a second Ctrl-C aborts
    # cleanly, and a search that ignores both is abandoned (None).
    status = run_search(model, solver, budget)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN):
        return None  # (infeasible only below M_R, where no plan exists)
    # The proven bound on the model's optimum, also when the search was cut short; the
    # objective's coefficients are whole bytes, so it rounds down to a whole number.
    bound = math.floor(solver.best_objective_bound + 1e-6)
    if bound <= 0:
        return None
    return CoverBound(bound, ops, status == cp_model.OPTIMAL)


def _build(
    problem: Problem, max_order_variables: int, should_stop: Callable[[], bool]
) -> tuple[Any, int] | None:
    """The CP-SAT model and the number of crowded ops in it (None: nothing to model)."""
    from ortools.sat.python import cp_model

    graph = problem.graph
    sizes, in_scope = problem.aligned_sizes_bytes, problem.in_scope
    usable = align_up(problem.capacity_bytes, problem.alignment_bytes)
    working = working_set_bytes(graph, sizes, in_scope)
    candidates = [
        t for t in range(graph.num_tensors) if in_scope[t] and graph.consumers[t] and sizes[t] > 0
    ]
    if not candidates:
        return None
    largest = max(sizes[t] for t in candidates)
    # Only an op with less room than the largest tensor can force anything on its own
    # row; the tightest rows first.
    crowded = sorted(
        (o for o in range(graph.num_ops) if usable - working[o] < largest),
        key=lambda o: usable - working[o],
    )
    if not crowded:
        return None
    ancestors, descendants = op_closures(graph)
    touched: list[set[int]] = [set() for _ in range(graph.num_ops)]
    for t in range(graph.num_tensors):
        for reader in graph.consumers[t]:
            touched[reader].add(t)
        producer = graph.producer[t]
        if producer is not None:
            touched[producer].add(t)
    model = cp_model.CpModel()
    spilled: dict[int, Any] = {}
    order_variables = 0
    rows = 0
    for o in crowded:
        if should_stop() or order_variables >= max_order_variables:
            break
        before: dict[int, Any] = {}

        def side(v: int, o: int = o, before: dict[int, Any] = before) -> Any:
            """1 (v runs before o in every order), 0 (after, or v is o), or a variable."""
            if (ancestors[o] >> v) & 1:
                return 1
            if v == o or (descendants[o] >> v) & 1:
                return 0
            if v not in before:
                before[v] = model.new_bool_var(f"b{o}_{v}")
            return before[v]

        terms = []
        for t in candidates:
            if t in touched[o]:
                continue
            readers = list(dict.fromkeys(graph.consumers[t]))
            producer = graph.producer[t]
            earlier = [side(producer)] if producer is not None else [side(r) for r in readers]
            later = [side(r) for r in readers]
            if all(_fixed(e, 0) for e in earlier) or all(_fixed(r, 1) for r in later):
                continue  # never live across o
            if any(_fixed(e, 1) for e in earlier) and any(_fixed(r, 0) for r in later):
                live: Any = 1  # live across o in every order
            else:
                live = model.new_bool_var("")
                for e in earlier:
                    for r in later:
                        if not _fixed(e, 0) and not _fixed(r, 1):
                            model.add(live >= e - r)  # e before o and r after: live
            if t not in spilled:
                spilled[t] = model.new_bool_var(f"x{t}")
            resident = model.new_bool_var("")
            model.add(resident >= live - spilled[t])
            terms.append(sizes[t] * resident)
        for v, var in before.items():
            for u in graph.predecessors(v):  # type: ignore[arg-type]
                if u in before:
                    model.add(var <= before[u])
        order_variables += len(before)
        if terms:
            model.add(sum(terms) <= usable - working[o])
            rows += 1
    if not rows:
        return None
    model.minimize(sum(_cost(problem, t) * x for t, x in spilled.items()))
    return model, rows


def _fixed(side: Any, value: int) -> bool:
    """Whether an op's side of ``o`` is the constant ``value`` (not a variable)."""
    return isinstance(side, int) and side == value


def _cost(problem: Problem, tensor: int) -> int:
    """Non-compulsory bytes a reload of ``tensor`` costs at least (store and load for an
    activation that is not a graph output, the load alone otherwise)."""
    info = problem.graph.tensors[tensor]
    twice = info.kind is TensorKind.ACTIVATION and not info.is_output
    return info.size_bytes * (2 if twice else 1)
