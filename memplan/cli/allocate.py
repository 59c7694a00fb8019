"""``memplan allocate``: place the buffers of a MiniMalloc CSV in a scratchpad.

::

    memplan allocate buffers.csv --capacity 1048576 [-o out.csv|-] [--json]
                     [--time-limit SECONDS|none]

Input: MiniMalloc's CSV (``id,lower,upper,size`` with half-open lifetimes
``[lower, upper)`` in steps and sizes in bytes; optional ``alignment`` and ``offset``
columns). Output (``-o``): the same rows plus the chosen ``offset``, to a file checked
before the search (:func:`memplan.io.files.check_output_path`, as ``optimize`` does) or
to standard output (``-o -``; the table then goes to standard error). Every packing is
checked by :func:`memplan.dsa.validate_packing` (in :func:`memplan.dsa.make_allocation`)
before it is printed or written. Exit codes: 0 packed (within the capacity), 1 infeasible
or out of time without a packing that fits, 2 bad input (one line, no traceback), 130
aborted. Ctrl-C stops the search and keeps its best packing; a second Ctrl-C aborts.
SIGTERM stops it as the first Ctrl-C does.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from memplan import cli
from memplan.cli import EXIT_NO_PLAN, EXIT_OK
from memplan.cli.argparser import input_file
from memplan.cli.common import (
    checked_seed,
    console,
    err_console,
    print_json,
    time_limit_from_text,
)
from memplan.errors import ConfigError, OutputFileError
from memplan.options import SEED_MAX

if TYPE_CHECKING:
    from memplan.io.files import OutputTarget

#: The wall-clock limit when ``--time-limit`` is not given, in seconds.
DEFAULT_TIME_LIMIT_S = 60.0
#: Seconds of ``--time-limit`` kept back for what follows the search: printing or writing
#: the result and the interpreter's exit with numba loaded (0.3-0.4 s: a 10 s limit
#: ended at 10.1-10.4 s of wall time). At most 5 % of the limit.
WRAP_UP_S = 0.4
#: ``cpsat_share`` of the ``auto`` allocator in this command (the solvers' packings keep 0).
AUTO_CPSAT_SHARE = 0.5

_ALGORITHMS = (
    "auto (greedy portfolio, then the exact search if needed, then CP-SAT with the ilp "
    "extra), exact (MiniMalloc-style search), cpsat (CP-SAT no-overlap model; ilp extra), "
    "portfolio (best of all greedy variants), greedy-by-size (TFLite), "
    "best-fit-size and best-fit-duration (XLA), online-best-fit (ONNX Runtime), "
    "first-fit-decreasing, lowest-offset-first"
)


def add_parser(subparsers: Any) -> None:
    """Register ``allocate``."""
    parser = subparsers.add_parser(
        "allocate",
        help="choose scratchpad offsets for buffers with fixed lifetimes (MiniMalloc CSV)",
        description=(
            "Dynamic storage allocation: give every buffer of CSV an offset so that buffers "
            "live at the same step never share a byte, and everything fits below the "
            "capacity. CSV is MiniMalloc's format: id,lower,upper,size (lifetimes are "
            "half-open [lower, upper) in steps, sizes in bytes), optional alignment (bytes) "
            "and offset (a fixed offset in bytes). Prints the height (highest byte used), "
            "max live (the lower bound: most bytes live at one step), their ratio and the "
            "time. Exit codes: 0 packed, 1 infeasible or timed out without a packing that "
            "fits, 2 bad input. Ctrl-C stops the search and keeps its best packing."
        ),
    )
    parser.add_argument(
        "csv",
        type=input_file("the buffers CSV"),
        help="input CSV: id,lower,upper,size[,alignment][,offset]",
    )
    parser.add_argument(
        "--capacity",
        metavar="BYTES",
        default=None,
        help=(
            "scratchpad size in bytes (accepts units: 1048576, 1MiB, 512KiB); without it, "
            "the height is minimised"
        ),
    )
    parser.add_argument(
        "--alignment",
        metavar="BYTES",
        type=int,
        default=1,
        help=(
            "every offset must also be a multiple of this many bytes (combined with each "
            "row's own alignment); default 1"
        ),
    )
    parser.add_argument(
        "--time-limit",
        dest="time_limit",
        metavar="SECONDS",
        default=None,
        help=(
            "wall-clock limit in seconds of the whole command, its start-up and reading the "
            "CSV included "
            f"(default {DEFAULT_TIME_LIMIT_S:g}); 'none' for no limit: the search runs "
            "until it is done (proven, or a packing that fits found), or Ctrl-C stops it "
            "and keeps its best packing"
        ),
    )
    parser.add_argument(
        "--algorithm",
        default="auto",
        metavar="NAME",
        help=f"allocator to run: {_ALGORITHMS}; default auto",
    )
    parser.add_argument(
        "--minimize",
        action="store_true",
        help=(
            "look for the lowest height (at most the capacity, if given) and prove it "
            "minimal if time allows, instead of stopping at the first packing that fits"
        ),
    )
    parser.add_argument(
        "--seed",
        default="0",
        metavar="N",
        help=f"seed of the randomised steps (same seed, same offsets), 0 to {SEED_MAX}; default 0",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "an allocator option (repeat the flag for several): kernels=auto|python|compiled "
            "(plain Python for small inputs, numba for the rest; the same offsets either "
            "way), memory_limit_bytes=N (working memory the allocator may plan to use; "
            "default 0 = half of what is free), node_limit=N (search nodes the exact "
            "search may expand; default 0 = no limit; unlike --time-limit the same on any "
            f"machine), cpsat_share=F (auto only: share 0 to 1 of the time left after the "
            f"greedy portfolio that CP-SAT gets when the exact search has not packed, with "
            f"the ilp extra installed; default {AUTO_CPSAT_SHARE}, 0 = never)"
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT.csv",
        default=None,
        help=(
            "write the input rows plus an offset column (bytes) here, atomically; '-' for "
            "standard output (the table then goes to standard error). Checked before the "
            "search: a folder, a missing folder or a read-only file is refused at once"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON (for tools)")
    parser.set_defaults(func=run)


def search_limit_s(time_limit_s: float | None) -> float | None:
    """The budget of the allocation within ``--time-limit``: the limit less
    :data:`WRAP_UP_S` (at most 5 % of it), kept for what follows the search."""
    if time_limit_s is None:
        return None
    return max(time_limit_s - min(WRAP_UP_S, 0.05 * time_limit_s), 0.0)


def _with_alignment(buffers: list[Any], alignment: int, name: str) -> list[Any]:
    """Return ``buffers`` whose offsets must also be multiples of ``alignment`` bytes
    (``name``: the CSV file, for messages)."""
    from memplan.dsa import Buffer
    from memplan.errors import InputFormatError

    if alignment < 1:
        raise ConfigError(f"--alignment {alignment}: must be a positive number of bytes")
    if alignment == 1:
        return buffers
    out = []
    for b in buffers:
        combined = math.lcm(b.alignment_bytes, alignment)
        try:
            out.append(Buffer(b.id, b.lower, b.upper, b.size_bytes, combined, b.fixed_offset_bytes))
        except InputFormatError as error:
            raise InputFormatError(f"{name}: with --alignment {alignment}: {error}") from None
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``memplan allocate``; return the exit code."""
    from memplan.cli.plancommon import StopOnSigint, sigint_ignored, sigterm_stops
    from memplan.dsa import INT64_MAX, allocate, make_allocator
    from memplan.io.buffers_csv import read_buffers_csv
    from memplan.options import parse_option_pairs
    from memplan.solver import Budget
    from memplan.units import parse_bytes

    target = _check_output(args)  # before anything slow: no search for an unwritable file
    capacity = None
    if args.capacity is not None:
        text = args.capacity.strip()
        # Exact for whole byte counts (ASCII digits only); the range is checked below.
        capacity = parse_bytes(text, "--capacity", max_bytes=None)
    if capacity is not None and capacity > INT64_MAX:
        raise ConfigError(
            f"--capacity {args.capacity}: beyond the 64-bit range "
            f"(at most 2^63-1 = {INT64_MAX} bytes)"
        )
    time_limit_s = time_limit_from_text(args.time_limit, DEFAULT_TIME_LIMIT_S, allow_zero=True)
    # The limit covers the whole command: its start-up (the imports take 1 to 3 s on a
    # loaded machine; the command ran that much past the limit) and reading the CSV.
    started = cli.launched_at_s if cli.launched_at_s is not None else time.monotonic()
    budget = Budget(time_limit_s=search_limit_s(time_limit_s), started_at_s=started)
    options = {
        "seed": checked_seed(args.seed),
        "minimize": args.minimize or capacity is None,
        **parse_option_pairs(args.option),
    }
    if args.algorithm == "auto":
        # CP-SAT after the exact search, where it is installed (see solvers/alloc/auto.py)
        options.setdefault("cpsat_share", AUTO_CPSAT_SHARE)
    allocator = make_allocator(args.algorithm, options)
    buffers = _with_alignment(read_buffers_csv(args.csv), args.alignment, str(args.csv))
    notice = "memplan allocate: stopping; Ctrl-C again to abort"
    term_notice = "memplan allocate: SIGTERM: stopping, keeping the best packing so far"
    # SIGTERM (timeout, kill, a job scheduler) stops the search as Ctrl-C does and never
    # aborts, so the packing found is still written; it killed the run with nothing written.
    terminated = threading.Event()
    with sigterm_stops(budget.stop_event, term_notice, received=terminated):
        with StopOnSigint(budget.stop_event, notice):
            result = allocate(buffers, capacity, algorithm=allocator, budget=budget)
        with sigint_ignored():  # the search is over: write and report it whole
            written, write_error = _write_output(target, result, buffers)
            by = "SIGTERM" if terminated.is_set() else "Ctrl-C"
            stopped = f"stopped by {by}" if budget.interrupted() else ""
            ended = stopped or ("ran out" if budget.should_stop() else "")
            _report(args, result, len(buffers), ended=ended, written=written)
    if write_error is not None:  # after the report: the packing found is not lost
        raise write_error
    return EXIT_OK if result.fits else EXIT_NO_PLAN


def _check_output(args: argparse.Namespace) -> OutputTarget | None:
    """Check ``-o`` before any work (as ``optimize`` does); its target, or None."""
    from memplan.io.files import check_output_path

    if args.output is None:
        return None
    target = check_output_path(args.output, "-o", allow_stdout=True)
    if target.is_stdout and args.json:
        raise ConfigError(
            "-o - and --json would both write to standard output; give -o a file name"
        )
    return target


def _write_output(
    target: OutputTarget | None, result: Any, buffers: list[Any]
) -> tuple[str | None, OutputFileError | None]:
    """Write the packing to ``target`` if it fits; (what was written, the write's error).

    A write that fails (a full disk, a folder removed during the search) is returned,
    not raised, so that the result is reported before the error (exit 2).
    """
    from memplan.cli.common import drop_closed_stream
    from memplan.io.buffers_csv import format_buffers_csv
    from memplan.io.files import atomic_write_text

    if target is None or not result.fits:
        return None, None
    assert result.offsets_bytes is not None
    try:
        atomic_write_text(target, format_buffers_csv(buffers, result.offsets_bytes))
    except OutputFileError as error:
        return None, error
    except BrokenPipeError:  # -o - to a reader that left: the report still goes to stderr
        drop_closed_stream(sys.stdout)
    return target.given, None


def _report(
    args: argparse.Namespace,
    result: Any,
    n: int,
    *,
    ended: str = "ran out",
    written: str | None = None,
) -> None:
    """Print the result: JSON, one line on stderr when there is no packing, else a table
    (on stderr when the CSV goes to standard output, ``-o -``).

    ``ended``: "stopped by Ctrl-C" or "stopped by SIGTERM", "ran out" (the time limit
    passed), or "" (the search
    ended by itself: a TIMEOUT then means a heuristic found no packing that fits).
    ``written``: the ``-o`` path written, ``-`` for standard output, or None.
    """
    capacity = result.capacity_bytes
    if args.json:
        print_json(
            {
                "csv": args.csv,
                "buffers": n,
                "status": result.status.value,
                "fits": result.fits,
                "algorithm": result.algorithm,
                "capacity_bytes": capacity,
                "height_bytes": result.height_bytes,
                "max_live_bytes": result.max_live_bytes,
                "lower_bound_bytes": result.lower_bound_bytes,
                "ratio": result.ratio,
                "wall_s": round(result.wall_s, 6),
                "message": result.message,
                "stats": dict(result.stats),
                "output": written,
            }
        )
        return
    if result.offsets_bytes is None:
        why = result.message or "no packing found"
        print(f"memplan allocate: {result.status.value}: {why}", file=sys.stderr)
        return
    from rich.table import Table

    ratio = result.ratio
    table = Table(title=f"memplan allocate {args.csv}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("status", _status_text(result, ended))
    table.add_row("algorithm", result.algorithm)
    table.add_row("buffers", str(n))
    table.add_row("capacity", "none (minimise)" if capacity is None else f"{capacity} B")
    table.add_row("height", f"{result.height_bytes} B")
    table.add_row("max live", f"{result.max_live_bytes} B")
    table.add_row("lower bound", f"{result.lower_bound_bytes} B (no packing is lower)")
    table.add_row("height / max live", "–" if ratio is None else f"{ratio:.4f}")
    table.add_row("time", f"{result.wall_s:.3f} s")
    if result.message:
        table.add_row("note", result.message)
    if written:
        table.add_row("written", "standard output" if written == "-" else written)
    # With -o - standard output carries the CSV alone.
    (err_console if args.output == "-" else console).print(table)


def _status_text(result: Any, ended: str = "ran out") -> str:
    """The status with what it means for the packing shown (``ended``: see _report)."""
    if result.status.value == "timeout" and not ended:
        return (
            "timeout (no packing within the capacity found; a heuristic proves nothing: "
            "--algorithm exact or auto searches on)"
        )
    meaning = {
        "optimal": "the height is proven minimal",
        "feasible": "fits the capacity" if result.capacity_bytes is not None else "a packing",
        "infeasible": "no packing fits the capacity; the lowest found is shown",
        "timeout": (ended if ended.startswith("stopped") else "out of time")
        + "; best packing so far"
        + ("" if result.fits else ", above the capacity"),
    }[result.status.value]
    return f"{result.status.value} ({meaning})"
