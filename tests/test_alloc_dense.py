"""Dense instances: packed by the sweep over time, without the quadratic overlap graph."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from alloc_helpers import random_buffers

from memplan.dsa import Buffer, make_allocator, validate_packing
from memplan.solver import Budget, Status
from memplan.solvers.alloc import common, intervals, sweep
from memplan.solvers.alloc.cpsat import ortools_installed
from memplan.solvers.alloc.intervals import flat_arrays
from memplan.solvers.alloc.sweep import stacked_offsets, sweep_offsets

ALLOCATORS = (
    "auto",
    "exact",
    "portfolio",
    "greedy-by-size",
    "best-fit-size",
    "best-fit-duration",
    "online-best-fit",
    "first-fit-decreasing",
    "lowest-offset-first",
) + (("cpsat",) if ortools_installed() else ())


def all_live(n: int) -> list[Buffer]:
    """``n`` buffers all live at step 10: every pair overlaps (n * (n - 1) / 2 pairs)."""
    return [Buffer(i, i % 10, 20 + i % 7, 1 + (i * 37) % 4096) for i in range(n)]


def cliques(n: int, seed: int = 2) -> list[Buffer]:
    """``n`` long, heavily overlapping buffers (about n^2 / 3 pairs), not all at once."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lo = rng.randint(0, 1000)
        out.append(Buffer(i, lo, lo + rng.randint(300, 1500), rng.randint(1, 4096)))
    return out


@pytest.fixture
def graph_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the overlap graphs built (each call of intervals.pack_arrays)."""
    built: list[int] = []
    build = intervals.pack_arrays

    def counted(*args: object, **kwargs: object) -> object:
        built.append(1)
        return build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(common, "pack_arrays", counted)
    return built


@pytest.mark.parametrize("name", ALLOCATORS)
def test_all_overlapping_buffers_are_optimal_without_the_graph(
    name: str, graph_builds: list[int]
) -> None:
    """4,600 buffers live at once (10.6 million pairs): the overlap graph was built (or
    refused, 20,000: TIMEOUT without a packing) although stacking them is optimal."""
    buffers = all_live(4_600)
    total = sum(b.size_bytes for b in buffers)
    for capacity in (None, 2 * total):
        result = make_allocator(name).allocate(buffers, capacity, Budget(time_limit_s=30))
        assert result.status is Status.OPTIMAL, (name, capacity, result.message)
        assert result.height_bytes == total == result.lower_bound_bytes
        assert result.offsets_bytes is not None
        assert validate_packing(buffers, result.offsets_bytes, capacity) == []
        assert "sweep" in result.algorithm and "not needed" in result.message
    assert graph_builds == []


def test_20k_all_overlapping_packs_in_seconds_on_every_path(graph_builds: list[int]) -> None:
    """The brief's case: 20,000 buffers that all overlap (200 million pairs)."""
    buffers = all_live(20_000)
    total = sum(b.size_bytes for b in buffers)
    for name in ("auto", "exact"):
        start = time.monotonic()
        result = make_allocator(name, {"minimize": True}).allocate(
            buffers, None, Budget(time_limit_s=10)
        )
        assert time.monotonic() - start < 5, name
        assert result.status is Status.OPTIMAL and result.height_bytes == total
    assert graph_builds == []


def test_capacity_below_max_live_of_a_dense_instance_is_infeasible_at_once(
    graph_builds: list[int],
) -> None:
    buffers = all_live(4_600)
    total = sum(b.size_bytes for b in buffers)
    for name in ("auto", "exact", "portfolio"):
        result = make_allocator(name).allocate(buffers, total - 1, Budget(time_limit_s=30))
        assert result.status is Status.INFEASIBLE, name
        assert f"no packing fits {total - 1} B" in result.message
        assert f"at least {total} B" in result.message
        assert result.offsets_bytes is not None and not result.fits
    assert graph_builds == []


def test_a_graph_too_large_for_memory_keeps_the_sweeps_packing() -> None:
    """Refused set-up returned TIMEOUT with no offsets; now the sweep's valid packing."""
    buffers = cliques(3_000)
    for name, minimize in (("portfolio", False), ("exact", False), ("auto", True)):
        allocator = make_allocator(name, {"memory_limit_bytes": 1_000_000, "minimize": minimize})
        result = allocator.allocate(buffers, 1 << 40, Budget(time_limit_s=30))
        assert result.offsets_bytes is not None, name
        assert validate_packing(buffers, result.offsets_bytes, 1 << 40) == []
        assert result.message.startswith("over the memory limit: the overlap graph of 3000")
        assert "kept a packing by a best-fit sweep over time" in result.message
        # Any packing fits: FEASIBLE; with minimize it is not proven minimal: TIMEOUT.
        expected = Status.TIMEOUT if minimize else Status.FEASIBLE
        if result.height_bytes != result.max_live_bytes:
            assert result.status is expected, (name, result.status)


def test_a_graph_too_slow_to_build_keeps_the_sweeps_packing(
    monkeypatch: pytest.MonkeyPatch, graph_builds: list[int]
) -> None:
    """Set-up that cannot end in time is not started; the sweep packs instead."""
    monkeypatch.setattr(common, "ENTRIES_PER_S", 1_000)
    buffers = cliques(2_000)
    result = make_allocator("greedy-by-size").allocate(buffers, 1 << 40, Budget(time_limit_s=5))
    assert result.status is Status.FEASIBLE and result.offsets_bytes is not None
    assert result.message.startswith("not started: the overlap graph of 2000 buffers")
    assert validate_packing(buffers, result.offsets_bytes, 1 << 40) == []
    assert graph_builds == []


def test_sweep_packings_are_valid_with_alignment_fixed_offsets_and_empty_buffers() -> None:
    rng = random.Random(7)
    for _ in range(300):
        buffers = random_buffers(
            rng, rng.randint(1, 40), horizon=10, max_size=9, alignments=(1, 2, 4, 8),
            fixed_prob=0.15,
        )  # fmt: skip
        offsets, swept = sweep_offsets(*flat_arrays(buffers), Budget(60))
        assert swept and validate_packing(buffers, offsets.tolist()) == []


def test_sweep_meets_max_live_when_nothing_fragments() -> None:
    """No overlap: everything at 0; all overlapping: stacked; one huge buffer on top."""
    apart = [Buffer(i, i, i + 1, 1 + i) for i in range(100)]
    offsets, _ = sweep_offsets(*flat_arrays(apart), Budget(60))
    assert offsets.tolist() == [0] * 100
    huge = [*all_live(50), Buffer("huge", 0, 30, 1 << 40)]
    offsets, _ = sweep_offsets(*flat_arrays(huge), Budget(60))
    height = int((offsets + np.array([b.size_bytes for b in huge])).max())
    assert height == sum(b.size_bytes for b in huge)


def test_a_stopped_sweep_stacks_the_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    buffers = [*cliques(200), Buffer("f", 0, 5000, 10, 4, 8), Buffer("z", 3, 4, 0)]
    budget = Budget(time_limit_s=60)
    budget.stop_event.set()
    arrays = flat_arrays(buffers)
    monkeypatch.setattr(sweep, "CHECK_WORK", 1)
    offsets, swept = sweep_offsets(*arrays, budget)
    assert not swept
    assert offsets.tolist() == stacked_offsets(arrays[2], arrays[3], arrays[4]).tolist()
    assert validate_packing(buffers, offsets.tolist()) == []
