"""Tests of memplan.dsa: buffer checks, max live, the sweep validator, results, CSV, registry."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from alloc_helpers import DATA, overlaps_naive, random_buffers

from memplan.dsa import (
    INT64_MAX,
    Buffer,
    allocate,
    available_allocators,
    check_buffers,
    make_allocation,
    max_live_bytes,
    stacked_height_bytes,
    validate_packing,
)
from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.io.buffers_csv import (
    format_buffers_csv,
    parse_buffers_csv,
    read_buffers_csv,
    write_buffers_csv,
)
from memplan.solver import Budget, Status

EXAMPLE = DATA / "minimalloc" / "examples" / "input.12.csv"
HUGE = 10**23


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


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"size_bytes": 10.5}, "size must be a whole number, got 10.5 (float)"),
        ({"lower": 0.5}, "lower must be a whole number, got 0.5"),
        ({"lower": True}, "lower must be a whole number, got True (bool)"),
        ({"upper": "2"}, "upper must be a whole number, got '2' (str)"),
        ({"alignment_bytes": None}, "alignment must be a whole number, got None"),
        ({"fixed_offset_bytes": 2.0}, "fixed offset must be a whole number, got 2.0"),
    ],
)
def test_buffer_fields_must_be_whole_numbers(kwargs: dict[str, object], fragment: str) -> None:
    """A float size was accepted, and every allocator then failed with 'returned an
    invalid packing'; a string or None was a bare TypeError."""
    fields: dict[str, object] = {"id": "x", "lower": 0, "upper": 2, "size_bytes": 10, **kwargs}
    with pytest.raises(InputFormatError, match=re.escape(f"buffer 'x': {fragment}")):
        Buffer(**fields)  # type: ignore[arg-type]


def test_buffer_takes_numpy_integers_as_ints() -> None:
    import numpy as np

    b = Buffer("x", np.int64(1), np.int32(3), np.uint16(8), np.int8(4), np.int64(4))
    fields = (b.lower, b.upper, b.size_bytes, b.alignment_bytes, b.fixed_offset_bytes)
    assert fields == (1, 3, 8, 4, 4) and all(type(v) is int for v in fields)


def test_allocate_refuses_overlapping_fixed_offsets_naming_both() -> None:
    """Two fixed buffers sharing bytes at one step: no packing exists. The API raised
    InvalidPlanError blaming the allocator ('returned an invalid packing')."""
    buffers = [
        Buffer("a", 0, 2, 10, fixed_offset_bytes=0),
        Buffer("b", 1, 3, 10, fixed_offset_bytes=5),
    ]
    for algorithm in ("auto", "exact", "portfolio", "greedy-by-size"):
        with pytest.raises(
            InputFormatError, match="buffer 'b' at fixed offset 5 overlaps buffer 'a'"
        ):
            allocate(buffers, 20, algorithm=algorithm)


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


def _with_options(name: str, **options: str) -> object:
    from memplan.dsa import make_allocator

    return make_allocator(name, options)


def test_registry_lists_allocators_and_rejects_unknown_names() -> None:
    """Allocators are plug-ins of the one registry, auto among them."""
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
    with pytest.raises(ConfigError, match="within the 64-bit range"):
        allocate([Buffer(0, 0, 1, 1)], 10**29)
    with pytest.raises(ConfigError, match="option kernels='gpu'"):
        allocate([Buffer(0, 0, 1, 1)], 4, algorithm=_with_options("exact", kernels="gpu"))


def test_allocate_auto_packs_validly_and_reports_infeasible() -> None:
    rng = random.Random(5)
    for _ in range(20):
        buffers = random_buffers(rng, 8, horizon=6, max_size=5, alignments=(1, 2))
        live = max_live_bytes(buffers)
        result = allocate(buffers, None, budget=Budget(time_limit_s=5))
        assert result.status in (Status.FEASIBLE, Status.OPTIMAL, Status.TIMEOUT)
        assert result.fits
        assert result.offsets_bytes is not None and result.height_bytes is not None
        assert validate_packing(buffers, result.offsets_bytes) == []
        assert result.height_bytes >= live == result.max_live_bytes
        fit = allocate(buffers, result.height_bytes, budget=Budget(time_limit_s=5))
        assert fit.status in (Status.FEASIBLE, Status.OPTIMAL)
        assert fit.offsets_bytes is not None
        assert validate_packing(buffers, fit.offsets_bytes, result.height_bytes) == []
        short = allocate(buffers, live - 1, budget=Budget(time_limit_s=5))
        assert short.status is Status.INFEASIBLE
        assert short.lower_bound_bytes == live


def test_allocate_auto_minimize_proves_optimality_on_small_inputs() -> None:
    rng = random.Random(8)
    for _ in range(10):
        buffers = random_buffers(rng, 7, horizon=6, max_size=6)
        result = allocate(buffers, None, minimize=True, budget=Budget(time_limit_s=10))
        assert result.status is Status.OPTIMAL
        assert result.height_bytes == result.lower_bound_bytes
        assert result.algorithm.startswith("auto:")


def test_empty_input() -> None:
    result = allocate([], 0)
    assert result.status is Status.OPTIMAL and result.offsets_bytes == ()
    assert result.height_bytes == 0 and result.fits


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("id,lower,upper,size\n1,0,2,8\n".encode("utf-8-sig"))
    (b,) = read_buffers_csv(path)
    assert (b.id, b.size_bytes) == ("1", 8)


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_csv_line_endings(tmp_path: Path, newline: str) -> None:
    """Old Macintosh line endings (\r alone) were refused with Python's 'new-line
    character seen in unquoted field - do you need to open the file in universal-newline
    mode?'."""
    path = tmp_path / "lines.csv"
    path.write_bytes(newline.join(["id,lower,upper,size", "a,0,2,8", "", "b,1,3,4", ""]).encode())
    assert [(b.id, b.lower, b.size_bytes) for b in read_buffers_csv(path)] == [
        ("a", 0, 8),
        ("b", 1, 4),
    ]


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


# ----------------------------------------------------------------- 64-bit range


def test_buffer_fields_must_fit_64_bits() -> None:
    with pytest.raises(InputFormatError, match="size 100000000000000000000000 is outside"):
        Buffer("x", 0, 1, HUGE)
    with pytest.raises(InputFormatError, match=r"upper .* is outside"):
        Buffer("x", 0, 1 << 63, 4)
    with pytest.raises(InputFormatError, match="longer than 2\\^63-1 steps"):
        Buffer("x", -(1 << 62) - 1, 1 << 62, 4)
    with pytest.raises(InputFormatError, match="ends beyond 2\\^63-1"):
        Buffer("x", 0, 1, 1 << 62, fixed_offset_bytes=(1 << 62) + (1 << 61))


def test_sums_beyond_64_bits_are_one_clear_error() -> None:
    """Two overlapping 2^62-byte buffers: max live would wrap to -2^63 in int64."""
    buffers = [Buffer("a", 0, 2, 1 << 62), Buffer("b", 1, 3, 1 << 62)]
    assert stacked_height_bytes(buffers) == 1 << 63
    with pytest.raises(InputFormatError, match="beyond the 64-bit range") as info:
        check_buffers(buffers)
    assert "buffer 'a'" in str(info.value) and "\n" not in str(info.value)
    for name in available_allocators():
        with pytest.raises(InputFormatError, match="beyond the 64-bit range"):
            allocate(buffers, None, algorithm=name)
    # Just inside the range everything works, and nothing overflows.
    fine = [Buffer("a", 0, 2, 1 << 61), Buffer("b", 1, 3, 1 << 61)]
    result = allocate(fine, None, minimize=True)
    assert result.status is Status.OPTIMAL and result.height_bytes == 1 << 62


def test_a_capacity_above_every_packing_is_clamped_not_overflowed() -> None:
    buffers = [Buffer("a", 0, 2, 8), Buffer("b", 1, 3, 8)]
    for name in available_allocators():
        result = allocate(buffers, INT64_MAX, algorithm=name)
        assert result.fits and result.capacity_bytes == INT64_MAX, name


# ----------------------------------------------------------------- results


def test_make_allocation_upgrades_to_optimal_and_catches_allocator_bugs() -> None:
    from memplan.solvers.alloc.greedy import Portfolio

    allocator = Portfolio()
    buffers = [Buffer("a", 0, 2, 4), Buffer("b", 1, 3, 4)]
    budget = Budget(time_limit_s=1)
    done = make_allocation(allocator, buffers, 8, Status.FEASIBLE, [0, 4], budget, max_live=8)
    assert done.status is Status.OPTIMAL and done.lower_bound_bytes == 8
    with pytest.raises(InvalidPlanError, match="invalid packing"):
        make_allocation(allocator, buffers, 8, Status.FEASIBLE, [0, 2], budget, max_live=8)
    with pytest.raises(InvalidPlanError, match="without a packing that fits"):
        make_allocation(allocator, buffers, 7, Status.FEASIBLE, [0, 4], budget, max_live=8)
    with pytest.raises(InvalidPlanError, match="infeasible, yet a packing fits"):
        make_allocation(allocator, buffers, 8, Status.INFEASIBLE, [0, 4], budget, max_live=8)
    with pytest.raises(InvalidPlanError, match="lower bound 9 B above"):
        make_allocation(
            allocator, buffers, 8, Status.FEASIBLE, [0, 4], budget, max_live=8, lower_bound_bytes=9
        )
    above = make_allocation(allocator, buffers, 7, Status.TIMEOUT, [0, 4], budget, max_live=8)
    assert above.status is Status.TIMEOUT and not above.fits and above.ratio == 1.0


# ----------------------------------------------------------------- hostile CSV files


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"id,lower,upper,size\n1,0,2,\xff\n", "not UTF-8 text (byte 0xff at offset 26)"),
        (b"\x7fELF\x02\x01\x01\x00\x00", "binary file (a NUL byte at offset 7)"),
        (b"id,lower,upper,size\n", "no buffers: the file has a header but no rows"),
        (b"id,lower,upper,size\nx,0,2,100000000000000000000000\n", "size 1000"),
        (
            b"id,lower,upper,size\na,0,2,4611686018427387904\nb,1,3,4611686018427387904\n",
            "sizes add up to 9223372036854775808 bytes",
        ),
        (b"id,lower,upper,size\nx,0,2," + b"9" * 5000 + b"\n", "size '9999"),
    ],
)
def test_hostile_csv_files_are_one_line_errors(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(data)
    with pytest.raises(InputFormatError) as info:
        read_buffers_csv(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert fragment in message
    assert "\n" not in message and len(message) < 300


@pytest.mark.parametrize(
    ("column", "fragment"),
    [
        ("aligment", "unknown column(s) 'aligment'; the columns are id,lower,upper,size"),
        (
            "gaps",
            "unknown column(s) 'gaps'; the columns are id,lower,upper,size and optionally "
            "alignment,offset (MiniMalloc's lifetime gaps are not supported",
        ),
    ],
)
def test_csv_unknown_column_is_an_error(column: str, fragment: str) -> None:
    """A misspelt column was ignored: 'aligment' 64 packed the buffers at offsets that
    are not multiples of 64, and said nothing."""
    text = f"id,lower,upper,size,{column}\na,0,2,10,64\nb,1,3,10,64\n"
    with pytest.raises(InputFormatError, match=re.escape(f"f.csv:1: {fragment}")):
        parse_buffers_csv(text, "f.csv")
    trailing = parse_buffers_csv("id,lower,upper,size,\na,0,2,10,\n", "t.csv")  # a trailing comma
    assert [b.size_bytes for b in trailing] == [10]


def test_csv_quotes_and_line_numbers() -> None:
    """An unclosed quote said '1 fields, but the header has 4'; after a quoted field over
    two lines, every later line number was one short."""
    with pytest.raises(InputFormatError, match=r"q.csv:2: a quoted field is not closed"):
        parse_buffers_csv('id,lower,upper,size\n"a,0,2,10\nb,0,2,10\n', "q.csv")
    with pytest.raises(InputFormatError, match=r"m.csv:4: size 'x' is not an integer"):
        parse_buffers_csv('id,lower,upper,size\n"a\nb",0,2,10\nc,0,2,x\n', "m.csv")
