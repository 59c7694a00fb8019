"""Tests of the divide-and-conquer solver: parts under fixed boundaries, cuts, windows."""

from __future__ import annotations

import random
import threading

import pytest
from helpers import greedy_case

from memplan.accelerator import Accelerator
from memplan.cut import crossing_bytes
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status, make_solver
from memplan.testing import min_traffic, tiny_spill_graph
from memplan.validate import validate

pytest.importorskip("ortools")

import itertools
from typing import Any

from memplan.solvers.dnc import DncSolver
from memplan.solvers.dnc.cuts import choose_cuts
from memplan.solvers.dnc.search import RunSettings, part_solver_class

KIB = 1024


def run_settings(work_s: float = 1.0, placement: bool = True) -> RunSettings:
    """Settings for direct calls of the windows and parts: one worker, seed 0."""
    return RunSettings(
        part_solver_class(), False, work_s=work_s, workers=1, seed=0, placement=placement
    )


def tiny_problem(seed: int, scope: Scope, extra_kib: int = 0) -> Problem:
    problem = Problem(tiny_spill_graph(seed, 5), Accelerator("tiny", 1 << 20, KIB), scope)
    return problem.with_capacity(problem.min_resident_bytes + extra_kib * KIB)


CASES = [(1, Scope.ACTIVATIONS, 0), (3, Scope.ACTIVATIONS, 1), (4, Scope.ALL, 0), (4, Scope.ALL, 1)]


@pytest.mark.parametrize(("seed", "scope", "extra_kib"), CASES)
def test_one_part_equals_the_ilp_optimum(seed, scope, extra_kib):
    """With one part (the whole graph, empty boundaries) dnc finds the free-order optimum
    that the ilp proves and that enumeration confirms."""
    problem = tiny_problem(seed, scope, extra_kib)
    optimum = min_traffic(problem)
    ilp = make_solver("ilp", {"hint": "false"}).solve(problem, Budget(time_limit_s=60))
    assert ilp.status is Status.OPTIMAL and ilp.cost.non_compulsory_bytes == optimum
    result = DncSolver(part_ops=100, window_ops=100).solve(problem, Budget(time_limit_s=60))
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert validate(problem, result.plan) == []
    assert result.cost.non_compulsory_bytes == optimum


@pytest.mark.parametrize("seed", range(6))
def test_dnc_never_worse_than_its_greedy_start_and_reproducible(seed):
    problem, _ = greedy_case(seed, ("MR", "MH")[seed % 2], n_ops=30)
    solver = DncSolver(part_ops=10, window_ops=8, max_windows=12, seed=seed)
    first = solver.solve(problem, Budget(time_limit_s=120))
    assert validate(problem, first.plan) == []
    assert first.cost.non_compulsory_bytes <= min(first.stats["greedy_bytes"].values())
    assert first.stats["rejected"] == 0
    again = DncSolver(part_ops=10, window_ops=8, max_windows=12, seed=seed).solve(
        problem, Budget(time_limit_s=120)
    )
    assert again.plan == first.plan


def test_a_stop_request_returns_the_best_plan_at_once():
    problem, _ = greedy_case(2, "MR", n_ops=60)
    budget = Budget(time_limit_s=300)
    threading.Timer(1.5, budget.stop_event.set).start()
    result = DncSolver(window_ops=12).solve(problem, budget)
    assert result.wall_s < 30
    assert validate(problem, result.plan) == []
    if result.cost.non_compulsory_bytes > 0:
        assert result.status is Status.TIMEOUT and "interrupted" in result.message


@pytest.mark.parametrize("seed", range(10))
def test_cuts_keep_parts_within_bounds_and_prefer_narrow_places(seed):
    rng = random.Random(seed)
    n = rng.randint(30, 90)
    crossing = [0] + [rng.randint(1, 50) for _ in range(n - 1)] + [0]
    part_ops = rng.randint(4, 12)
    cuts = choose_cuts(crossing, part_ops)
    points = [0, *cuts, n]
    lengths = [b - a for a, b in itertools.pairwise(points)]
    assert all(part_ops // 2 <= length <= part_ops + part_ops // 2 for length in lengths)
    # No single cut can move to a cheaper place within the bounds.
    for i, c in enumerate(cuts):
        low = max(points[i] + part_ops // 2, points[i + 2] - part_ops - part_ops // 2)
        high = min(points[i] + part_ops + part_ops // 2, points[i + 2] - part_ops // 2)
        assert crossing[c] == min(crossing[low : high + 1])


def test_crossing_bytes_counts_tensors_live_across_each_cut():
    problem, plan = greedy_case(1, "MH")
    crossing = crossing_bytes(problem, plan.order)
    assert crossing[0] == 0 and crossing[-1] == 0
    from memplan.analysis import tensor_lifetimes

    spans = tensor_lifetimes(problem.graph, plan.order, problem.in_scope)
    for c in range(len(plan.order) + 1):
        expected = sum(
            problem.aligned_sizes_bytes[t]
            for t, span in enumerate(spans)
            if span is not None and span[0] < c < span[1]
        )
        assert crossing[c] == expected


def test_dnc_proves_min_peak_like_enumeration():
    from memplan.registry import EXACT_MIN_PEAK, PluginKind, providers
    from memplan.testing import enumerate_min_peak

    assert "dnc" in providers(PluginKind.SOLVER, EXACT_MIN_PEAK)
    for seed in range(4):
        problem = Problem(tiny_spill_graph(seed, 7), Accelerator("t", 1 << 20, 64))
        estimate = DncSolver.exact_min_peak(problem, Budget(time_limit_s=30))
        assert estimate.proven and estimate.value_bytes == enumerate_min_peak(problem)


def test_progress_reports_the_incumbent_and_the_bound():
    problem, _ = greedy_case(4, "MR", n_ops=40)
    seen = []
    budget = Budget(time_limit_s=60, on_progress=seen.append)
    result = DncSolver(window_ops=8, max_windows=6).solve(problem, budget)
    assert seen and all(p.incumbent_bytes is not None for p in seen)
    assert seen[-1].incumbent_bytes >= result.cost.non_compulsory_bytes
    assert min(p.incumbent_bytes for p in seen) >= result.cost.non_compulsory_bytes
    bounds = [p.bound_bytes for p in seen if p.bound_bytes is not None]
    assert all(b <= result.cost.non_compulsory_bytes for b in bounds)
    assert any("start" in p.message for p in seen)


def test_windows_stop_when_they_stall():
    """With ``stall_s`` the windows stop once that long has passed without an
    improvement (here at once: no window is tried), and say so."""
    from memplan.solvers.dnc.search import SearchStats, improve_windows

    problem, plan = greedy_case(3, "MR", n_ops=40)
    settings = run_settings()
    stats = SearchStats()
    found = improve_windows(
        problem,
        plan,
        window_ops=8,
        max_windows=0,
        settings=settings,
        budget=Budget(time_limit_s=60),
        stats=stats,
        report=lambda moved, message: None,
        stall_s=0.0,
    )
    assert stats.stalled and stats.windows_tried == 0 and found == plan


@pytest.mark.parametrize(
    ("share", "seed", "reorder_share"), [(0.5, 1, 0.4), (0.5, 4, 0.0), (1.0, 4, 0.4)]
)
def test_stalled_windows_give_the_time_to_the_order_search(monkeypatch, share, seed, reorder_share):
    """Windows (here a stand-in that stalls on its first call and converges on the
    next) that stall hand the time to the order search from the best plan's order;
    then they go on: where they stopped when the search found nothing (seed 1, after
    phase 3's search: no further yield), from the start on the plan it found (seed 4,
    phase 3 skipped, so the late search finds one). ``stall_share=1`` never yields."""
    import memplan.solvers.dnc.phases as dnc_phases

    calls = []

    def windows(problem, plan, *, stats, stall_s, progress, **_):
        calls.append((stall_s, progress, plan))
        if stall_s is not None and len(calls) == 1:
            stats.stalled = True
        else:
            stats.converged = True
        return plan

    monkeypatch.setattr(dnc_phases, "improve_windows", windows)
    problem, _ = greedy_case(seed, "MR", n_ops=40)
    solver = DncSolver(
        window_ops=8,
        stall_share=share,
        max_moves=2000,
        parts_share=0.0,
        interval_share=0.0,
        reorder_share=reorder_share,
    )
    result = solver.solve(problem, Budget(time_limit_s=120))
    assert validate(problem, result.plan) == []
    assert result.cost.non_compulsory_bytes <= min(result.stats["greedy_bytes"].values())
    rounds = result.stats["late_reorder_rounds"]
    if share == 1.0:
        assert len(calls) == 1 and calls[0][0] is None and rounds == []
        return
    assert calls[0][0] > 0 and rounds and len(calls) == 2
    found = "order search again" in result.stats["source"]
    assert found is (reorder_share == 0.0)
    assert (calls[1][1] is calls[0][1]) is not found  # the same sweep unless a new plan
    assert (calls[1][0] is None) is not found  # and no further yield after nothing
    assert (calls[1][2] == calls[0][2]) is not found


def test_after_a_fruitless_order_search_the_windows_go_on_to_converge():
    """When the late order search finds nothing, the windows resume where they
    stopped and run to the end, so dnc still converges (seed 4: the windows yield at
    once, the search runs once and finds nothing)."""
    problem, _ = greedy_case(4, "MR", n_ops=40)
    result = DncSolver(part_ops=10, window_ops=8, stall_share=0.0, max_moves=2000, seed=4).solve(
        problem, Budget(time_limit_s=180)
    )
    assert validate(problem, result.plan) == []
    assert len(result.stats["late_reorder_rounds"]) == 1
    assert "order search again" not in result.stats["source"]
    assert result.stats["converged"] and result.status is Status.FEASIBLE
    assert "no window improves" in result.message


@pytest.mark.parametrize("seed", [0, 3, 4, 5])
def test_when_the_windows_converge_the_whole_graph_may_prove_the_plan_optimal(seed, monkeypatch):
    """A graph longer than the largest window (2 ops, grown to 8) gets one run of the
    whole graph once the windows converge: it proves the optimum the ilp proves. (The
    cut-cover bound is left out: on seeds 0 and 3 it proves the start plan optimal
    before any window runs.)"""
    monkeypatch.setattr("memplan.solvers.dnc.lower_bounds.cover_bound", lambda *a, **k: None)
    problem = Problem(tiny_spill_graph(seed, 14), Accelerator("tiny", 1 << 20, KIB))
    problem = problem.with_capacity(problem.min_resident_bytes)
    ilp = make_solver("ilp", {"hint": "false"}).solve(problem, Budget(time_limit_s=60))
    assert ilp.status is Status.OPTIMAL
    solver = DncSolver(window_ops=2, reorder_share=0, interval_share=0, parts_share=0)
    result = solver.solve(problem, Budget(time_limit_s=60))
    assert validate(problem, result.plan) == []
    assert result.cost.non_compulsory_bytes == ilp.cost.non_compulsory_bytes > 0
    assert result.status is Status.OPTIMAL and result.stats["window_ops_reached"] == 14
    assert result.stats["bound_method"] == "the ilp on the whole graph"


@pytest.mark.parametrize("seed", [0, 2, 8])
def test_windows_inside_a_part_proven_optimal_cannot_improve_and_are_skipped(seed):
    """A part the ilp proves optimal (and leaves as it was) fixes less than any window
    inside it, so no such window improves the plan: the parts record their proofs,
    and the windows skip what they cover."""
    from memplan.solvers.dnc.search import (
        SearchStats,
        WindowProgress,
        improve_windows,
        resolve_run,
        solve_parts,
    )

    problem, plan = greedy_case(seed, "MR", n_ops=36)
    settings = run_settings(work_s=5.0)
    progress, stats = WindowProgress.fresh(0), SearchStats()

    def quiet(moved, message):
        return None

    budget = Budget(time_limit_s=120)
    best = solve_parts(problem, plan, [12, 24], settings, budget, stats, quiet, progress)
    assert progress.proven, "some part is proven optimal since the last change"
    for low, high in progress.proven:
        for start in range(low, high - 5, 3):
            candidate, saved, _ = resolve_run(problem, best, start, start + 6, settings, budget)
            assert candidate is None and saved == 0
    windows = SearchStats()
    covered = WindowProgress.fresh(0)
    covered.whole_first, covered.proven = False, [(0, len(best.order))]
    found = improve_windows(
        problem,
        best,
        window_ops=6,
        max_windows=0,
        settings=settings,
        budget=budget,
        stats=windows,
        report=quiet,
        progress=covered,
    )
    assert found == best and windows.windows_tried == 0 and windows.converged


def test_the_phases_finish_early_enough_to_validate_within_the_limit():
    """dnc's phases run on the budget less a finishing margin (at most 1 % of it): same
    start, same stop flag, so Ctrl-C and the wall time are the caller's."""
    from memplan.solvers.dnc.solver import FINISH_S, finishing_early

    budget = Budget(time_limit_s=30.0)
    early = finishing_early(budget)
    assert early.time_limit_s == pytest.approx(30.0 - FINISH_S)
    assert early.started_at_s == budget.started_at_s and early.stop_event is budget.stop_event
    assert finishing_early(Budget(time_limit_s=1.0)).time_limit_s == pytest.approx(0.99)
    assert finishing_early(Budget()).time_limit_s is None
    budget.stop_event.set()
    assert early.should_stop() and early.interrupted()


def test_a_late_search_from_a_full_order_starts_below_the_capacity():
    """A best plan that moves more than Belady's stays of its order (they did not pack)
    sends the late search REORDER_SLACK lower; a plan that meets them, or a capacity
    that cannot drop below M_R, keeps the real capacity."""
    from memplan.fallback import spill_everything_plan
    from memplan.solvers.dnc.phases import REORDER_SLACK, _late_search_capacity
    from memplan.solvers.dnc.search import traffic_bytes
    from memplan.solvers.packing import pack_stays

    lowered = kept = 0
    for seed in range(8):
        for budget in ("MR", "MH"):
            problem, plan = greedy_case(seed, budget)
            capacity = problem.capacity_bytes
            lower = capacity - int(REORDER_SLACK * capacity)
            full = spill_everything_plan(problem, plan.order)  # moves more than Belady
            expected = lower if lower >= problem.min_resident_bytes else capacity
            assert _late_search_capacity(problem, full, traffic_bytes(problem, full)) == expected
            lowered += expected < capacity
            packed = pack_stays(problem, plan.order, capacity, 5.0, 0)
            if packed is not None:  # Belady's own stays: nothing to gain by going lower
                at = _late_search_capacity(problem, packed, traffic_bytes(problem, packed))
                assert at == capacity
                kept += 1
    assert lowered > 0 and kept > 0


@pytest.mark.parametrize("seed", [0, 3])
def test_the_windows_trail_and_its_latest_plan_that_packs(seed):
    """The windows record each improved plan (each moving fewer bytes, the last the
    plan returned); of a trail of interval plans, the latest that moves fewer bytes than
    the incumbent and packs comes back packed and valid."""
    from memplan.fallback import spill_everything_plan
    from memplan.solvers.dnc.search import (
        SearchStats,
        improve_windows,
        traffic_bytes,
        without_offsets,
    )

    problem, plan = greedy_case(seed, "MR", n_ops=30)
    settings = run_settings(placement=False)
    worse = spill_everything_plan(problem, plan.order)
    trail: list = []
    found = improve_windows(
        problem,
        without_offsets(worse),
        window_ops=6,
        max_windows=12,
        settings=settings,
        budget=Budget(time_limit_s=60),
        stats=SearchStats(),
        report=lambda moved, message: None,
        trail=trail,
    )
    moved = [traffic_bytes(problem, p) for p in trail]
    assert trail and trail[-1] == found
    assert all(a > b for a, b in itertools.pairwise(moved))

    solver = make_solver("dnc")
    budget = Budget(time_limit_s=60)
    greedy_bytes, worse_bytes = traffic_bytes(problem, plan), traffic_bytes(problem, worse)
    assert greedy_bytes < worse_bytes
    shapes = [without_offsets(worse), without_offsets(plan)]
    packed = solver._packed_trail(problem, budget, shapes, worse_bytes)
    assert packed is not None and validate(problem, packed) == []
    assert traffic_bytes(problem, packed) == greedy_bytes
    assert solver._packed_trail(problem, budget, shapes, greedy_bytes) is None


def test_workers_are_capped_below_what_crashes_cp_sat():
    """OR-Tools 9.15 segfaults with 20+ workers under dnc's deterministic limits."""
    from memplan.errors import ConfigError
    from memplan.solvers.dnc.solver import MAX_WORKERS

    assert MAX_WORKERS < 20
    DncSolver(workers=MAX_WORKERS)
    with pytest.raises(ConfigError, match=f"between 1 and {MAX_WORKERS}"):
        DncSolver(workers=MAX_WORKERS + 1)


@pytest.mark.parametrize("seed", [1, 2])
def test_greedy_runs_first_so_dnc_is_never_worse_at_the_same_limit(seed, monkeypatch):
    """Greedy's default runs before dnc's own work, on the same budget: when that work
    (here the min-peak search, made to take all the time) leaves nothing, greedy's plan
    stands. Before, greedy ran after it in what was left: spill everything, 43x its
    traffic at a 0.2-s limit on a 220-op transformer."""
    from memplan.solvers.dnc import solver as dnc_solver

    problem, _ = greedy_case(seed, "MR", n_ops=30)
    greedy = make_solver("greedy").solve(problem, Budget(time_limit_s=2.0))
    original = dnc_solver.DncSolver._schedule

    def slow_schedule(self, problem, budget, stats):
        while not budget.should_stop():
            threading.Event().wait(0.01)
        return original(self, problem, budget, stats)

    monkeypatch.setattr(dnc_solver.DncSolver, "_schedule", slow_schedule)
    result = DncSolver().solve(problem, Budget(time_limit_s=2.0))
    assert validate(problem, result.plan) == []
    assert result.cost.non_compulsory_bytes <= greedy.cost.non_compulsory_bytes > 0
    # With less than MIN_WORK_S left after greedy, dnc returns greedy's plan at once.
    quick = DncSolver().solve(problem, Budget(time_limit_s=dnc_solver.MIN_WORK_S / 2))
    assert quick.cost.non_compulsory_bytes == greedy.cost.non_compulsory_bytes
    assert "too little time left" in quick.stats["source"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_at_m_p_the_no_spill_packing_comes_before_greedy(seed, monkeypatch):
    """At a capacity the min-peak order's peak fits, its no-spill packing is tried before
    greedy's default, which may take the whole limit there (rw800, M_P, 3 to 5 s: its
    model order's packing retries did, and dnc returned greedy's 363 KB where the ilp
    found 0 B). Greedy is made to use up the budget here: the plan must not wait for it."""
    from memplan.analysis import min_peak_order, peak_live_bytes
    from memplan.errors import ConfigError
    from memplan.solvers.dnc import search as dnc_search
    from memplan.solvers.dnc import solver as dnc_solver

    problem, _ = greedy_case(seed, "MR", n_ops=30)
    graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
    peak = peak_live_bytes(graph, min_peak_order(graph, sizes, scope), sizes, scope)
    problem = problem.with_capacity(peak)
    calls: list[bool] = []

    def greedy_takes_it_all(self, problem, budget):
        calls.append(True)
        while not budget.should_stop():
            threading.Event().wait(0.01)
        return None

    monkeypatch.setattr(dnc_solver.DncSolver, "_greedy_default", greedy_takes_it_all)
    result = DncSolver().solve(problem, Budget(time_limit_s=1.0))
    assert validate(problem, result.plan) == []
    assert result.cost.non_compulsory_bytes == 0 and result.status is Status.OPTIMAL
    assert result.stats["source"] == dnc_solver.NO_SPILL_SOURCE and calls == []
    # One byte below that peak, greedy runs first as before.
    DncSolver().solve(problem.with_capacity(peak - 1), Budget(time_limit_s=0.2))
    assert calls == [True]
    # A missing ilp extra is the same clear error on this path as on any other.
    monkeypatch.setattr(dnc_search.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'memplan\[ilp\]'"):
        DncSolver().solve(problem, Budget(time_limit_s=30))


def test_windows_cut_by_the_clock_make_a_timeout_though_the_parts_added_end_early(
    monkeypatch,
):
    """The windows run in the time before the parts added (kept back for them), and the
    parts added end before the limit: a plan whose windows that clock cut short is a
    TIMEOUT. It was FEASIBLE, 'best plan found' (skip150, M_R, 8 s, under load: at
    7.9 s, 6 to 9 windows tried, not converged, 1,242,436 B where the optimum is
    1,221,274 B). With too little time left for the phases, greedy's plan is a TIMEOUT
    too."""
    from memplan.solvers.dnc import solver as dnc_solver
    from memplan.solvers.dnc import starts as dnc_starts

    problem, greedy = greedy_case(1, "MR", n_ops=140)  # over INTERVAL_WHOLE_WINDOWS x 16
    assert problem.graph.num_ops > dnc_solver.INTERVAL_WHOLE_WINDOWS * 16
    # Greedy's plan at once (it takes seconds here), no further greedy orders.
    monkeypatch.setattr(dnc_solver.DncSolver, "_greedy_default", lambda *args: greedy)
    monkeypatch.setattr(dnc_starts, "GREEDY_ORDERS", ())
    for bound in ("_bound", "_part_bound", "_cover_bound"):  # no bound: no early optimum
        monkeypatch.setattr(dnc_solver.DncSolver, bound, lambda self, *args: None)
    added: list[bool] = []

    def windows_until_the_clock_ends(self, problem, budget, best, *args):
        while not budget.should_stop():
            threading.Event().wait(0.01)
        return best

    def parts_added(self, problem, budget, plans, moved, settings, bound, stats):
        added.append(budget.should_stop())
        return bound

    monkeypatch.setattr(dnc_solver.DncSolver, "_late_phases", windows_until_the_clock_ends)
    monkeypatch.setattr(dnc_solver.DncSolver, "_parts_added_phase", parts_added)
    solver = DncSolver(reorder_share=0, interval_share=0, parts_share=0)
    result = solver.solve(problem, Budget(time_limit_s=3.0))
    assert added == [False] and result.cost.non_compulsory_bytes > 0
    assert validate(problem, result.plan) == []
    assert result.status is Status.TIMEOUT
    assert result.message.startswith("time limit reached; returning the best plan so far")
    quick = DncSolver().solve(problem, Budget(time_limit_s=dnc_solver.MIN_WORK_S / 2))
    assert "too little time left" in quick.stats["source"]
    assert quick.status is Status.TIMEOUT


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_greedy_plan_that_moves_nothing_is_returned_at_once(seed, monkeypatch):
    """When greedy's default moves no non-compulsory byte, no plan does better: dnc
    returns it as optimal without its own phases (they imported OR-Tools and ran the
    min-peak search: light_inception_v1, activations, M_R, 0.79 s against 0.09 s), and
    a missing ilp extra is still the one clear error it is on any graph."""
    from memplan.errors import ConfigError
    from memplan.solvers.dnc import search as dnc_search
    from memplan.solvers.dnc import solver as dnc_solver

    base = Problem(tiny_spill_graph(seed, 8), Accelerator("t", 0, 64), Scope.ALL)
    problem = base.with_capacity(10 * base.min_resident_bytes)  # everything fits
    greedy = make_solver("greedy").solve(problem, Budget(time_limit_s=30))
    assert greedy.cost.non_compulsory_bytes == 0

    def no_phases(*args, **kwargs):
        raise AssertionError("dnc's phases ran for a plan that moves nothing")

    monkeypatch.setattr(dnc_solver, "part_solver_class", no_phases)
    monkeypatch.setattr(dnc_solver.DncSolver, "_schedule", no_phases)
    # (Everything fits: the no-spill packing would come first; greedy's path is tested.)
    monkeypatch.setattr(dnc_solver.DncSolver, "_early_no_spill", lambda *args: None)
    result = DncSolver().solve(problem, Budget(time_limit_s=30))
    assert result.status is Status.OPTIMAL and result.lower_bound_bytes == 0
    assert result.plan == greedy.plan and validate(problem, result.plan) == []
    assert result.stats["source"] == "greedy (auto order)"
    monkeypatch.setattr(dnc_search.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'memplan\[ilp\]'"):
        DncSolver().solve(problem, Budget(time_limit_s=30))


@pytest.mark.parametrize("half_of_peak", [0.4, 0.6])
def test_the_min_peak_search_gets_less_time_when_no_plan_without_spills_is_in_reach(
    monkeypatch, half_of_peak
):
    """Below NO_SPILL_REACH times the peak of the min-peak search's start order, the
    search gets SPILLING_SCHEDULE_SHARE of the time left (its order is only a start),
    else SCHEDULE_SHARE (it may find a plan without spills)."""
    from memplan.analysis import min_peak_order, peak_live_bytes
    from memplan.ir import GraphBuilder, TensorKind
    from memplan.solvers.dnc import starts as dnc_starts

    # A U-Net: every encoder output is live until its decoder step, 9 KiB at the peak
    # whatever the order, where no op needs more than 3 KiB.
    b = GraphBuilder("unet")
    encoded = [b.tensor("a0", KIB, TensorKind.INPUT)]
    for i in range(1, 9):
        encoded.append(b.tensor(f"a{i}", KIB))
        b.op(f"down{i}", "Conv", [encoded[i - 1]], [encoded[i]])
    decoded = encoded[-1]
    for i in range(7, -1, -1):
        out = b.tensor(f"d{i}", KIB, is_output=i == 0)
        b.op(f"up{i}", "Add", [decoded, encoded[i]], [out])
        decoded = out
    problem = Problem(b.build(), Accelerator("t", 1 << 30, 1), Scope.ACTIVATIONS)
    graph, sizes, scope = problem.graph, problem.aligned_sizes_bytes, problem.in_scope
    peak = peak_live_bytes(graph, min_peak_order(graph, sizes, scope), sizes, scope)
    capacity = max(int(half_of_peak * peak), problem.min_resident_bytes)
    problem = problem.with_capacity(capacity)
    given: list[float] = []
    real = dnc_starts.default_min_peak_schedule

    def spy(*args, should_stop, **kwargs):
        given.append(should_stop.__self__.time_limit_s)  # the Budget's bound method
        return real(*args, should_stop=should_stop, **kwargs)

    monkeypatch.setattr(dnc_starts, "default_min_peak_schedule", spy)
    budget = Budget(time_limit_s=100.0)
    DncSolver()._schedule(problem, budget, {})
    left = 100.0  # the search starts at once (a few ms of it gone at most)
    spilling = capacity < dnc_starts.NO_SPILL_REACH * peak
    share = dnc_starts.SPILLING_SCHEDULE_SHARE if spilling else dnc_starts.SCHEDULE_SHARE
    assert spilling == (half_of_peak < dnc_starts.NO_SPILL_REACH)
    assert given and given[0] == pytest.approx(share * left, rel=0.05)


def test_a_round_that_spent_its_phase_still_tries_its_trail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round that searched until its phase's share was spent, and whose best order does
    not pack, still tries the trail's earlier orders within the solve's time: with the
    phase's clock the trail was skipped, and the best order's fallback plan stood
    (randwire_ws_regular, all, M_H, 30 s: 23.2 MB where an earlier order packed 19.1)."""
    import time

    from memplan.solvers.dnc import phases as dnc_phases
    from memplan.solvers.order_search import Reordered

    problem, plan = greedy_case(0, "MR")
    phase, whole = Budget(time_limit_s=0.3), Budget(time_limit_s=60.0)

    def search_to_the_end(problem_: Problem, order: Any, **kwargs: Any) -> Reordered:
        # the round spends the phase
        while not phase.should_stop():
            time.sleep(0.01)
        order = tuple(order)
        return Reordered(order, 2, 1, moves=1, improvements=1, trail=((2, order), (1, order)))

    trail_had_time: list[bool] = []

    def spy_trail(
        problem_: Problem, found: Reordered, capacity: int, should_stop: Any, seed: int
    ) -> None:
        trail_had_time.append(not should_stop())
        return None

    monkeypatch.setattr(dnc_phases, "search_order", search_to_the_end)
    monkeypatch.setattr(dnc_phases, "pack_stays", lambda *args: None)  # the best: no packing
    monkeypatch.setattr(dnc_phases, "pack_trail", spy_trail)
    rounds: list[dict[str, int | bool]] = []
    best_bytes = dnc_phases.traffic_bytes(problem, plan)
    DncSolver()._reorder_phase(problem, phase, plan, best_bytes, [plan.order], rounds, whole=whole)
    assert rounds and rounds[0]["packed"] is False
    assert trail_had_time == [True]
