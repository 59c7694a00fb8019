"""The benchmark results file: one JSON line per finished cell, appended and fsynced.

Only the bench's parent process writes it, one complete line per cell::

    {"key": "3f0c...", "workload": "darts_v2_cifar", "budget": "MR", "solver": "greedy",
     "status": "feasible", "non_compulsory_bytes": 1234, ...}\n

A line cut short by a crash (or ``kill -9``) is skipped on reading, and the next write
starts on a new line. A write the disk refuses (full, quota) is undone: the file is cut
back to the end of the last whole row, and the error names the file. The last row of
a key wins (``--retry-failed`` appends new rows).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, OutputFileError
from memplan.io.files import check_output_path
from memplan.io.planfile import jsonable

if TYPE_CHECKING:
    from memplan.bench.cells import CellSpec

#: Name of the results file inside the output folder.
RESULTS_NAME = "results.jsonl"


#: Fields every row has, as text: the reports group and label rows by them.
_TEXT_FIELDS = ("key", "workload", "scope", "budget", "solver", "status")
#: Fields the reports read as a whole number of bytes when present (or None).
_BYTES_FIELDS = (
    "non_compulsory_bytes",
    "lower_bound_bytes",
    "capacity_bytes",
    "mr_bytes",
    "mp_bytes",
    "worker_maxrss_bytes",
)
#: Fields the reports read as a number of seconds when present (or None).
_SECONDS_FIELDS = ("solve_wall_s",)


def row_problem(row: object) -> str | None:
    """Why a parsed line is not a result row the reports can read, or None.

    A line cut short by a crash does not parse at all; this catches the rest: a line of
    another file appended by hand (``cat a.jsonl b.jsonl``), a row edited by hand.
    """
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    for name in _TEXT_FIELDS:
        if not isinstance(row.get(name), str):
            return f"no {name!r} text" if name not in row else f"{name!r} is not text"
    for name in _BYTES_FIELDS:
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{name!r} is {value!r}, not a whole number of bytes"
    for name in _SECONDS_FIELDS:
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{name!r} is {value!r}, not a number of seconds"
    if not isinstance(row.get("options") or {}, dict):
        return "'options' is not an object"
    return None


def read_rows(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """All rows of a results file (objects with a ``key``), and how many lines were
    unreadable (cut by a crash). The reports check the rows further:
    :func:`load_results_checked`."""
    numbered, problems = _read_lines(path)
    return [row for _, row in numbered], len(problems)


def _read_lines(
    path: str | os.PathLike[str],
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The objects with a ``key`` of a results file with their line numbers, and one
    line per other line."""
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    if not Path(path).exists():
        return rows, problems
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"line {number}: not JSON (cut short by a crash?)")
                continue
            if isinstance(row, dict) and isinstance(row.get("key"), str):
                rows.append((number, row))
            else:
                problems.append(f"line {number}: not a result row (no 'key' text)")
    return rows, problems


def latest_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of every key, in the order those last rows were written."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.pop(row["key"], None)
        latest[row["key"]] = dict(row)
    return latest


class ResultsWriter:
    """Appends rows to a JSON-lines file, one whole line per row, each fsynced when written.

    A row is written with one ``os.write`` of its whole line (repeated only if the kernel
    takes part of it); if the disk refuses any of it (full, quota, I/O error), the file is
    cut back to its length before the row, so it never ends in a partial record, and an
    :class:`~memplan.errors.OutputFileError` names the file and the OS error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # The same rules as every output (no devices, FIFOs or read-only files), checked
        # before any cell runs; rows are appended, so the file is not replaced.
        target = check_output_path(path, "results file", create_folders=True)
        assert target.path is not None  # standard output is not allowed here
        self.path = target.path
        self._lock = threading.Lock()
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as error:
            raise self._error("cannot open", error) from None
        size = os.fstat(self._fd).st_size
        if size > 0 and os.pread(self._fd, 1, size - 1) != b"\n":
            # a line cut short by a crash (kill -9): end it, so the next row starts a line
            self._write_whole(b"\n", "cannot write to")

    def _error(self, doing: str, error: OSError) -> OutputFileError:
        return OutputFileError(
            f"results file {self.path}: {doing} it ({error.strerror or error}); the rows "
            "written before are kept: free space (or fix the error) and run the same "
            "command again to resume"
        )

    def _write_whole(self, data: bytes, doing: str) -> None:
        """Append ``data`` and fsync it; on failure cut the file back and raise."""
        assert self._fd is not None, "the results file is closed"
        fd = self._fd
        before = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                count = os.write(fd, view)
                if count <= 0:  # pragma: no cover - write(2) returns >0 or raises
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                view = view[count:]
            os.fsync(fd)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
                os.fsync(fd)
            raise self._error(doing, error) from None

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row as one whole line, then fsync it.

        Raises:
            OutputFileError: the disk refused the line (the file is left as it was).
        """
        line = json.dumps(jsonable(row), sort_keys=True) + "\n"
        with self._lock:
            self._write_whole(line.encode("utf-8"), "cannot write a result to")

    def close(self) -> None:
        """Close the file (every row is already on disk)."""
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pending_cells(
    cells: Sequence[CellSpec], done: Mapping[str, Mapping[str, Any]], retry_failed: bool = False
) -> list[CellSpec]:
    """Cells whose key has no row yet (or whose row is an error/kill, with ``retry_failed``)."""
    result = []
    for cell in cells:
        row = done.get(cell.key)
        if row is None or (retry_failed and (row.get("status") == "error" or row.get("killed"))):
            result.append(cell)
    return result


def load_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The latest row of every cell in ``out_dir``'s results file.

    Raises:
        ConfigError: ``out_dir`` is a file, or the folder has no results file.
    """
    return load_results_checked(out_dir)[0]


def load_results_checked(
    out_dir: str | os.PathLike[str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The latest row of every cell in ``out_dir``'s results file, and one line per
    line left out: not JSON, or not a row the reports can read (:func:`row_problem`).

    Raises:
        ConfigError: ``out_dir`` is a file, or the folder has no results file.
    """
    if Path(out_dir).is_file():
        raise ConfigError(
            f"{out_dir} is a file; give the folder of a `memplan bench` run (the -o DIR "
            f"that holds {RESULTS_NAME})"
        )
    path = Path(out_dir) / RESULTS_NAME
    if not path.exists():
        raise ConfigError(f"{path}: no results file; run `memplan bench -o {out_dir}` first")
    numbered, problems = _read_lines(path)
    checked = []
    for number, row in numbered:
        problem = row_problem(row)
        if problem is None:
            checked.append(row)
        else:
            problems.append(f"line {number}: not a result row ({problem})")
    problems.sort(key=lambda line: int(line.split()[1].rstrip(":")))  # in file order
    return list(latest_rows(checked).values()), problems
