"""The ilp solver's time budget: within the limit plus RETURN_GRACE_S, skipping what cannot fit.

Wall times on the real workloads (1,000 to 2,100 ops) are measured by the benchmarks;
these tests hold the mechanisms to account on graphs that build in well under a second
and that no backend can solve in the limit.
"""

from __future__ import annotations

import re

import pytest
from helpers import assert_only_floor_bound

from memplan.accelerator import Accelerator
from memplan.problem import Problem
from memplan.solver import RETURN_GRACE_S, Budget, Status
from memplan.testing import random_dag
from memplan.validate import validate

pytest.importorskip("ortools")
pytest.importorskip("pulp")

from memplan.solvers.ilp import IlpSolver, phases
from memplan.solvers.ilp.model import build_structure
from memplan.solvers.ilp.outcome import BackendStatus


def _problem(seed: int, n_ops: int) -> Problem:
    problem = Problem(random_dag(seed, n_ops), Accelerator("test", 1 << 30, 64))
    return problem.with_capacity(problem.min_resident_bytes)


@pytest.fixture(scope="module", autouse=True)
def warm_kernels() -> None:
    """Load imports and compile or load allocator kernels before any clock starts (the
    first use in a fresh checkout compiles them, for tens of seconds)."""
    from memplan.dsa import Buffer, make_allocator

    buffers = [Buffer(0, 0, 2, 64), Buffer(1, 1, 3, 64)]
    for name in ("portfolio", "exact"):  # small inputs run in Python: ask for numba's kernels
        make_allocator(name, {"kernels": "compiled"}).allocate(buffers, 128, Budget(30))
    IlpSolver(mode="fixed", order="model").solve(_problem(0, 6), Budget(30))


@pytest.mark.parametrize("backend", ["cpsat", "milp"])
def test_returns_within_the_limit_plus_grace(backend):
    problem = _problem(5, 120)
    limit_s = 4.0
    result = IlpSolver(backend=backend).solve(problem, Budget(time_limit_s=limit_s))
    assert result.wall_s <= limit_s + RETURN_GRACE_S, result.message
    assert result.plan is not None and not validate(problem, result.plan)
    if result.status is not Status.OPTIMAL:
        assert result.status is Status.TIMEOUT, result.message


def test_a_model_too_slow_to_build_is_skipped_and_said():
    problem = _problem(6, 80)
    struct = build_structure(problem, None, -1)
    limit_s = 3.0
    assert phases.build_estimate_s("milp", struct) > phases.BUILD_SHARE * limit_s
    result = IlpSolver(backend="milp").solve(problem, Budget(time_limit_s=limit_s))
    assert result.wall_s <= limit_s + RETURN_GRACE_S
    assert result.status is Status.TIMEOUT
    assert_only_floor_bound(result)  # the skipped search gives none of its own
    assert "milp model needs about" in result.message and "no exact search" in result.message
    assert not validate(problem, result.plan)
    # ... and says which limit would let it search (the build's share of the time).
    enough = re.search(r"a time limit of about (\d+) s or more lets it search", result.message)
    assert enough is not None, result.message
    assert int(enough.group(1)) >= phases.build_estimate_s("milp", struct) / phases.BUILD_SHARE


def test_a_model_too_big_to_build_at_all_is_feasible_not_timeout(monkeypatch):
    monkeypatch.setattr(phases, "MILP_MAX_ROWS", 10)
    problem = _problem(7, 12)
    result = IlpSolver(backend="milp").solve(problem, Budget(time_limit_s=30))
    if result.cost.non_compulsory_bytes > 0:
        assert result.status is Status.FEASIBLE
        assert_only_floor_bound(result)
        assert "over 10 rows" in result.message


@pytest.mark.parametrize("backend", ["cpsat", "milp"])
def test_a_build_past_its_deadline_is_abandoned(backend):
    struct = build_structure(_problem(8, 10), None, -1)
    spent = Budget(time_limit_s=0.0)
    if backend == "cpsat":
        from memplan.solvers.ilp.cpsat import solve_traffic

        outcome = solve_traffic(struct, spent, hint=None, workers=1, seed=0, verbose=False)
    else:
        from memplan.solvers.ilp.milp import solve_traffic_milp

        outcome = solve_traffic_milp(
            struct, spent, engine="highs", verbose=False, threads=1, seed=0
        )
    assert outcome.status is BackendStatus.SKIPPED
    assert outcome.stats["skipped_out_of_time"] is True and outcome.order is None


def test_exact_min_peak_out_of_time_is_marked_unproven():
    problem = _problem(9, 200)
    estimate = IlpSolver.exact_min_peak(problem, Budget(time_limit_s=0.5))
    assert not estimate.proven
    from memplan.budgets import heuristic_min_peak

    assert problem.min_resident_bytes <= estimate.value_bytes
    assert estimate.value_bytes <= heuristic_min_peak(problem).value_bytes


def test_a_search_deaf_to_its_stop_request_is_abandoned():
    """Some CP-SAT steps answer neither the time limit nor stop_search for minutes."""
    import threading
    import time
    import types

    from memplan.solvers.ilp.cpsat import run_search as _run

    release = threading.Event()

    class DeafSolver:
        parameters = types.SimpleNamespace(catch_sigint_signal=True)
        stop_requests = 0

        def solve(self, model):
            release.wait(30)  # ignores stop_search, like the step measured on nasnet
            return 0

        def stop_search(self):
            self.stop_requests += 1

    solver = DeafSolver()
    started = time.monotonic()
    try:
        code = _run(object(), solver, Budget(time_limit_s=0.3))
    finally:
        release.set()
    assert code is None and solver.stop_requests == 1
    assert time.monotonic() - started <= 0.3 + phases.ABANDON_AFTER_S + 0.5
    assert solver.parameters.catch_sigint_signal is False


@pytest.mark.parametrize("mode", ["free", "fixed"])
def test_hints_cover_every_variable(mode):
    """An incomplete hint makes CP-SAT complete it first, which ignored the time limit
    for minutes on a 1,231-op graph (measured: 291 s for a 30 s limit)."""
    from memplan.analysis import min_peak_order
    from memplan.fallback import spill_everything_plan
    from memplan.solvers.ilp.cpsat import _add_hints, _build_peak_model, _build_traffic_model
    from memplan.solvers.ilp.model import first_hint

    problem = _problem(10, 14)
    order = min_peak_order(problem.graph, problem.aligned_sizes_bytes, problem.in_scope)
    struct = build_structure(problem, order if mode == "fixed" else None, -1)
    hint = first_hint(struct, [spill_everything_plan(problem, order)])
    assert hint is not None
    traffic = _build_traffic_model(struct, Budget(30))
    _add_hints(traffic, struct, hint)
    peak_model, _ = _build_peak_model(struct, order, 1, 1 << 30)
    for model in (traffic.model, peak_model):
        proto = model.proto
        domains = [list(v.domain) for v in proto.variables]
        free = {i for i, d in enumerate(domains) if d[0] != d[-1]}
        assert free and free <= set(proto.solution_hint.vars)


def test_a_no_spill_start_packed_with_no_time_left_gets_a_bounded_portfolio(monkeypatch):
    """With the time spent (greedy took it), the optional no-spill start is still packed by
    the greedy portfolio, but within phases.NO_SPILL_PORTFOLIO_S: with no limit, one input
    read by 10,000 ops kept the ilp 8.7 s past a 5-s limit there."""
    import memplan.dsa
    from memplan.solvers.ilp.traffic import incumbents

    limits: list[float | None] = []
    real = memplan.dsa.allocate

    def spy(buffers, capacity, *args, budget=None, **kwargs):
        limits.append(None if budget is None else budget.time_limit_s)
        return real(buffers, capacity, *args, budget=budget, **kwargs)

    monkeypatch.setattr(memplan.dsa, "allocate", spy)
    problem = _problem(1, 12)
    struct = build_structure(problem, None, 1)
    order = tuple(range(problem.graph.num_ops))
    starts = incumbents(struct, problem, None, order, alloc_s=0.0)
    assert limits and all(limit == phases.NO_SPILL_PORTFOLIO_S for limit in limits)
    assert starts and all(not validate(problem, start.plan) for start in starts)
