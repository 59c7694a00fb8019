"""Helpers shared by every sub-command that reads a model.

A command that reads a model calls :func:`add_model_arguments` and
:func:`add_problem_arguments` on its parser, then in its ``func``::

    loaded = load_model_from_args(args)        # LoadedModel: graph, path, sha256, report
    problem = problem_from_args(args, loaded)  # Problem with the accelerator's capacity

Commands that take ``--scratchpad`` resolve it with :func:`memplan.budgets.resolve_budget`
and :meth:`memplan.problem.Problem.with_capacity`. Output goes through :data:`console`
(stdout) and :data:`err_console` (stderr); :func:`print_json` writes machine-readable
results to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from memplan.accelerator import DEFAULT_PRESET, load_accelerator
from memplan.cli import STDOUT_CLOSED
from memplan.cli.argparser import input_file
from memplan.errors import ConfigError, OutputFileError
from memplan.onnx.flags import parse_dims, parse_input_shapes, parse_input_values
from memplan.problem import Problem, Scope

if TYPE_CHECKING:
    from memplan.io.loading import ImportOptions, LoadedModel

#: The narrowest width the consoles lay text out for, in columns: tables and labels
#: narrower than this are unreadable, and COLUMNS=0 made rich print nothing at all.
MIN_WIDTH = 40
#: The width when COLUMNS is 0 or not a number and the terminal's is unknown (rich's).
FALLBACK_WIDTH = 80


def console_width(stderr: bool = False) -> int | None:
    """The width for a console, or None to let rich choose (COLUMNS, the terminal, 80).

    rich takes COLUMNS as it is: COLUMNS=0 gave a console of width 0, which printed
    nothing (optimize lost its status, cost and "wrote" lines, with exit 0), and
    COLUMNS=1 one character a line. A COLUMNS that is not a number of columns > 0 is
    ignored (the terminal's width, else 80); one below :data:`MIN_WIDTH` is raised to it.
    """
    import os

    raw = os.environ.get("COLUMNS")
    if raw is None:
        return None
    try:
        columns = int(raw)
    except ValueError:
        columns = 0
    if columns >= MIN_WIDTH:
        return None
    if columns > 0:
        return MIN_WIDTH
    stream = sys.stderr if stderr else sys.stdout
    try:
        return max(os.get_terminal_size(stream.fileno()).columns, MIN_WIDTH)
    except (AttributeError, OSError, ValueError):  # not a terminal, closed, replaced
        return FALLBACK_WIDTH


def drop_closed_stream(stream: Any) -> None:
    """Send what is still written to ``stream`` (whose reader left) to /dev/null, so
    that neither later prints nor the interpreter's final flush raise BrokenPipeError."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # no file descriptor: nothing to flush
        pass


class _Console(Console):
    """A rich console whose reader may leave (``memplan optimize m.onnx | head -1``)."""

    def on_broken_pipe(self) -> None:
        """Drop the rest of the output, not the work: rich exits 1 here, which means "no
        plan", with the solve not run or its files not written. Now the command goes
        on, writes its files and exits with its own code."""
        self.quiet = True
        drop_closed_stream(self.file)

    def _check_buffer(self) -> None:
        """Write what is buffered; standard output that cannot be written (a full disk,
        ``> /dev/full``) is an :class:`OutputFileError` of one line, where it was an
        OSError traceback with exit 1 (``memplan inspect``, ``memplan graphs list``)."""
        try:
            super()._check_buffer()
        except BrokenPipeError:  # rich handles it in its own method; kept as it is
            raise
        except OSError as error:
            if self.stderr:  # no line can reach a broken stderr
                raise
            self.quiet = True
            raise _stdout_failed(error) from None


#: Rich console for human-readable output on stdout.
console = _Console(highlight=False, width=console_width())
#: Rich console for warnings and progress on stderr.
err_console = _Console(stderr=True, highlight=False, width=console_width(stderr=True))


def add_model_arguments(parser: argparse.ArgumentParser, *, plan_records: bool = False) -> None:
    """Add the positional ``model`` and the ONNX import options to ``parser``.

    Every import option defaults to None ("not given"), so a command can tell the flags
    given from the defaults (:func:`given_import_options`). With ``plan_records`` the
    help says that a plan file's recorded options are the default (validate, score).
    """
    parser.add_argument(
        "model",
        type=input_file("the model"),
        help=(
            "the model: an ONNX file (.onnx), a memplan graph JSON file, or a workload "
            "name from 'memplan graphs list' (e.g. light_densenet121)"
        ),
    )
    title = "ONNX import (default: as recorded in the plan file)" if plan_records else "ONNX import"
    group = parser.add_argument_group(title)
    group.add_argument(
        "--input-shape",
        dest="input_shape",
        action="append",
        nargs="+",
        default=None,
        metavar="NAME:D1,D2,...",
        help=(
            "fix the shape of a graph input, in elements per dimension, e.g. "
            "input:1,3,224,224 (only its symbolic or unknown dims can be set: a dim fixed "
            "in the model must be given as it is); several inputs separated by spaces or by "
            "repeating the flag "
            "(the flag takes every following word, so give the model path before it)"
        ),
    )
    group.add_argument(
        "--dim",
        action="append",
        nargs="+",
        default=None,
        metavar="NAME=VALUE",
        help=(
            "give a symbolic dimension a size in elements, e.g. batch=1 "
            "(applies wherever the name appears); several separated by spaces or by "
            "repeating the flag"
        ),
    )
    group.add_argument(
        "--input-value",
        dest="input_value",
        action="append",
        nargs="+",
        default=None,
        metavar="NAME:V1,V2,...",
        help=(
            "fix the value of a small graph input (a sample rate, a flag, a size), e.g. "
            "sr:16000, so the shape computations and If branches that depend on it fold "
            "away; several separated by spaces or by repeating the flag"
        ),
    )
    group.add_argument(
        "--dtype-bytes",
        dest="dtype_bytes",
        type=int,
        default=None,
        metavar="N",
        help=(
            "bytes per element for every tensor, overriding the ONNX element types "
            "(e.g. 1 for an 8-bit accelerator); default: the size of each tensor's ONNX type"
        ),
    )
    group.add_argument(
        "--aliases",
        dest="aliases",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "--no-aliases keeps view ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, "
            "inference Dropout) as ops with their own output buffers instead of aliasing "
            "their input; default: aliases on"
        ),
    )


#: Import options given by flags: ImportOptions field -> (argparse dest, parser of the words).
IMPORT_ARGUMENTS: dict[str, tuple[str, Callable[[list[str]], Any] | None]] = {
    "input_shapes": ("input_shape", parse_input_shapes),
    "dims": ("dim", parse_dims),
    "input_values": ("input_value", parse_input_values),
    "dtype_bytes": ("dtype_bytes", None),
    "aliases": ("aliases", None),
}


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scope`` and ``--accelerator`` to ``parser``."""
    group = parser.add_argument_group("problem")
    group.add_argument(
        "--scope",
        choices=[s.value for s in Scope],
        default=Scope.ACTIVATIONS.value,
        help=(
            "which tensors compete for the scratchpad: 'activations' (activations and graph "
            "inputs; weights stream from DRAM) or 'all' (weights too); default: activations"
        ),
    )
    group.add_argument(
        "--accelerator",
        type=input_file("--accelerator"),
        default=DEFAULT_PRESET,
        metavar="NAME|FILE",
        help=(
            "accelerator preset (edge-npu, server-npu, unaligned) or a .toml/.json spec file "
            "giving scratchpad capacity (bytes), offset alignment (bytes), DRAM bandwidth "
            f"(bytes/s), MAC rate (MAC/s), energies (J) and timing model (serial or overlap; "
            f"docs/files.md); default: {DEFAULT_PRESET}"
        ),
    )


def _flatten(values: Any) -> list[str]:
    """Flatten ``action='append', nargs='+'`` lists (and tolerate plain strings)."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    out: list[str] = []
    for item in values:
        out.extend(_flatten(item))
    return out


def given_import_options(args: argparse.Namespace) -> tuple[ImportOptions, list[str]]:
    """The import options the flags give (defaults elsewhere), and which fields were given.

    Raises:
        ConfigError: a malformed ``--input-shape`` or ``--dim``, a bad ``--dtype-bytes``.
    """
    from memplan.io.loading import ImportOptions

    values: dict[str, Any] = {}
    for field_name, (dest, parse) in IMPORT_ARGUMENTS.items():
        raw = getattr(args, dest, None)
        if raw is None:
            continue
        values[field_name] = parse(_flatten(raw)) if parse is not None else raw
    dtype_bytes = values.get("dtype_bytes")
    if dtype_bytes is not None and dtype_bytes < 1:
        raise ConfigError(f"--dtype-bytes must be a positive number of bytes, got {dtype_bytes}")
    return ImportOptions.create(**values), list(values)


def load_model_from_args(
    args: argparse.Namespace, options: ImportOptions | None = None
) -> LoadedModel:
    """Load ``args.model`` with the ONNX import options in ``args`` (or ``options``).

    ``args.model`` is a model file (ONNX or memplan graph JSON) or, when no such file
    exists, a workload name of the catalog (``memplan graphs list``). A stored workload
    loads from its file, so its sha256 is the file's whichever way it is named.

    Raises:
        OnnxImportError: the file cannot be imported.
        ConfigError: the name is neither a file nor a workload (with close matches), or
            import flags were given for a memplan graph JSON file.
    """
    from memplan.io.loading import load_model

    from_flags, given = given_import_options(args)
    loaded = load_model(args.model, options=options or from_flags)
    if loaded.import_options is None and given:
        flags = " ".join(from_flags.flags()) or "--aliases"
        raise ConfigError(
            f"{args.model} is a memplan graph JSON file, whose sizes are fixed: the ONNX import "
            f"flags ({flags}) do not apply to it; leave them out"
        )
    return loaded


def print_import_warnings(command: str, loaded: LoadedModel) -> None:
    """Print what the ONNX importer warned about to stderr, one line each.

    The warnings (an unused graph input left out, a tensor without elements, a graph
    output that is a weight, MACs only estimated) change what is planned or how it is
    costed, so a command that plans the model says them, not only ``inspect``.
    """
    if loaded.report is None:
        return
    for warning in loaded.report.warnings:
        print(f"memplan {command}: warning: {warning}", file=sys.stderr)


def model_sha256_from_args(args: argparse.Namespace) -> str:
    """SHA-256 of ``args.model`` without importing it (the file's bytes, or the proto's)."""
    import hashlib

    from memplan.io.files import sha256_of_file
    from memplan.io.loading import model_source

    source = model_source(args.model)
    if isinstance(source, (str, Path)):
        return sha256_of_file(source)
    return hashlib.sha256(source.SerializeToString()).hexdigest()


def problem_from_args(args: argparse.Namespace, loaded: LoadedModel) -> Problem:
    """The problem for ``loaded``'s graph with ``--accelerator`` and ``--scope``.

    The capacity is the accelerator's; commands with ``--scratchpad`` replace it.
    """
    accelerator = load_accelerator(getattr(args, "accelerator", DEFAULT_PRESET))
    scope = Scope.parse(getattr(args, "scope", Scope.ACTIVATIONS.value))
    return Problem(loaded.graph, accelerator, scope)


def time_limit_from_text(
    text: str | None, default: float, *, allow_zero: bool = False
) -> float | None:
    """The value of ``--time-limit TEXT``: seconds, or None for ``none`` (no limit).

    Shared by the commands that take it, so each accepts the same values and words its
    refusals the same way (``allocate`` refused the ``none`` that ``optimize`` takes).

    Args:
        text: the value as given; None when the flag was not given.
        default: the seconds used when the flag was not given.
        allow_zero: accept 0 (a command that then keeps what its first, quick step finds).

    Raises:
        ConfigError: naming the flag and the value (``check_seconds``).
    """
    from memplan.units import check_seconds

    if text is None:
        return default
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"--time-limit {text!r} is not a number of seconds; write e.g. 60, or none"
        ) from None
    return check_seconds(
        "--time-limit", value, allow_zero=allow_zero, alternative="none for no limit"
    )


def checked_seed(text: str, flag: str = "--seed ") -> int:
    """The value of ``--seed TEXT``: a whole number in memplan's one seed range.

    Args:
        text: the seed as given.
        flag: how the message names where it was given, ending in its separator
            (``"--option seed="`` for a seed given as an option).

    Raises:
        ConfigError: naming the flag and the range (the same for every plug-in).
    """
    from memplan.options import SEED_MAX

    if not text.isdigit() or int(text) > SEED_MAX:
        shown = text if text and text.isprintable() and text.strip() == text else repr(text)
        raise ConfigError(
            f"{flag}{shown}: a seed is a whole number from 0 to {SEED_MAX} "
            "(the same range for every solver and allocator)"
        )
    return int(text)


def _stdout_failed(error: OSError) -> OutputFileError:
    """The error for a standard output that cannot be written (a full disk, ``/dev/full``):
    one line, where it was an OSError traceback with exit 1 (\"no plan\")."""
    drop_closed_stream(sys.stdout)  # the interpreter's last flush must not fail again
    return OutputFileError(
        f"standard output: cannot write the result ({error.strerror or error}); free some "
        "space or redirect it to another file"
    )


@contextlib.contextmanager
def result_on_stdout() -> Iterator[None]:
    """Plain ``print`` of a command's result inside: a reader that leaves
    (``memplan validate m plan.json | head -1``) ends the output, not the command, which
    keeps its own exit code (``validate`` 1 for an invalid plan; it was 0, "valid");
    standard output that cannot be written is an :class:`OutputFileError` of one line.
    """
    try:
        yield
        if sys.stdout is not None:
            sys.stdout.flush()  # a write error must come out here, not at exit
    except BrokenPipeError:
        drop_closed_stream(sys.stdout)
    except OSError as error:
        raise _stdout_failed(error) from None


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON to stdout (no rich markup or wrapping).

    Raises:
        OutputFileError: standard output is closed (the command ran with ``>&-``) or
            cannot be written (a full disk).
    """
    if sys.stdout is None:
        raise OutputFileError(STDOUT_CLOSED)
    try:
        sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left; the command's work and files stand
        drop_closed_stream(sys.stdout)
    except OSError as error:  # a full disk: one line, not a traceback
        raise _stdout_failed(error) from None
