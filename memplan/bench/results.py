"""The benchmark results file: one JSON line per finished cell, appended and fsynced.

Only the bench's parent process writes it, one complete line per cell::

    {"key": "3f0c...", "workload": "darts_v2_cifar", "budget": "MR", "solver": "greedy",
     "status": "feasible", "non_compulsory_bytes": 1234, ...}\n

A line cut short by a crash (or ``kill -9``) is skipped on reading, and the next write
starts on a new line. The last row of a key wins (``--retry-failed`` appends new rows).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError
from memplan.io.files import check_output_path
from memplan.io.planfile import jsonable

if TYPE_CHECKING:
    from memplan.bench.cells import CellSpec

#: Name of the results file inside the output folder.
RESULTS_NAME = "results.jsonl"


def read_rows(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """All rows of a results file, and how many lines were unreadable (cut by a crash)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    if not Path(path).exists():
        return rows, 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def latest_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of every key, in the order those last rows were written."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest.pop(row["key"], None)
        latest[row["key"]] = dict(row)
    return latest


class ResultsWriter:
    """Appends rows to a JSON-lines file; each line is flushed and fsynced when written."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # The same rules as every output (no devices, FIFOs or read-only files), checked
        # before any cell runs; rows are appended, so the file is not replaced.
        target = check_output_path(path, "results file", create_folders=True)
        assert target.path is not None  # standard output is not allowed here
        self.path = target.path
        self._lock = threading.Lock()
        self._handle = open(self.path, "a+b")  # noqa: SIM115 - closed by close()
        self._handle.seek(0, os.SEEK_END)
        if self._handle.tell() > 0:
            self._handle.seek(-1, os.SEEK_END)
            if self._handle.read(1) != b"\n":  # a line cut short by a crash: end it
                self._handle.write(b"\n")
        self._handle.seek(0, os.SEEK_END)

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row as one line, then flush and fsync."""
        line = json.dumps(row, sort_keys=True, default=jsonable) + "\n"
        with self._lock:
            self._handle.write(line.encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

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
        ConfigError: the folder has no results file.
    """
    path = Path(out_dir) / RESULTS_NAME
    if not path.exists():
        raise ConfigError(f"{path}: no results file; run `memplan bench -o {out_dir}` first")
    rows, _ = read_rows(path)
    return list(latest_rows(rows).values())
