"""The solver conformance suite: what every memplan solver must do, whoever wrote it.

Like scikit-learn's ``check_estimator``: call :func:`check_solver` with a registered
name, a ``package.module:Class`` path or a solver instance, and it runs every check on
the tiny hand-written graphs (``memplan.graphs`` ``tiny/*.json``) and on seeded random
DAGs, in both scopes, at the capacities M_R, M_H, M_P, "everything fits" and below M_R.
A failed check raises ``AssertionError`` naming the graph, scope, capacity and rule.

Checks per case (all provable for any solver; nothing assumes a solver is good):

- the problem is not mutated;
- below M_R the status is INFEASIBLE, without a plan, and the message names M_R;
- at or above M_R the status is not INFEASIBLE (a plan exists) and OPTIMAL/FEASIBLE
  come with a plan; TIMEOUT may come without one;
- a plan passes the validator, covers every op, and survives its JSON round trip;
- the reported cost equals the cost model's cost of the plan;
- non-compulsory bytes are >= 0 and >= the reported lower bound, which is >= 0;
  OPTIMAL implies they equal it;
- a second solve with the same options (same seed) gives the same plan, unless a
  timeout made either run stop early.

On :func:`exact_cases` (tiny graphs whose optimum over all plans is known by the
exhaustive search of :mod:`memplan.testing.bruteforce`): a reported lower bound is at
most the optimum, a plan is at least the optimum, and OPTIMAL means equal to it.

Time (:func:`check_time_limit`): on a graph no solver plans well in a second, a solve
with ``time_limit_s`` returns within ``time_limit_s +``
:data:`memplan.solver.RETURN_GRACE_S`, with a valid plan or none. One-time costs
(imports, compiling kernels that memplan caches on disk) are excluded: the solve runs
once, untimed, before the timed run.

Protocol (:func:`check_solver_class`): a frozen dataclass with a ``name``, documented
options, an unknown option refused, and a ``seed`` accepting exactly
``0 .. memplan.options.SEED_MAX``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.cost import evaluate
from memplan.ir import Graph, graph_from_json, graph_to_dict
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.solver import RETURN_GRACE_S, Budget, Status, make_solver, solver_class
from memplan.testing.bruteforce import min_traffic
from memplan.testing.graphs import random_dag, tiny_spill_graph
from memplan.testing.plugins import check_plugin_class
from memplan.validate import validate

#: The capacities every case is run at (``ALL`` = the sum of aligned in-scope sizes).
CAPACITIES = ("MR", "MH", "MP", "ALL", "BELOW-MR")

#: Default time limit per solve, in seconds.
TIME_LIMIT_S = 10.0

#: The brute-force cases: (seed, ops, scope, KiB above M_R) of
#: :func:`~memplan.testing.graphs.tiny_spill_graph` at a 1 KiB alignment. Chosen so that
#: the exhaustive search takes well under a second each, and most need spills (their
#: optimum is 1 to 6 KiB; the last two are 0).
EXACT_CASES: tuple[tuple[int, int, Scope, int], ...] = (
    (4, 4, Scope.ACTIVATIONS, 0),
    (1, 5, Scope.ACTIVATIONS, 0),
    (1, 5, Scope.ALL, 0),
    (3, 5, Scope.ACTIVATIONS, 0),
    (4, 5, Scope.ACTIVATIONS, 0),
    (4, 5, Scope.ALL, 0),
    (10, 5, Scope.ACTIVATIONS, 0),
    (11, 5, Scope.ALL, 0),
    (20, 6, Scope.ACTIVATIONS, 0),
    (22, 6, Scope.ALL, 0),
    (3, 5, Scope.ACTIVATIONS, 1),
    (4, 5, Scope.ACTIVATIONS, 1),
)

#: The time-limit check: ops of the random DAG, and the limit of the timed solve.
TIME_CHECK_OPS = 120
TIME_CHECK_LIMIT_S = 1.0


@dataclass(frozen=True)
class Case:
    """One problem of the suite."""

    id: str  # e.g. "diamond/activations/MH"
    problem: Problem  # graph, accelerator (capacity set) and scope
    capacity_spec: str  # one of CAPACITIES


def tiny_graphs() -> list[Graph]:
    """The hand-written tiny graphs shipped in ``memplan.graphs`` ``tiny/*.json``."""
    folder = resources.files("memplan.graphs") / "tiny"
    graphs = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            graphs.append(graph_from_json(entry.read_text(encoding="utf-8"), entry.name))
    return graphs


def random_graphs(seeds: range = range(4), n_ops: int = 12) -> list[Graph]:
    """Seeded random DAGs (:func:`memplan.testing.graphs.random_dag`)."""
    return [random_dag(seed, n_ops) for seed in seeds]


def capacity_of(spec: str, problem: Problem) -> int:
    """Bytes meant by one of :data:`CAPACITIES` for ``problem``."""
    if spec == "BELOW-MR":
        # The largest aligned capacity below M_R: there no plan exists. (M_R - 1 is not
        # aligned, and a plan may end its top tensor in the unaligned tail: the solvers
        # refuse such a capacity rather than claim INFEASIBLE; see Problem.least_capacity_bytes.)
        return max(problem.min_resident_bytes - problem.alignment_bytes, 0)
    if spec == "ALL":
        return sum(problem.aligned_sizes_bytes[t] for t in problem.scoped_tensors())
    return resolve_budget(spec, problem).capacity_bytes


def cases(graphs: list[Graph] | None = None, alignment_bytes: int = 64) -> Iterator[Case]:
    """Every (graph, scope, capacity) case; tiny and random graphs by default."""
    if graphs is None:
        graphs = tiny_graphs() + random_graphs()
    accelerator = Accelerator("conformance", 0, alignment_bytes=alignment_bytes)
    for graph in graphs:
        for scope in Scope:
            base = Problem(graph, accelerator, scope)
            for spec in CAPACITIES:
                problem = base.with_capacity(capacity_of(spec, base))
                yield Case(f"{graph.name}/{scope.value}/{spec}", problem, spec)


def _instance(solver: Any) -> Any:
    return make_solver(solver) if isinstance(solver, str) else solver


def _fresh_copy(solver: Any) -> Any:
    """A new instance with the same options (same seed)."""
    if dataclasses.is_dataclass(solver) and not isinstance(solver, type):
        return dataclasses.replace(solver)
    return solver


def check_solver_class(solver: Any) -> None:
    """Protocol checks: a frozen dataclass with a name, a seed and documented options."""
    cls = solver_class(solver) if isinstance(solver, str) else type(solver)
    ref = solver if isinstance(solver, str) else f"{cls.__module__}:{cls.__name__}"
    check_plugin_class(cls, "solver", ref, make_solver, ("seed",))


def check_case(solver: Any, case: Case, time_limit_s: float = TIME_LIMIT_S) -> None:
    """Run one solver on one case and assert every rule of the module docstring."""
    solver = _instance(solver)
    problem = case.problem
    where = f"solver {solver.name!r} on {case.id} (capacity {problem.capacity_bytes} B)"
    before = copy.deepcopy(problem)
    graph_before = graph_to_dict(problem.graph)
    result = solver.solve(problem, Budget(time_limit_s=time_limit_s))
    assert problem == before and graph_to_dict(problem.graph) == graph_before, (
        f"{where}: the problem was mutated"
    )
    assert result.solver == solver.name, f"{where}: result names solver {result.solver!r}"
    assert result.wall_s >= 0, f"{where}: negative wall time"
    m_r = problem.min_resident_bytes
    if problem.capacity_bytes < m_r:
        assert result.status is Status.INFEASIBLE, f"{where}: below M_R gave {result.status}"
        assert result.plan is None, f"{where}: an INFEASIBLE result carries a plan"
        assert str(m_r) in result.message, f"{where}: message does not name M_R = {m_r}"
        return
    assert result.status is not Status.INFEASIBLE, (
        f"{where}: INFEASIBLE at a capacity >= M_R = {m_r}, where a plan always exists"
    )
    if result.status in (Status.OPTIMAL, Status.FEASIBLE):
        assert result.plan is not None, f"{where}: {result.status} without a plan"
    if result.plan is None:
        return
    _check_plan(where, problem, result)
    if result.status is not Status.TIMEOUT:
        again = _fresh_copy(solver).solve(problem, Budget(time_limit_s=time_limit_s))
        if again.status is not Status.TIMEOUT:
            assert again.plan == result.plan, f"{where}: same seed, different plan"


def _check_plan(where: str, problem: Problem, result: Any) -> None:
    plan: Plan = result.plan
    violations = validate(problem, plan)
    assert not violations, f"{where}: invalid plan: {'; '.join(map(str, violations[:3]))}"
    assert len(plan.order) == problem.graph.num_ops, f"{where}: order misses ops"
    assert Plan.from_dict(plan.to_dict(problem.graph), problem.graph) == plan, (
        f"{where}: the plan does not survive its JSON round trip"
    )
    cost = evaluate(problem, plan)
    assert result.cost == cost, f"{where}: reported cost {result.cost} != recomputed {cost}"
    waste = cost.non_compulsory_bytes
    assert waste >= 0, f"{where}: negative non-compulsory bytes {waste}"
    bound = result.lower_bound_bytes
    if bound is not None:
        assert 0 <= bound <= waste, f"{where}: lower bound {bound} not in [0, {waste}]"
    if result.status is Status.OPTIMAL:
        assert bound == waste, f"{where}: OPTIMAL but bound {bound} != value {waste}"


@dataclass(frozen=True)
class ExactCase:
    """A tiny problem whose optimum over all plans the exhaustive search knows."""

    id: str  # e.g. "tiny-4-5/activations/MR+0KiB"
    problem: Problem  # 1 KiB alignment, capacity M_R plus a few KiB


def exact_cases() -> list[ExactCase]:
    """The problems of :data:`EXACT_CASES`."""
    kib = 1024
    accelerator = Accelerator("brute-force", 0, alignment_bytes=kib)
    result = []
    for seed, n_ops, scope, extra_kib in EXACT_CASES:
        graph = tiny_spill_graph(seed, n_ops)
        base = Problem(graph, accelerator, scope)
        problem = base.with_capacity(base.min_resident_bytes + extra_kib * kib)
        result.append(ExactCase(f"{graph.name}/{scope.value}/MR+{extra_kib}KiB", problem))
    return result


@functools.lru_cache(maxsize=64)
def _optimum(case_id: str) -> int:
    case = next(c for c in exact_cases() if c.id == case_id)
    value = min_traffic(case.problem)
    assert value is not None, f"{case_id}: no plan at a capacity >= M_R"
    return value


def optimum_of(case: ExactCase) -> int:
    """The fewest non-compulsory bytes of any valid plan of ``case`` (cached search)."""
    return _optimum(case.id)


def check_exact_case(solver: Any, case: ExactCase, time_limit_s: float = TIME_LIMIT_S) -> None:
    """Hold a solver's plan, bound and status on ``case`` to the brute-force optimum."""
    solver = _instance(solver)
    problem = case.problem
    where = f"solver {solver.name!r} on {case.id} (capacity {problem.capacity_bytes} B)"
    optimum = optimum_of(case)
    result = solver.solve(problem, Budget(time_limit_s=time_limit_s))
    bound = result.lower_bound_bytes
    assert bound is None or bound <= optimum, (
        f"{where}: lower bound {bound} B is above the optimum {optimum} B over all plans"
    )
    if result.plan is None:
        assert result.status is Status.TIMEOUT, f"{where}: {result.status} without a plan"
        return
    _check_plan(where, problem, result)
    value = evaluate(problem, result.plan).non_compulsory_bytes
    assert value >= optimum, f"{where}: plan moves {value} B, below the optimum {optimum} B"
    if result.status is Status.OPTIMAL:
        assert value == optimum, (
            f"{where}: OPTIMAL with {value} B, but the optimum over all plans is {optimum} B"
        )


def time_check_problem() -> Problem:
    """The time-limit check's problem: a random DAG at M_H that needs more than a second."""
    graph = random_dag(7, TIME_CHECK_OPS)
    base = Problem(graph, Accelerator("time-check", 0, alignment_bytes=64), Scope.ACTIVATIONS)
    return base.with_capacity(capacity_of("MH", base))


def check_time_limit(solver: Any, time_limit_s: float = TIME_CHECK_LIMIT_S) -> float:
    """Assert a warm solve returns within ``time_limit_s + RETURN_GRACE_S``.

    Returns:
        The wall-clock seconds of the timed solve.
    """
    solver = _instance(solver)
    problem = time_check_problem()
    where = f"solver {solver.name!r} on {problem.graph.name} with a {time_limit_s:g} s limit"
    solver.solve(problem, Budget(time_limit_s=time_limit_s))  # warm-up: imports, kernels
    started = time.monotonic()
    result = solver.solve(problem, Budget(time_limit_s=time_limit_s))
    elapsed = time.monotonic() - started
    allowed = time_limit_s + RETURN_GRACE_S
    assert elapsed <= allowed, (
        f"{where}: returned after {elapsed:.2f} s, more than the limit plus the "
        f"{RETURN_GRACE_S:g} s grace ({allowed:g} s)"
    )
    assert result.status is not Status.INFEASIBLE, f"{where}: INFEASIBLE at M_H"
    if result.plan is not None:
        _check_plan(where, problem, result)
    else:
        assert result.status is Status.TIMEOUT, f"{where}: {result.status} without a plan"
    return elapsed


def check_solver(
    solver: Any, *, graphs: list[Graph] | None = None, time_limit_s: float = TIME_LIMIT_S
) -> int:
    """Run the whole suite on ``solver`` (a name, ``module:Class`` path or instance).

    Args:
        solver: the solver to check.
        graphs: the graphs of the general cases (default: tiny and random graphs); the
            brute-force cases and the time-limit check always run.
        time_limit_s: limit of each solve of the general and brute-force cases.

    Returns:
        The number of cases checked (general, brute-force, and the time-limit check).

    Raises:
        AssertionError: at the first broken rule, naming the case.
    """
    check_solver_class(solver)
    count = 0
    for case in cases(graphs):
        check_case(solver, case, time_limit_s)
        count += 1
    for exact in exact_cases():
        check_exact_case(solver, exact, time_limit_s)
        count += 1
    check_time_limit(solver)
    return count + 1
