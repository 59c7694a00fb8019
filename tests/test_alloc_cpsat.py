"""The CP-SAT allocator, and ``auto`` handing it what the exact search leaves."""

from __future__ import annotations

import random
import time
import types

import pytest
from alloc_helpers import brute_force_min_height, guillotine_packing, random_buffers

from memplan.dsa import Buffer, validate_packing
from memplan.solver import Budget, Status
from memplan.solvers.alloc.auto import AutoAllocator
from memplan.solvers.alloc.cpsat import CpSatAllocator
from memplan.solvers.alloc.greedy import Portfolio

pytest.importorskip("ortools")


def test_decisions_and_minimum_match_brute_force() -> None:
    rng = random.Random(11)
    for _ in range(10):
        buffers = random_buffers(rng, 7, horizon=6, max_size=6)
        best = brute_force_min_height(buffers)
        fit = CpSatAllocator().allocate(buffers, best, Budget(20))
        assert fit.status in (Status.FEASIBLE, Status.OPTIMAL), fit.message
        assert fit.offsets_bytes is not None
        assert validate_packing(buffers, fit.offsets_bytes, best) == []
        low = CpSatAllocator().allocate(buffers, best - 1, Budget(20))
        assert low.status is Status.INFEASIBLE and low.offsets_bytes is None
        lowest = CpSatAllocator(minimize=True).allocate(buffers, None, Budget(20))
        assert lowest.status is Status.OPTIMAL and lowest.height_bytes == best


def test_alignment_and_fixed_offsets_are_kept() -> None:
    buffers = [
        Buffer("a", 0, 4, 3, alignment_bytes=4),
        Buffer("b", 1, 3, 5, alignment_bytes=4),
        Buffer("c", 2, 5, 2, fixed_offset_bytes=9),
        Buffer("d", 3, 6, 4, alignment_bytes=2),
    ]
    result = CpSatAllocator(minimize=True).allocate(buffers, None, Budget(20))
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, None) == []
    assert result.offsets_bytes[2] == 9
    assert result.height_bytes == brute_force_min_height(buffers)


def _hard_for_the_portfolio() -> list[Buffer]:
    """A seeded perfect packing that no greedy variant of the portfolio packs."""
    for seed in range(200):
        buffers = guillotine_packing(seed, 40, 64, unit=16)
        if not Portfolio().allocate(buffers, 1 << 10, Budget(10)).fits:
            return buffers
    raise AssertionError("no seed gave a packing the portfolio misses")


def test_auto_hands_cpsat_what_the_exact_search_leaves() -> None:
    """With the exact search starved (one node), ``cpsat_share`` packs what ``auto``
    alone gives up on; with the default 0 nothing changes for the solvers' packings."""
    buffers = _hard_for_the_portfolio()
    starved = {"node_limit": 1}
    alone = AutoAllocator(**starved).allocate(buffers, 1 << 10, Budget(10))
    assert not alone.fits and "cpsat" not in alone.algorithm
    helped = AutoAllocator(cpsat_share=0.5, **starved).allocate(buffers, 1 << 10, Budget(10))
    assert helped.fits and helped.algorithm == "auto:cpsat", helped.message
    assert helped.offsets_bytes is not None
    assert validate_packing(buffers, helped.offsets_bytes, 1 << 10) == []
    assert "exact search" in helped.message


def test_a_short_limit_keeps_auto_as_it_was() -> None:
    """Below CPSAT_MIN_S for CP-SAT the exact search keeps the whole limit (greedy's
    one-second tries never build a CP-SAT model)."""
    buffers = _hard_for_the_portfolio()
    short = AutoAllocator(cpsat_share=0.5, node_limit=1).allocate(buffers, 1 << 10, Budget(1))
    assert "cpsat" not in short.algorithm


def test_cpsat_share_is_checked() -> None:
    with pytest.raises(Exception, match="cpsat_share"):
        AutoAllocator(cpsat_share=1.5)


#: The tester's instance (sweepG/cps2.csv): max live 17 B, the lowest packing 19 B.
CPS2 = [
    Buffer("b0", 3, 8, 4),
    Buffer("b1", 2, 4, 4),
    Buffer("b2", 6, 10, 5, fixed_offset_bytes=6),
    Buffer("b3", 0, 4, 2),
    Buffer("b4", 1, 4, 2),
    Buffer("b5", 5, 8, 8),
    Buffer("b6", 4, 6, 5),
]


def test_minimize_below_the_optimum_is_proven_infeasible() -> None:
    """With ``minimize`` and a capacity below the portfolio's height, CP-SAT still runs:
    it returned the portfolio's result ('timeout', 'the exact search may still find
    one') without building a model."""
    assert brute_force_min_height(CPS2) == 19
    low = CpSatAllocator(minimize=True).allocate(CPS2, 18, Budget(20))
    assert low.status is Status.INFEASIBLE, low.message
    assert low.lower_bound_bytes == 19 and "CP-SAT proved it" in low.message
    assert low.algorithm.startswith("cpsat") and not low.fits
    assert low.stats["start"].startswith("portfolio")
    rng = random.Random(5)
    for _ in range(8):
        buffers = random_buffers(rng, 7, horizon=6, max_size=6)
        best = brute_force_min_height(buffers)
        below = CpSatAllocator(minimize=True).allocate(buffers, best - 1, Budget(20))
        assert below.status is Status.INFEASIBLE, below.message
        assert below.lower_bound_bytes == best
        at = CpSatAllocator(minimize=True).allocate(buffers, best, Budget(20))
        assert at.status is Status.OPTIMAL and at.height_bytes == best


def test_minimize_without_a_better_packing_reports_its_own_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CP-SAT out of time without a packing: the portfolio's start is kept, but the
    result is this call's (TIMEOUT, the real wall time, named cpsat). It was the
    portfolio's own result: 'feasible', its wall time and name, no message."""
    from ortools.sat.python import cp_model

    from memplan.solvers.alloc import cpsat

    def out_of_time(model: object, budget: Budget, seed: int) -> tuple[object, object]:
        time.sleep(0.5)  # CP-SAT's search, cut by the clock before its first solution
        return cp_model.UNKNOWN, types.SimpleNamespace(wall_time=0.5)

    monkeypatch.setattr(cpsat, "_solve", out_of_time)
    buffers = _hard_for_the_portfolio()
    start = Portfolio(minimize=True).allocate(buffers, None, Budget(10))
    result = CpSatAllocator(minimize=True).allocate(buffers, None, Budget(10))
    assert result.status is Status.TIMEOUT, result.message
    assert result.wall_s >= 0.5
    assert result.algorithm == f"cpsat:{start.algorithm}"
    assert result.stats["start"] == start.algorithm
    assert result.offsets_bytes == start.offsets_bytes
    assert "out of time" in result.message and "kept" in result.message
    assert result.lower_bound_bytes == result.max_live_bytes
