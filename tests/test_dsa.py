"""Tests of memplan.dsa: buffer checks, max live, the sweep validator, CSV, registry."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from alloc_helpers import DATA, overlaps_naive, random_buffers

from memplan.dsa import (
    AllocationStatus,
    Buffer,
    allocate,
    available_allocators,
    max_live_bytes,
    validate_packing,
)
from memplan.errors import ConfigError, InputFormatError
from memplan.io.buffers_csv import (
    format_buffers_csv,
    parse_buffers_csv,
    read_buffers_csv,
    write_buffers_csv,
)

EXAMPLE = DATA / "minimalloc" / "examples" / "input.12.csv"


# ----------------------------------------------------------------- Buffer and max live


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ((3, 3, 4), "lower must be < upper"),
        ((4, 3, 4), "lower must be < upper"),
        ((0, 3, -1), "negative size"),
    ],
)
def test_buffer_rejects_bad_fields(fields: tuple[int, int, int], fragment: str) -> None:
    with pytest.raises(InputFormatError, match=fragment):
        Buffer("x", *fields)


def test_buffer_rejects_bad_alignment_and_fixed_offset() -> None:
    with pytest.raises(InputFormatError, match="alignment 0"):
        Buffer(1, 0, 2, 4, alignment_bytes=0)
    with pytest.raises(InputFormatError, match="not a multiple of its alignment 8"):
        Buffer(1, 0, 2, 4, alignment_bytes=8, fixed_offset_bytes=4)
    with pytest.raises(InputFormatError, match="fixed offset -8"):
        Buffer(1, 0, 2, 4, fixed_offset_bytes=-8)


def test_max_live_is_half_open() -> None:
    # [0, 2) and [2, 4) are never live together.
    assert max_live_bytes([Buffer(0, 0, 2, 5), Buffer(1, 2, 4, 7)]) == 7
    assert max_live_bytes([Buffer(0, 0, 3, 5), Buffer(1, 2, 4, 7)]) == 12
    assert max_live_bytes([]) == 0


def test_max_live_matches_per_step_sum() -> None:
    rng = random.Random(3)
    for _ in range(50):
        buffers = random_buffers(rng, rng.randint(1, 12), horizon=10, max_size=9)
        per_step = max(
            sum(b.size_bytes for b in buffers if b.lower <= t < b.upper) for t in range(10)
        )
        assert max_live_bytes(buffers) == per_step


# ----------------------------------------------------------------- validator


def test_validator_accepts_a_good_packing_and_names_each_violation() -> None:
    buffers = [
        Buffer("a", 0, 4, 4),
        Buffer("b", 3, 6, 4, alignment_bytes=4),
        Buffer("c", 6, 9, 8, fixed_offset_bytes=0),
    ]
    assert validate_packing(buffers, [0, 4, 0], 8) == []
    (msg,) = validate_packing(buffers, [0, 6, 0], None)
    assert "offset 6 breaks its alignment 4" in msg
    # Overlap: a and b share bytes at step 3.
    errors = validate_packing(buffers, [0, 0, 0], 8)
    assert any("a and b overlap" in e and "step 3" in e for e in errors)
    # Capacity, fixed offset, negative offset, wrong count.
    assert any("exceeds the capacity 7" in e for e in validate_packing(buffers, [0, 4, 0], 7))
    assert any("fixed offset" in e for e in validate_packing(buffers, [0, 4, 8], 16))
    assert any("negative offset" in e for e in validate_packing(buffers, [-4, 4, 0], 16))
    assert validate_packing(buffers, [0, 4], 16) == ["2 offsets for 3 buffers"]


def test_validator_ignores_zero_size_buffers() -> None:
    buffers = [Buffer(0, 0, 4, 4), Buffer(1, 0, 4, 0)]
    assert validate_packing(buffers, [0, 2], 4) == []


def test_validator_agrees_with_all_pairs_on_random_packings() -> None:
    rng = random.Random(11)
    seen_bad = seen_good = 0
    for _ in range(400):
        buffers = random_buffers(rng, rng.randint(1, 9), horizon=8, max_size=4)
        offsets = [rng.randrange(0, 10) for _ in buffers]
        sweep_says_bad = bool(validate_packing(buffers, offsets))
        assert sweep_says_bad == overlaps_naive(buffers, offsets)
        seen_bad += sweep_says_bad
        seen_good += not sweep_says_bad
    assert seen_bad > 20 and seen_good > 20


# ----------------------------------------------------------------- CSV


def test_csv_round_trip(tmp_path: Path) -> None:
    buffers = [
        Buffer("b1", 0, 3, 4),
        Buffer("b2", 3, 9, 4, alignment_bytes=4),
        Buffer("b3", 0, 9, 4, fixed_offset_bytes=8),
    ]
    out = tmp_path / "out.csv"
    write_buffers_csv(out, buffers, [0, 0, 8])
    text = out.read_text()
    assert text.splitlines()[0] == "id,lower,upper,size,alignment,offset"
    again = read_buffers_csv(out)
    # The offset column is read back as fixed offsets; everything else is unchanged.
    assert [(b.id, b.lower, b.upper, b.size_bytes, b.alignment_bytes) for b in again] == [
        (b.id, b.lower, b.upper, b.size_bytes, b.alignment_bytes) for b in buffers
    ]
    assert [b.fixed_offset_bytes for b in again] == [0, 0, 8]
    assert format_buffers_csv(buffers[:1], None) == "id,lower,upper,size\nb1,0,3,4\n"


def test_reads_minimalloc_example() -> None:
    if not EXAMPLE.exists():
        pytest.skip(f"benchmark data not found at {EXAMPLE}")
    buffers = read_buffers_csv(EXAMPLE)
    assert [b.id for b in buffers] == ["b1", "b2", "b3", "b4", "b5"]
    assert max_live_bytes(buffers) == 12


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("id,lower,size\n1,0,4\n", 1, "missing column(s) upper"),
        ("id,lower,upper,size\n1,0,4,x\n", 2, "size 'x' is not an integer"),
        ("id,lower,upper,size\n1,0,4,4\n2,0,4,-4\n", 3, "negative size -4"),
        ("id,lower,upper,size\n1,4,4,4\n", 2, "lower must be < upper"),
        ("id,lower,upper,size\n1,0,4,4\n1,0,4,4\n", 3, "duplicate id '1' (first on line 2)"),
        ("id,lower,upper,size\n1,0,4\n", 2, "3 fields, but the header has 4"),
        ("id,lower,upper,size,alignment,offset\n1,0,4,4,8,4\n", 2, "not a multiple"),
        ("id,lower,upper,size,offset\n1,0,4,4,0\n2,2,6,4,2\n", 3, "overlaps buffer '1'"),
        ("id,lower,upper,size\n1,0,4.5,4\n", 2, "upper '4.5' is not an integer"),
    ],
)
def test_csv_bad_input_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputFormatError) as info:
        read_buffers_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert fragment in message
    assert "\n" not in message


def test_csv_empty_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="empty file"):
        parse_buffers_csv("", "e.csv")
    with pytest.raises(InputFormatError, match="cannot read"):
        read_buffers_csv(tmp_path / "missing.csv")


def test_csv_optional_columns_may_be_blank() -> None:
    (b,) = parse_buffers_csv("id,lower,upper,size,alignment,offset\nx,0,2,4,,\n")
    assert b.alignment_bytes == 1 and b.fixed_offset_bytes is None


# ----------------------------------------------------------------- registry


def test_registry_lists_allocators_and_rejects_unknown_names() -> None:
    names = available_allocators()
    for name in (
        "auto",
        "exact",
        "portfolio",
        "greedy-by-size",
        "best-fit-size",
        "best-fit-duration",
        "online-best-fit",
        "first-fit-decreasing",
    ):
        assert name in names
    with pytest.raises(ConfigError, match=r"unknown allocator 'nope'.*portfolio"):
        allocate([Buffer(0, 0, 1, 1)], 4, algorithm="nope")
    with pytest.raises(ConfigError, match="capacity -1"):
        allocate([Buffer(0, 0, 1, 1)], -1)
    with pytest.raises(ConfigError, match="time limit"):
        allocate([Buffer(0, 0, 1, 1)], 4, time_limit_s=float("nan"))


def test_allocate_auto_packs_validly_and_reports_infeasible() -> None:
    rng = random.Random(5)
    for _ in range(20):
        buffers = random_buffers(rng, 8, horizon=6, max_size=5, alignments=(1, 2))
        live = max_live_bytes(buffers)
        result = allocate(buffers, None, time_limit_s=5)
        assert result.status is AllocationStatus.SOLVED
        assert result.offsets_bytes is not None and result.height_bytes is not None
        assert validate_packing(buffers, result.offsets_bytes) == []
        assert result.height_bytes >= live == result.max_live_bytes
        fit = allocate(buffers, result.height_bytes, time_limit_s=5)
        assert fit.status is AllocationStatus.SOLVED
        assert fit.offsets_bytes is not None
        assert validate_packing(buffers, fit.offsets_bytes, result.height_bytes) == []
        short = allocate(buffers, live - 1, time_limit_s=5)
        assert short.status is AllocationStatus.INFEASIBLE


def test_allocate_auto_minimize_proves_optimality_on_small_inputs() -> None:
    rng = random.Random(8)
    for _ in range(10):
        buffers = random_buffers(rng, 7, horizon=6, max_size=6)
        result = allocate(buffers, None, minimize=True, time_limit_s=10)
        assert result.proven_optimal
        assert result.algorithm.startswith("auto:")


def test_empty_input() -> None:
    result = allocate([], 0)
    assert result.status is AllocationStatus.SOLVED and result.offsets_bytes == ()


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("id,lower,upper,size\n1,0,2,8\n".encode("utf-8-sig"))
    (b,) = read_buffers_csv(path)
    assert (b.id, b.size_bytes) == ("1", 8)


def test_core_module_imports_no_solver_and_no_jit() -> None:
    import subprocess
    import sys

    code = (
        "import sys, memplan.dsa, memplan.cli.allocate; "
        "bad = [m for m in sys.modules if m.startswith(('memplan.solvers', 'numba'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_csv_zero_alignment_and_leading_blank_lines() -> None:
    with pytest.raises(InputFormatError, match=r"^a\.csv:2: buffer 'x': alignment 0"):
        parse_buffers_csv("id,lower,upper,size,alignment\nx,0,2,4,0\n", "a.csv")
    with pytest.raises(InputFormatError, match=r"^b\.csv:4: size 'y'"):
        parse_buffers_csv("\n\nid,lower,upper,size\nx,0,2,y\n", "b.csv")
