"""The MiniMalloc CSV exchange format of allocation problems (PROBLEM.md section 6).

One buffer per row: ``id,lower,upper,size`` with the half-open step interval
``[lower, upper)``, plus optional ``alignment`` and ``offset`` (a fixed offset) columns.
A solution is the input plus an ``offset`` column.

Reading never raises anything but :class:`~memplan.errors.InputFormatError`, whose one
line names the file (and line) and what to fix: a binary or non-UTF-8 file, a file
without rows, an unknown column, a number outside the 64-bit range, sizes that add up
beyond it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

from memplan.dsa import Buffer, check_buffers, fixed_offset_clash
from memplan.errors import InputFormatError
from memplan.io.files import atomic_write_text

#: The columns a buffers CSV may have (an empty header cell, from a trailing comma, is
#: allowed too).
_COLUMNS = ("id", "lower", "upper", "size", "alignment", "offset")

#: An integer as MiniMalloc writes it: ASCII digits with an optional sign.
_INTEGER = re.compile(r"[+-]?[0-9]+")


def read_buffers_csv(path: str | os.PathLike[str]) -> list[Buffer]:
    """Read a MiniMalloc CSV (``id,lower,upper,size`` plus optional ``alignment,offset``).

    Raises:
        InputFormatError: naming the file and line, for a missing column, a non-integer,
            a negative size, ``lower >= upper``, a duplicate id, a fixed offset that
            breaks its alignment or overlaps another fixed buffer.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputFormatError(f"{name}: cannot read: {error.strerror or error}") from None
    return parse_buffers_csv(decode_text(data, name), name)


def decode_text(data: bytes, name: str) -> str:
    """Decode a CSV file's bytes as UTF-8 (a byte-order mark is dropped).

    Raises:
        InputFormatError: for a binary file (a NUL byte) or bytes that are not UTF-8.
    """
    expected = "expected a MiniMalloc CSV text file (id,lower,upper,size)"
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputFormatError(f"{name}: binary file (a NUL byte at offset {nul}); {expected}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise InputFormatError(
            f"{name}: not UTF-8 text (byte 0x{byte:02x} at offset {error.start}); {expected}"
        ) from None


def parse_buffers_csv(text: str, name: str = "<csv>") -> list[Buffer]:
    """Parse MiniMalloc CSV text; ``name`` is used in error messages."""
    # Universal newlines: \n, \r\n and the old Macintosh \r all end a line.
    reader = csv.reader(io.StringIO(text, newline=None))
    rows: list[list[str]] = []
    lines: list[int] = []  # the line each row starts on (a quoted field may span lines)
    lines_read = 0
    try:
        for row in reader:
            lines.append(lines_read + 1)
            rows.append(row)
            lines_read = reader.line_num
    except csv.Error as error:
        raise InputFormatError(f"{name}:{reader.line_num}: not CSV: {error}") from None
    first = 0  # index of the header row (blank lines may come before it)
    while first < len(rows) and not any(cell.strip() for cell in rows[first]):
        first += 1
    if first == len(rows):
        raise InputFormatError(f"{name}: empty file; expected a header 'id,lower,upper,size'")
    header = [cell.strip().lower() for cell in rows[first]]
    first_line = lines[first]
    missing = [c for c in ("id", "lower", "upper", "size") if c not in header]
    if missing:
        raise InputFormatError(
            f"{name}:{first_line}: missing column(s) {', '.join(missing)}; "
            "the header must name id,lower,upper,size (optional alignment,offset)"
        )
    unknown = [c for c in header if c and c not in _COLUMNS]
    if unknown:
        gaps = (
            " (MiniMalloc's lifetime gaps are not supported: remove the column, and each "
            "buffer is live for its whole [lower, upper))"
            if "gaps" in unknown
            else "; rename a misspelt one, or remove the column"
        )
        raise InputFormatError(
            f"{name}:{first_line}: unknown column(s) {', '.join(map(repr, unknown))}; the "
            f"columns are id,lower,upper,size and optionally alignment,offset{gaps}"
        )
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    if repeated:
        raise InputFormatError(
            f"{name}:{first_line}: column(s) {', '.join(repeated)} appear more than once in the "
            "header; name each column once"
        )
    col = {c: header.index(c) for c in _COLUMNS if c in header}
    buffers: list[Buffer] = []
    seen: dict[str, int] = {}
    id_col, width = col["id"], len(header)
    i_lower, i_upper, i_size = col["lower"], col["upper"], col["size"]
    i_align, i_offset = col.get("alignment"), col.get("offset")
    for line_no, row in zip(lines[first + 1 :], rows[first + 1 :], strict=True):
        ident = row[id_col].strip() if len(row) == width else ""
        if not ident and not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) != width:
            if any("\n" in cell for cell in row):
                raise InputFormatError(
                    f"{name}:{line_no}: a quoted field is not closed (it runs over the "
                    "following lines); add the closing double quote"
                )
            raise InputFormatError(
                f"{name}:{line_no}: {len(row)} fields, but the header has {width}"
            )
        if not ident:
            raise InputFormatError(f"{name}:{line_no}: empty id")
        if ident in seen:
            raise InputFormatError(
                f"{name}:{line_no}: duplicate id {ident!r} (first on line {seen[ident]})"
            )
        seen[ident] = line_no
        lower = _integer(row[i_lower], "lower", name, line_no)
        upper = _integer(row[i_upper], "upper", name, line_no)
        size = _integer(row[i_size], "size", name, line_no)
        alignment = None if i_align is None else _integer(row[i_align], "alignment", name, line_no)
        fixed = None if i_offset is None else _integer(row[i_offset], "offset", name, line_no)
        if lower is None or upper is None or size is None:
            raise AssertionError("the header check guarantees these columns")
        try:  # Buffer checks the fields (buffer_problem) and names the buffer
            buffers.append(
                Buffer(ident, lower, upper, size, 1 if alignment is None else alignment, fixed)
            )
        except InputFormatError as error:
            raise InputFormatError(f"{name}:{line_no}: {error}") from None
    if not buffers:
        raise InputFormatError(
            f"{name}: no buffers: the file has a header but no rows; nothing to allocate"
        )
    _check_fixed_overlaps(buffers, name, seen)
    check_buffers(buffers, name)
    return buffers


def _check_fixed_overlaps(buffers: list[Buffer], name: str, lines: dict[str, int]) -> None:
    """Raise InputFormatError, naming both rows, if two fixed-offset buffers share a byte
    at one step (:func:`memplan.dsa.fixed_offset_clash`)."""
    clash = fixed_offset_clash(buffers)
    if clash is not None:
        a, b = clash
        raise InputFormatError(
            f"{name}:{lines.get(str(b.id), 0)}: buffer {b.id!r} at fixed offset "
            f"{b.fixed_offset_bytes} overlaps buffer {a.id!r} (line {lines.get(str(a.id), 0)}) "
            f"at fixed offset {a.fixed_offset_bytes}: both are live at step "
            f"{max(a.lower, b.lower)}; move one of them"
        )


def _integer(cell: str, column: str, name: str, line_no: int) -> int | None:
    """The integer in one cell (None for an empty optional ``alignment`` or ``offset``).

    Raises:
        InputFormatError: naming the file, line and column, when it is not an integer.
    """
    text = cell.strip()
    # int() alone also takes 1_000 and non-ASCII digits; plain digits are checked first.
    if (text.isdigit() and text.isascii()) or _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than int() converts
            raise InputFormatError(
                f"{name}:{line_no}: {column} {text[:37] + '...'!r} has {len(text)} digits, "
                "outside the 64-bit range (magnitude below 2^63)"
            ) from None
    elif text == "" and column in ("alignment", "offset"):
        return None
    shown = text if len(text) <= 40 else text[:37] + "..."
    raise InputFormatError(f"{name}:{line_no}: {column} {shown!r} is not an integer")


def write_buffers_csv(
    path: str | os.PathLike[str], buffers: Sequence[Buffer], offsets: Sequence[int]
) -> None:
    """Write the MiniMalloc CSV of ``buffers`` with an ``offset`` column, atomically."""
    atomic_write_text(path, format_buffers_csv(buffers, offsets))


def format_buffers_csv(buffers: Sequence[Buffer], offsets: Sequence[int] | None) -> str:
    """Return MiniMalloc CSV text; ``alignment`` appears only if some buffer needs it."""
    aligned = any(b.alignment_bytes != 1 for b in buffers)
    header = ["id", "lower", "upper", "size"] + (["alignment"] if aligned else [])
    if offsets is not None:
        header.append("offset")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for i, b in enumerate(buffers):
        row: list[object] = [b.id, b.lower, b.upper, b.size_bytes]
        if aligned:
            row.append(b.alignment_bytes)
        if offsets is not None:
            row.append(offsets[i])
        writer.writerow(row)
    return out.getvalue()
