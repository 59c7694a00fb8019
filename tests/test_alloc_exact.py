"""Tests of the exact allocator against brute force, and on MiniMalloc's benchmarks."""

from __future__ import annotations

import random

import pytest
from alloc_helpers import (
    CAPACITY,
    brute_force_min_height,
    challenging_file,
    exhaustive_min_height,
    random_buffers,
)

from memplan.dsa import AllocationStatus, Buffer, validate_packing
from memplan.io.buffers_csv import read_buffers_csv
from memplan.solvers.alloc import exact as exact_module
from memplan.solvers.alloc.exact import exact


def _check_decisions(buffers: list[Buffer], best: int) -> None:
    """At the optimum the search packs validly; one byte lower it proves infeasibility."""
    fit = exact(buffers, best, time_limit_s=20)
    assert fit.status is AllocationStatus.SOLVED, fit.message
    assert fit.offsets_bytes is not None
    assert validate_packing(buffers, fit.offsets_bytes, best) == []
    low = exact(buffers, best - 1, time_limit_s=20)
    assert low.status is AllocationStatus.INFEASIBLE, low.message
    assert low.offsets_bytes is None


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
        result = exact(buffers, None, minimize=True, time_limit_s=20)
        assert result.height_bytes == best
        assert result.proven_optimal
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
        result = exact(buffers, None, minimize=True, time_limit_s=20)
        assert result.height_bytes == best
        assert result.offsets_bytes is not None
        assert validate_packing(buffers, result.offsets_bytes) == []
        for b, o in zip(buffers, result.offsets_bytes, strict=True):
            assert o % b.alignment_bytes == 0
            if b.fixed_offset_bytes is not None:
                assert o == b.fixed_offset_bytes
        _check_decisions(buffers, best)


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


def test_zero_size_buffers_and_empty_input() -> None:
    buffers = [Buffer(0, 0, 4, 0), Buffer(1, 0, 4, 3), Buffer(2, 1, 2, 0, alignment_bytes=8)]
    result = exact(buffers, 3)
    assert result.status is AllocationStatus.SOLVED
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, 3) == []
    assert exact([], 0).status is AllocationStatus.SOLVED


def test_fixed_buffer_above_capacity_is_infeasible() -> None:
    buffers = [Buffer(0, 0, 4, 4, fixed_offset_bytes=8), Buffer(1, 0, 4, 4)]
    assert exact(buffers, 10).status is AllocationStatus.INFEASIBLE
    fit = exact(buffers, 12)
    assert fit.status is AllocationStatus.SOLVED and fit.offsets_bytes == (8, 0)


def test_timeout_returns_promptly_without_offsets() -> None:
    path = challenging_file("D")
    buffers = read_buffers_csv(path)
    # At max live (986112 B) no packing of D is known; the search must stop on time.
    result = exact(buffers, 986112, time_limit_s=0.5)
    assert result.status is AllocationStatus.TIMEOUT
    assert result.offsets_bytes is None
    assert result.wall_s < 5


def test_minimize_with_time_limit_keeps_best_packing() -> None:
    buffers = read_buffers_csv(challenging_file("D"))
    result = exact(buffers, None, minimize=True, time_limit_s=1.0)
    assert result.offsets_bytes is not None and result.height_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes) == []
    assert result.height_bytes >= result.max_live_bytes


@pytest.mark.parametrize("name", ["C", "F", "G", "H", "I", "K"])
def test_solves_minimalloc_challenging_files(name: str) -> None:
    buffers = read_buffers_csv(challenging_file(name))
    result = exact(buffers, CAPACITY, time_limit_s=60)
    assert result.status is AllocationStatus.SOLVED, result.message
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, CAPACITY) == []


def test_minimize_under_a_capacity() -> None:
    rng = random.Random(400)
    for _ in range(12):
        buffers = random_buffers(rng, rng.randint(3, 7), horizon=6, max_size=6)
        best = brute_force_min_height(buffers)
        roomy = exact(buffers, best + 3, minimize=True, time_limit_s=20)
        assert roomy.status is AllocationStatus.SOLVED
        assert roomy.height_bytes == best and roomy.proven_optimal
        tight = exact(buffers, best - 1, minimize=True, time_limit_s=20)
        assert tight.status is AllocationStatus.INFEASIBLE


def test_search_grows_its_pools_and_trail() -> None:
    """Starting from tiny pools, the kernel asks for memory and resumes correctly."""
    import numpy as np

    from memplan.solvers.alloc import search_state
    from memplan.solvers.alloc.intervals import pack

    rng = random.Random(500)
    for _ in range(10):
        buffers = random_buffers(rng, 7, horizon=6, max_size=5)
        best = brute_force_min_height(buffers)
        for capacity, expected in (
            (best, search_state.SOLVED),
            (best - 1, search_state.INFEASIBLE),
        ):
            state = exact_module._SearchState(pack(buffers), "TWA", capacity)
            state.cand_buf = np.zeros(1, np.int64)
            state.cand_off = np.zeros(1, np.int64)
            state.trail_kind = np.zeros(1, np.int64)
            state.trail_idx = np.zeros(1, np.int64)
            state.trail_val = np.zeros(1, np.int64)
            code = state.advance(10**7)
            assert code == expected
            if code == search_state.SOLVED:
                assert validate_packing(buffers, state.offset.tolist(), capacity) == []
            assert state.trail_kind.size > 1
