"""Memory and time are budgets too: estimates before building, set-up bounded, clean ends."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
from alloc_helpers import random_buffers

from memplan.dsa import Buffer, allocate, make_allocator, validate_packing
from memplan.solver import Budget, Status
from memplan.solvers.alloc import common
from memplan.solvers.alloc.common import Prepared, pack_memory_bytes, prepare
from memplan.solvers.alloc.exact import ExactAllocator, search_memory_bytes


def dense(n: int) -> list[Buffer]:
    """``n`` buffers all live at step 50: every pair overlaps."""
    return [Buffer(i, i % 10, 90 + i % 10, 64 + i % 7) for i in range(n)]


def long_lived(n_short: int, n_long: int) -> list[Buffer]:
    """Short buffers one after another, and a few that live through all of them.

    The long ones span every section: the exact search's section lists hold about
    ``n_long * n_short`` entries while the overlap graph stays small.
    """
    short = [Buffer(f"s{i}", i, i + 1, 8 + i % 5) for i in range(n_short)]
    longs = [Buffer(f"l{j}", 0, n_short, 4 + j) for j in range(n_long)]
    return short + longs


def test_dense_100k_is_packed_without_building_anything_quadratic() -> None:
    """5e9 overlapping pairs would need 40 GB: the graph was refused (TIMEOUT without a
    packing); the sweep over time stacks them, which meets max live: OPTIMAL at once."""
    buffers = dense(100_000)
    total = sum(b.size_bytes for b in buffers)
    for name in ("portfolio", "exact", "auto", "greedy-by-size"):
        allocator = make_allocator(name, {"memory_limit_bytes": 4_000_000_000})
        start = time.monotonic()
        result = allocator.allocate(buffers, 1 << 30, Budget(time_limit_s=60))
        assert time.monotonic() - start < 10
        assert result.status is Status.OPTIMAL and result.height_bytes == total
        assert "4999950000 overlapping pairs) was not needed" in result.message
        assert result.max_live_bytes == total


def test_pack_estimate_covers_what_packing_allocates() -> None:
    """The estimate is at least the arrays that pack() keeps."""
    buffers = dense(2_000)
    job = prepare(make_allocator("portfolio"), buffers, None, Budget(60))
    assert isinstance(job, Prepared)
    kept = sum(a.nbytes for a in job.packed)
    assert pack_memory_bytes(len(buffers), job.pairs) >= kept


def test_exact_drops_its_section_lists_when_memory_is_short() -> None:
    buffers = long_lived(3_000, 40)
    job = prepare(ExactAllocator(), buffers, None, Budget(60))
    assert isinstance(job, Prepared)
    with_lists = search_memory_bytes(job.packed, job.spans, True, 3)
    without = search_memory_bytes(job.packed, job.spans, False, 3)
    assert job.spans >= 40 * 2_999 and with_lists - without == 4 * job.spans
    limit = (with_lists + without) // 2
    allocator = make_allocator("exact", {"memory_limit_bytes": limit, "kernels": "compiled"})
    live = job.max_live
    result = allocator.allocate(buffers, live, Budget(time_limit_s=60))
    assert result.stats["unallocated_floor"] is False
    assert result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, live) == []
    assert result.status is Status.OPTIMAL  # packed at max live
    below = allocator.allocate(buffers, live - 1, Budget(time_limit_s=60))
    assert below.status is Status.INFEASIBLE


def test_exact_refuses_and_auto_keeps_the_portfolio_when_memory_is_too_short() -> None:
    buffers = long_lived(3_000, 40)
    job = prepare(ExactAllocator(), buffers, None, Budget(60))
    assert isinstance(job, Prepared)
    without = search_memory_bytes(job.packed, job.spans, False, 3)
    options = {"memory_limit_bytes": without - 1, "kernels": "compiled"}
    tight = max(b.size_bytes for b in buffers[:3000]) + sum(b.size_bytes for b in buffers[3000:])
    exact = make_allocator("exact", options).allocate(buffers, tight + 1000, Budget(60))
    assert exact.status is Status.TIMEOUT and exact.offsets_bytes is None
    assert "the exact search over 3040 buffers would need" in exact.message
    # auto: the portfolio packs, the exact search is skipped and the message says so.
    auto = make_allocator("auto", {**options, "minimize": True}).allocate(buffers, None, Budget(60))
    assert auto.offsets_bytes is not None and auto.algorithm.startswith("auto:")
    assert validate_packing(buffers, auto.offsets_bytes) == []
    if auto.status is not Status.OPTIMAL:
        assert "over the memory limit" in auto.message


def test_set_up_that_cannot_end_in_time_is_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the assumed build rate lowered, a 1 s budget refuses a 3,000-buffer build;
    the packing of the sweep over time (no graph) is kept instead."""
    monkeypatch.setattr(common, "ENTRIES_PER_S", 1_000)
    buffers = [
        Buffer(i, i * 7 % 40, i * 7 % 40 + 25 + i % 9, 64 + i * 13 % 97) for i in range(3_000)
    ]
    allocate(buffers[:10], None, algorithm="portfolio")  # the allocator loaded, not timed
    start = time.monotonic()
    result = allocate(buffers, None, algorithm="portfolio", budget=Budget(time_limit_s=1))
    assert time.monotonic() - start < 1
    assert result.status is Status.FEASIBLE and result.offsets_bytes is not None
    assert result.height_bytes is not None and result.height_bytes > result.max_live_bytes
    # It said "out of time: ..." with nearly all the time left (big60k.csv: 29.4 s of 30).
    assert result.message.startswith("not started: the overlap graph of 3000 buffers")
    assert "out of time" not in result.message and "s left" in result.message
    assert "kept a packing by a best-fit sweep over time" in result.message


class StopsAfter(Budget):
    """A budget that asks to stop from its ``calls``-th look on (a deterministic clock)."""

    def __init__(self, calls: int) -> None:
        super().__init__(time_limit_s=60)
        object.__setattr__(self, "looks", [0])
        object.__setattr__(self, "calls", calls)

    def should_stop(self) -> bool:
        self.looks[0] += 1  # type: ignore[attr-defined]
        return bool(self.looks[0] >= self.calls)  # type: ignore[attr-defined]


def test_a_pass_is_cut_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passes run in chunks: a budget that ends mid-pass returns at once, with the buffers
    stacked (a valid packing; it returned none)."""
    from memplan.solvers.alloc import greedy

    monkeypatch.setattr(greedy, "CHUNK_WORK", 1_000)
    buffers = [Buffer(i, i % 50, i % 50 + 30, 64 + i % 7) for i in range(400)]  # not a clique
    for name in ("greedy-by-size", "lowest-offset-first", "portfolio", "exact", "auto"):
        budget = StopsAfter(3)  # prepare looks once, then two chunks run
        allocator = make_allocator(name, {"kernels": "compiled", "minimize": True})
        result = allocator.allocate(buffers, None, budget)
        assert result.status is Status.TIMEOUT and result.offsets_bytes is not None, name
        assert validate_packing(buffers, result.offsets_bytes) == []
        assert result.algorithm.endswith(":stacked"), result.algorithm
        assert result.message.startswith("out of time before the first greedy packing was complete")
        assert "kept a packing by stacking the buffers" in result.message


def test_every_allocator_honours_a_short_time_limit() -> None:
    """A 0.3 s limit on an instance the exact search cannot finish: back within a grace."""
    rng = np.random.default_rng(3)
    lower = np.sort(rng.integers(0, 1500, 3000))
    buffers = [
        Buffer(i, int(lo), int(lo + rng.integers(1, 40)), int(rng.integers(1, 1000)))
        for i, lo in enumerate(lower)
    ]
    for name in ("auto", "exact", "portfolio"):
        for minimize in (False, True):
            allocator = make_allocator(name, {"minimize": minimize, "kernels": "compiled"})
            allocator.allocate(buffers[:50], None, Budget(60))  # kernels loaded, not timed
            start = time.monotonic()
            result = allocator.allocate(buffers, 1, Budget(time_limit_s=0.3))
            assert time.monotonic() - start < 2.0, (name, minimize)
            assert result.status is Status.INFEASIBLE  # evident: max live > 1 B
            capacity = None if minimize else result.max_live_bytes
            start = time.monotonic()
            result = allocator.allocate(buffers, capacity, Budget(time_limit_s=0.3))
            assert time.monotonic() - start < 2.0, (name, minimize, result.message)


def test_stop_event_mid_climb_returns_the_best_so_far() -> None:
    buffers = random_buffers(random.Random(4), 300, horizon=150, max_size=200)
    budget = Budget(time_limit_s=60)
    budget.stop_event.set()
    result = make_allocator("portfolio", {"minimize": True}).allocate(buffers, None, budget)
    assert result.status is Status.TIMEOUT and result.offsets_bytes is None


@pytest.mark.parametrize("name", ["exact", "portfolio"])
def test_the_check_of_the_result_fits_in_the_time_limit(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Every result is validated after the search; a search that used the whole limit
    ended that much late (100,000 buffers: 0.6 s over a 2 s limit). The search now stops
    early by the check's estimated time (made 0.5 s here, and the check that slow)."""
    from alloc_helpers import challenging_file

    import memplan.dsa
    from memplan.io.buffers_csv import read_buffers_csv

    buffers = read_buffers_csv(challenging_file("D"))  # not proven minimal within minutes
    check = memplan.dsa.validate_packing

    def slow_check(*args: object) -> list[str]:
        time.sleep(0.5)
        return check(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(memplan.dsa, "validate_packing", slow_check)
    monkeypatch.setattr(common, "CHECK_S_PER_BUFFER", 0.6 / len(buffers), raising=False)
    allocator = make_allocator(name, {"minimize": True, "kernels": "python"})
    result = allocator.allocate(buffers, None, Budget(time_limit_s=1.5))
    assert result.offsets_bytes is not None and result.wall_s <= 1.5 + 0.2


def test_a_limit_spent_before_packing_says_out_of_time_not_stopped() -> None:
    """'allocate --time-limit 1' on a CSV that took longer to read said 'stopped before
    packing started', as if Ctrl-C had been pressed."""
    buffers = dense(20)
    spent = allocate(buffers, None, budget=Budget(time_limit_s=0))
    assert spent.message == "out of time before packing started"
    budget = Budget(time_limit_s=60)
    budget.stop_event.set()
    assert allocate(buffers, None, budget=budget).message == "stopped before packing started"


def test_a_set_up_cut_by_ctrl_c_says_interrupted_not_out_of_time() -> None:
    """After Ctrl-C the time left reads 0 s: the message must not blame the clock."""
    stopped = Budget(time_limit_s=60)
    stopped.stop_event.set()
    why = common.too_slow("the exact search", 10**9, stopped)
    assert why is not None and why.startswith("interrupted") and "out of time" not in why
    slow = common.too_slow("the exact search", 10**12, Budget(time_limit_s=60))
    assert slow is not None and slow.startswith("not started") and "60.0 s left" in slow


def test_a_decision_search_out_of_time_keeps_a_packing_that_fits() -> None:
    """exact at a roomy capacity found no packing in time (60,000 realistic buffers at
    twice their max live: 'no packing found', exit 1); the packing of the sweep over
    time, made before the search, fits, and is kept."""
    from alloc_helpers import challenging_file

    from memplan.io.buffers_csv import read_buffers_csv

    buffers = read_buffers_csv(challenging_file("D"))
    roomy = sum(b.size_bytes for b in buffers)
    allocator = make_allocator("exact", {"kernels": "compiled"})
    result = allocator.allocate(buffers, roomy, StopsAfter(8))
    assert result.status is Status.FEASIBLE and result.offsets_bytes is not None
    assert validate_packing(buffers, result.offsets_bytes, roomy) == []
    assert result.message.startswith(f"no packing within {roomy} B found before the time")
    assert "kept a packing by a best-fit sweep over time" in result.message
    assert result.algorithm == "exact:sweep" and result.stats["nodes"] > 0
    # At max live nothing but the search can fit: TIMEOUT without offsets, as before.
    tight = allocator.allocate(buffers, 986112, StopsAfter(8))
    assert tight.status is Status.TIMEOUT and tight.offsets_bytes is None


def test_cpsat_over_its_size_limit_keeps_the_sweeps_packing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from memplan.solvers.alloc import cpsat

    if not cpsat.ortools_installed():
        pytest.skip("needs the ilp extra")
    monkeypatch.setattr(cpsat, "MAX_BUFFERS", 10)
    buffers = random_buffers(random.Random(5), 50, horizon=20, max_size=50)
    result = make_allocator("cpsat").allocate(buffers, 10_000, Budget(time_limit_s=30))
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL)
    assert result.offsets_bytes is not None and result.algorithm == "cpsat:sweep"
    assert validate_packing(buffers, result.offsets_bytes, 10_000) == []
    assert result.message.startswith("CP-SAT model not built: 50 buffers, more than 10")
