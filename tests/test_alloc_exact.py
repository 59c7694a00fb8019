"""Tests of the exact allocator against brute force, and on MiniMalloc's benchmarks."""

from __future__ import annotations

import random
import threading
from dataclasses import replace

import numpy as np
import pytest
from alloc_helpers import (
    CAPACITY,
    brute_force_min_height,
    challenging_file,
    exhaustive_min_height,
    guillotine_packing,
    random_buffers,
)

from memplan.dsa import AllocationResult, Buffer, validate_packing
from memplan.io.buffers_csv import read_buffers_csv
from memplan.solver import Budget, Status
from memplan.solvers.alloc import exact as exact_module
from memplan.solvers.alloc import intervals, search_state
from memplan.solvers.alloc.common import Prepared, aligned_live_bound, prepare
from memplan.solvers.alloc.exact import ExactAllocator


def exact(
    buffers: list[Buffer],
    capacity: int | None,
    *,
    minimize: bool = False,
    time_limit_s: float = 20,
    kernels: str = "compiled",
) -> AllocationResult:
    allocator = ExactAllocator(minimize=minimize, kernels=kernels)
    return allocator.allocate(buffers, capacity, Budget(time_limit_s=time_limit_s))


def _check_decisions(buffers: list[Buffer], best: int, kernels: str = "compiled") -> None:
    """At the optimum the search packs validly; one byte lower it proves infeasibility."""
    fit = exact(buffers, best, kernels=kernels)
    assert fit.status in (Status.FEASIBLE, Status.OPTIMAL), fit.message
    assert fit.offsets_bytes is not None
    assert validate_packing(buffers, fit.offsets_bytes, best) == []
    low = exact(buffers, best - 1, kernels=kernels)
    assert low.status is Status.INFEASIBLE, low.message
    assert low.offsets_bytes is None
    assert low.lower_bound_bytes == best  # proven: nothing fits below best


def test_brute_force_helpers_agree() -> None:
    rng = random.Random(1)
    for _ in range(25):
        buffers = random_buffers(rng, 4, horizon=4, max_size=3, alignments=(1, 2))
        assert brute_force_min_height(buffers) == exhaustive_min_height(buffers)


@pytest.mark.parametrize("seed", range(6))
def test_min_height_and_decisions_match_brute_force(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(12):
        buffers = random_buffers(rng, rng.randint(2, 7), horizon=7, max_size=6)
        best = brute_force_min_height(buffers)
        result = exact(buffers, None, minimize=True)
        assert result.height_bytes == best
        assert result.status is Status.OPTIMAL
        assert result.lower_bound_bytes == best
        assert result.offsets_bytes is not None
        assert validate_packing(buffers, result.offsets_bytes) == []
        _check_decisions(buffers, best)


@pytest.mark.parametrize("seed", range(4))
def test_alignment_and_fixed_offsets_match_brute_force(seed: int) -> None:
    rng = random.Random(200 + seed)
    for _ in range(12):
        buffers = random_buffers(
            rng, rng.randint(2, 6), horizon=6, max_size=5, alignments=(1, 2, 4), fixed_prob=0.3
        )
        best = brute_force_min_height(buffers)
        result = exact(buffers, None, minimize=True)
        assert result.height_bytes == best
        assert result.offsets_bytes is not None
        assert validate_packing(buffers, result.offsets_bytes) == []
        for b, o in zip(buffers, result.offsets_bytes, strict=True):
            assert o % b.alignment_bytes == 0
            if b.fixed_offset_bytes is not None:
                assert o == b.fixed_offset_bytes
        _check_decisions(buffers, best)


def test_the_aligned_live_bound_never_exceeds_the_optimum() -> None:
    """The bound that counts alignment is a lower bound (brute force) and at least max
    live; on one-byte buffers aligned to 64 B, all live at once, it is the optimum."""
    rng = random.Random(900)
    for _ in range(60):
        buffers = random_buffers(
            rng, rng.randint(2, 6), horizon=5, max_size=9, alignments=(1, 2, 4, 8),
            fixed_prob=0.2,
        )  # fmt: skip
        p = intervals.pack(buffers)
        assert p.max_live <= aligned_live_bound(p) <= brute_force_min_height(buffers)
    stacked = [Buffer(i, 0, 1, 1, alignment_bytes=64) for i in range(300)]
    assert aligned_live_bound(intervals.pack(stacked)) == 64 * 299 + 1
    result = exact(stacked, None, minimize=True, time_limit_s=10)
    assert result.status is Status.OPTIMAL and result.height_bytes == 64 * 299 + 1


@pytest.mark.parametrize("seed", range(4))
def test_perfect_packings_match_brute_force(seed: int) -> None:
    """Tight sections (no slack), some with slack, some aligned buffers: the canonical
    floor and the level tiling stay exact.
    """
    rng = random.Random(400 + seed)
    for _ in range(10):
        buffers = guillotine_packing(rng.randrange(1 << 30), rng.randint(4, 7), side=6)
        if rng.random() < 0.5:  # leave some slack: drop a buffer
            buffers.pop(rng.randrange(len(buffers)))
        # Some aligned buffers: a level may then be unreachable for them.
        buffers = [replace(b, alignment_bytes=rng.choice((1, 1, 2))) for b in buffers]
        _check_decisions(buffers, brute_force_min_height(buffers))


def test_tight_perfect_packing_is_solved_in_few_nodes() -> None:
    """A perfect packing that took the search without the canonical floor 47 million
    nodes (57 s; > 1 million nodes in every pre-ordering) packs in a few thousand.
    """
    buffers = guillotine_packing(2, 150, side=1024, unit=1024)
    allocator = ExactAllocator(node_limit=20_000, kernels="compiled")
    result = allocator.allocate(buffers, 1024 * 1024, Budget(time_limit_s=30))
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL), result.message
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, 1024 * 1024) == []
    assert int(str(result.stats["nodes"])) <= 20_000


@pytest.mark.parametrize(("floor", "rerank"), [(False, False), (True, False), (False, True)])
def test_search_options_stay_exact(
    monkeypatch: pytest.MonkeyPatch, floor: bool, rerank: bool
) -> None:
    """Every combination of the optional inferences gives the brute-force answer."""
    monkeypatch.setattr(exact_module, "UNALLOCATED_FLOOR", floor)
    monkeypatch.setattr(exact_module, "DYNAMIC_RANKS", rerank)
    rng = random.Random(300)
    for _ in range(15):
        buffers = random_buffers(rng, rng.randint(3, 7), horizon=6, max_size=5)
        _check_decisions(buffers, brute_force_min_height(buffers))


def test_python_kernels_decide_like_brute_force() -> None:
    rng = random.Random(310)
    for _ in range(8):
        buffers = random_buffers(rng, rng.randint(3, 6), horizon=6, max_size=5, alignments=(1, 2))
        _check_decisions(buffers, brute_force_min_height(buffers), kernels="python")


def test_zero_size_buffers_and_empty_input() -> None:
    buffers = [Buffer(0, 0, 4, 0), Buffer(1, 0, 4, 3), Buffer(2, 1, 2, 0, alignment_bytes=8)]
    result = exact(buffers, 3)
    assert result.status is Status.OPTIMAL
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, 3) == []
    empty = exact([], 0)
    assert empty.status is Status.OPTIMAL and empty.offsets_bytes == ()


def test_fixed_buffer_above_capacity_is_infeasible() -> None:
    """The message names the buffer by its id (it said '#1', the index, for a CSV row
    whose id is 'w')."""
    buffers = [Buffer(0, 0, 4, 4), Buffer("w", 0, 4, 4, fixed_offset_bytes=8)]
    infeasible = exact(buffers, 10)
    assert infeasible.status is Status.INFEASIBLE
    assert "fixed buffer 'w' needs bytes up to 12" in infeasible.message
    fit = exact(buffers, 12)
    assert fit.status is Status.FEASIBLE and fit.offsets_bytes == (0, 8)


def test_timeout_returns_promptly_without_offsets() -> None:
    buffers = read_buffers_csv(challenging_file("D"))
    # At max live (986112 B) no packing of D is known; the search must stop on time.
    result = exact(buffers, 986112, time_limit_s=0.5)
    assert result.status is Status.TIMEOUT
    assert result.offsets_bytes is None
    assert result.wall_s < 5
    assert "time ran out" in result.message


def test_stop_event_ends_the_search_mid_way() -> None:
    """Ctrl-C: a stop event set while the search runs ends it within a slice."""
    buffers = read_buffers_csv(challenging_file("D"))
    budget = Budget(time_limit_s=60)
    timer = threading.Timer(0.5, budget.stop_event.set)
    timer.start()
    try:
        result = ExactAllocator(kernels="compiled").allocate(buffers, 986112, budget)
    finally:
        timer.cancel()
    assert result.status is Status.TIMEOUT
    assert result.message.startswith("stopped")
    assert result.wall_s < 5


def test_minimize_with_time_limit_keeps_best_packing() -> None:
    buffers = read_buffers_csv(challenging_file("D"))
    result = exact(buffers, None, minimize=True, time_limit_s=1.0)
    assert result.offsets_bytes is not None and result.height_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes) == []
    assert result.height_bytes >= result.lower_bound_bytes >= result.max_live_bytes
    if result.status is Status.TIMEOUT:
        assert "not proven minimal" in result.message


@pytest.mark.parametrize("name", list("ABCDEFGHIJK"))
def test_solves_every_minimalloc_challenging_file(name: str) -> None:
    """The headline claim: every challenging file packs at 2^20 (MiniMalloc's capacity)."""
    buffers = read_buffers_csv(challenging_file(name))
    result = exact(buffers, CAPACITY, time_limit_s=60)
    assert result.fits, result.message
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, CAPACITY) == []
    assert result.stats["nodes"] > 0


def test_minimize_under_a_capacity() -> None:
    rng = random.Random(400)
    for _ in range(12):
        buffers = random_buffers(rng, rng.randint(3, 7), horizon=6, max_size=6)
        best = brute_force_min_height(buffers)
        roomy = exact(buffers, best + 3, minimize=True)
        assert roomy.status is Status.OPTIMAL and roomy.height_bytes == best
        tight = exact(buffers, best - 1, minimize=True)
        assert tight.status is Status.INFEASIBLE
        assert tight.lower_bound_bytes == best
        assert tight.height_bytes == best  # the lowest packing, above the capacity


def test_search_grows_its_pools_and_trail() -> None:
    """Starting from tiny pools, the kernel asks for memory and resumes correctly."""
    rng = random.Random(500)
    for kernels in ("compiled", "python"):
        for _ in range(6):
            buffers = random_buffers(rng, 7, horizon=6, max_size=5)
            best = brute_force_min_height(buffers)
            for capacity, expected in (
                (best, search_state.SOLVED),
                (best - 1, search_state.INFEASIBLE),
            ):
                job = prepare(ExactAllocator(kernels=kernels), buffers, capacity, Budget(10))
                assert isinstance(job, Prepared)
                shared = exact_module.statics(job.packed, capacity, job.kernels, True)
                search = exact_module.Search(job.packed, shared, "TWA", job.kernels)
                used = int(search.state.st[search_state.ST_PLIST])  # the root partition list
                search.state = search.state._replace(
                    pool=search.state.pool[:, :used].copy(), trail=np.zeros((3, 1), np.int64)
                )
                code = search.advance(10**7)
                assert code == expected
                if code == search_state.SOLVED:
                    assert validate_packing(buffers, search.offsets.tolist(), capacity) == []
                assert search.state.trail.shape[1] > 1 and search.state.pool.shape[1] > 1


def test_node_limit_is_exact_across_growth() -> None:
    """advance(k) expands exactly k nodes even when it had to grow its arrays first."""
    buffers = read_buffers_csv(challenging_file("E"))
    job = prepare(ExactAllocator(kernels="compiled"), buffers, CAPACITY, Budget(10))
    assert isinstance(job, Prepared)
    shared = exact_module.statics(job.packed, CAPACITY, job.kernels, True)
    search = exact_module.Search(job.packed, shared, "WAT", job.kernels)
    search.state = search.state._replace(trail=np.zeros((3, 1), np.int64))
    assert search.advance(500) == search_state.PAUSED
    assert search.nodes == 500


@pytest.mark.parametrize("kernels", ["compiled", "python"])
def test_a_call_pauses_after_its_placement_attempts(kernels: str) -> None:
    """A node can try thousands of placements (one call of 2,134 nodes took 18 s on
    randwire_ws_large and held Ctrl-C back): a call also stops after its attempts."""
    buffers = read_buffers_csv(challenging_file("E"))
    job = prepare(ExactAllocator(kernels=kernels), buffers, CAPACITY, Budget(10))
    assert isinstance(job, Prepared)
    shared = exact_module.statics(job.packed, CAPACITY, job.kernels, True)
    search = exact_module.Search(job.packed, shared, "WAT", job.kernels)
    for target in (50, 51, 300):
        assert search.advance(10**9, target - search.attempts) == search_state.PAUSED
        assert search.attempts == target


@pytest.mark.parametrize("kernels", ["compiled", "python"])
def test_pausing_after_every_attempt_changes_nothing(kernels: str) -> None:
    """Resuming after each placement gives the answer of one uninterrupted call."""
    rng = random.Random(77)
    for _ in range(8):
        buffers = random_buffers(rng, 9, horizon=7, max_size=6)
        best = brute_force_min_height(buffers)
        for capacity in (best, best - 1):
            answers = []
            for attempts_per_call in (search_state.NO_ATTEMPT_LIMIT, 1):
                job = prepare(ExactAllocator(kernels=kernels), buffers, capacity, Budget(10))
                assert isinstance(job, Prepared)
                shared = exact_module.statics(job.packed, capacity, job.kernels, True)
                search = exact_module.Search(job.packed, shared, "TWA", job.kernels)
                calls = 0
                while (code := search.advance(10**9, attempts_per_call)) == search_state.PAUSED:
                    calls += 1
                answers.append((code, search.offsets.tolist(), search.nodes, search.attempts))
            assert answers[0] == answers[1]
            assert calls >= answers[1][3] - 1  # one call per attempt, at least


def test_a_node_limit_ends_the_search_the_same_way_every_time() -> None:
    """``node_limit`` counts search nodes, not seconds: the same stop on any machine and
    load (the mallocGame sampler's baselines depended on the load with a 0.5-s limit)."""
    buffers = read_buffers_csv(challenging_file("D"))
    results = [
        ExactAllocator(kernels="compiled", node_limit=5_000).allocate(
            buffers, 986112, Budget(time_limit_s=60)
        )
        for _ in range(2)
    ]
    for result in results:
        assert result.status is Status.TIMEOUT and result.offsets_bytes is None
        assert result.stats["nodes"] == 5_000
    with pytest.raises(Exception, match="node_limit"):
        ExactAllocator(node_limit=-1)


def test_the_sampler_bounds_its_baselines_by_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    import memplan.rl.sampler as sampler

    seen: list[dict[str, object]] = []
    real = sampler.make_instance

    def recording(*args: object, **kwargs: object) -> object:
        seen.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sampler, "make_instance", recording)
    sampler.InstanceSampler(0, ()).sample()
    assert seen and all(k["alloc_node_limit"] == sampler.BASELINE_ALLOC_NODES for k in seen)
    assert all(float(k["alloc_time_limit_s"]) >= 10 for k in seen)  # type: ignore[arg-type]


def test_a_slow_search_slices_down_to_one_placement_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a dense instance one placement took 20 ms, and the smallest slice (16 nodes,
    64 placements) kept one kernel call busy 1.25 s past the time limit. With every call
    made to look slow (a clock that moves 1 s a look), the slices go down to one."""
    import types

    calls: list[tuple[int, int]] = []
    advance = exact_module.Search.advance

    def recorded(self: exact_module.Search, nodes: int, attempts: int = 0) -> int:
        calls.append((nodes, attempts))
        return advance(self, nodes, attempts)

    ticks = iter(range(10**6))
    clock = types.SimpleNamespace(perf_counter=lambda: float(next(ticks)), monotonic=time_monotonic)
    monkeypatch.setattr(exact_module.Search, "advance", recorded)
    monkeypatch.setattr(exact_module, "time", clock)
    buffers = read_buffers_csv(challenging_file("D"))
    allocator = ExactAllocator(node_limit=50, kernels="compiled")
    result = allocator.allocate(buffers, 986112, Budget(time_limit_s=60))  # D's max live
    assert result.status is Status.TIMEOUT and "node_limit" in result.message
    assert len(calls) > 3
    assert calls[0] == (1, 1)  # the first call is small too: its cost is unknown
    assert all(call == (1, 1) for call in calls[1:]), calls[:5]


def time_monotonic() -> float:
    """The real monotonic clock (the budget's deadline keeps working)."""
    import time

    return time.monotonic()
