"""Helpers shared by ``optimize``, ``validate`` and ``score`` (not a sub-command itself).

- :func:`add_scratchpad_argument` / :func:`resolve_scratchpad`: the ``--scratchpad``
  budget (``MR``, ``MH``, ``MP``, a size, a multiple, or ``accelerator``).
- :class:`StopOnSigint`: the first Ctrl-C asks the solver to stop and return its best
  plan; the second aborts.
- :func:`load_plan_problem`: a plan file read against a model imported with the
  options the plan records, with the accelerator and scope it records unless the
  command line overrides them.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from memplan.cli.argparser import input_file
from memplan.cli.common import load_model_from_args
from memplan.errors import ConfigError, MemplanError
from memplan.solver import CtrlCStops

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.io.loading import ImportOptions, LoadedModel
    from memplan.io.planfile import PlanFile, PlanHeader
    from memplan.problem import Problem
    from memplan.validate import ValidationReport, Violation

SCRATCHPAD_HELP = (
    "scratchpad size to plan for: MR (the largest working set of one op: the smallest "
    "scratchpad any plan fits in), MP (the lowest peak of live bytes over operator orders, "
    "no spilling; from the min-peak search: proven when it finishes, else an upper bound), "
    "MH = (MR + MP) / 2, a multiple such as 0.5*MP or "
    "1.2*MR, a size in bytes such as 65536, 512KiB or 2MB (KiB/MiB = 1024-based, kB/MB = "
    "1000-based), or 'accelerator' (the capacity_bytes of --accelerator). Sizes are "
    "rounded down to the accelerator's alignment"
)


def add_scratchpad_argument(
    parser: argparse.ArgumentParser | Any, default: str | None, extra: str = ""
) -> None:
    """Add ``--scratchpad`` (a budget spec) to ``parser``."""
    parser.add_argument(
        "--scratchpad",
        default=default,
        metavar="BUDGET",
        help=SCRATCHPAD_HELP + extra,
    )


def resolve_scratchpad(text: str, problem: Problem) -> ResolvedBudget:
    """Turn ``--scratchpad`` into a capacity for ``problem`` (see :data:`SCRATCHPAD_HELP`).

    :func:`memplan.budgets.resolve_budget` takes every form, ``accelerator`` included,
    and its error lists them all; this only names the flag.
    """
    from memplan.budgets import resolve_budget
    from memplan.min_peak import cached_peak_provider

    try:
        return resolve_budget(text, problem, cached_peak_provider)
    except ConfigError as error:
        raise ConfigError(f"--scratchpad: {error}") from None


class StopOnSigint(CtrlCStops):
    """Context manager: Ctrl-C sets ``stop_event`` once (printing ``notice``); a second
    Ctrl-C aborts. Installed over any handler but an ignored SIGINT, in the main thread
    only (:class:`memplan.solver.CtrlCStops`)."""

    def __init__(self, stop_event: threading.Event, notice: str) -> None:
        super().__init__(stop_event, notice, over_any_handler=True)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ctrl-C is ignored inside (main thread only): once the solver has returned, the
    outputs are written whole and the command ends normally, rather than a late second
    Ctrl-C aborting with some files written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def sigterm_stops(
    stop_event: threading.Event, notice: str, received: threading.Event | None = None
) -> Iterator[None]:
    """SIGTERM (``kill``, ``timeout``, a job scheduler's stop) sets ``stop_event`` as the
    first Ctrl-C does (printing ``notice`` once, and setting ``received`` if given), and
    never aborts, so a long run still saves what it has done (main thread only; an
    ignored SIGTERM stays ignored). By default SIGTERM ended ``memplan rl train`` and
    ``memplan optimize`` at once with nothing written, however long they had run."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    ):
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if received is not None:
            received.set()
        if not stop_event.is_set():
            stop_event.set()
            print(notice, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, a job scheduler's stop) ends the work inside as Ctrl-C does
    (main thread only): the running cells' processes are killed, their scratch folders
    removed and what finished is kept. By default SIGTERM ended ``memplan bench`` at
    once, silently, leaving a ``memplan-cell-*`` folder in the temp folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class PlanInput:
    """A model and a plan file read against it."""

    loaded: LoadedModel  # the model given on the command line, imported as the plan says
    planfile: PlanFile  # the plan file, checked against the model's sha256 and graph
    problem: Problem  # the plan file's (or overridden) accelerator, scope and capacity
    overrides: tuple[str, ...]  # which of --accelerator, --scope, --scratchpad were given
    notes: tuple[str, ...] = ()  # things the reader should know (an old file format, ...)
    warnings: tuple[str, ...] = ()  # recorded results that contradict each other


def add_plan_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """``plan`` positional and the overrides of what the plan file records."""
    parser.add_argument(
        "plan",
        type=input_file("the plan file"),
        help="the plan file written by memplan optimize -o",
    )
    group = parser.add_argument_group("overrides (default: what the plan file records)")
    group.add_argument(
        "--accelerator",
        type=input_file("--accelerator"),
        default=None,
        metavar="NAME|FILE",
        help=(
            "check against this accelerator preset (edge-npu, server-npu, unaligned) or "
            ".toml/.json spec instead of the one recorded in the plan file; its capacity_bytes "
            "is used unless --scratchpad is given"
        ),
    )
    group.add_argument(
        "--scope",
        choices=["activations", "all"],
        default=None,
        help="which tensors compete for the scratchpad, instead of the recorded scope",
    )
    add_scratchpad_argument(
        group, None, "; default: the capacity recorded in the plan file (or of --accelerator)"
    )


def _import_options_for(args: argparse.Namespace, header: PlanHeader) -> ImportOptions | None:
    """The plan's recorded import options, unless the flags contradict them (an error).

    Returns None for a version 1 plan file, which records none: the flags apply.

    Raises:
        InvalidPlanError: an import flag given differs from what the plan file records.
    """
    from memplan.cli.common import given_import_options
    from memplan.errors import InvalidPlanError

    recorded = header.import_options
    if recorded is None:
        return None
    from_flags, given = given_import_options(args)
    differing = recorded.differing(from_flags, given)
    if differing:
        raise InvalidPlanError(
            f"{header.source} was made with {' '.join(recorded.flags(differing))}, but this "
            f"command gives {' '.join(from_flags.flags(differing))}; leave the import flags "
            "out to use the plan's own, or plan again with these flags (memplan optimize)"
        )
    return recorded


def _check_model_sha256(args: argparse.Namespace, header: PlanHeader) -> None:
    """Raise the "made for another model" error if the model file is not the plan's."""
    from memplan.cli.common import model_sha256_from_args
    from memplan.io.planfile import wrong_model_error

    try:
        digest = model_sha256_from_args(args)
    except (OSError, MemplanError):
        return  # unreadable: the loader's own error says so
    if digest != header.model_sha256:
        raise wrong_model_error(header, str(args.model), digest)


def load_plan_problem(args: argparse.Namespace) -> PlanInput:
    """Load the plan file, then the model as the plan records it; apply the overrides.

    The model is imported with the plan's recorded import options (``--input-shape``,
    ``--dim``, ``--dtype-bytes``, aliases); an import flag that contradicts them is an
    error, not a silently different graph. ``--accelerator``, ``--scope`` and
    ``--scratchpad`` override what the plan records (to check a plan on another
    scratchpad); the output names them.
    """
    from memplan.accelerator import load_accelerator
    from memplan.io.planfile import check_import_kind, plan_from_header, read_plan_header
    from memplan.problem import Problem, Scope

    header = read_plan_header(args.plan)
    try:
        loaded = load_model_from_args(args, _import_options_for(args, header))
    except MemplanError:
        # The plan's import options may not fit another model: name the real mistake.
        _check_model_sha256(args, header)
        raise
    notes = []
    if header.version == 1:
        notes.append(
            f"{args.plan} is a version 1 plan file, which does not record how the model was "
            "imported: give the --input-shape, --dim, --input-value, --dtype-bytes and "
            "--no-aliases it was "
            "planned with (memplan optimize -o now records them)"
        )
    if loaded.sha256 == header.model_sha256:  # another model: plan_from_header says so
        check_import_kind(header, loaded.import_options, str(args.model))
    aliases = dict(loaded.report.aliases) if loaded.report is not None else None
    planfile = plan_from_header(header, loaded.graph, loaded.sha256, aliases)
    overrides = []  # only those that change what the plan records
    accelerator = planfile.accelerator
    if args.accelerator is not None:
        accelerator = load_accelerator(args.accelerator)
        if accelerator != planfile.accelerator:
            overrides.append("--accelerator")
    scope = planfile.scope
    if args.scope is not None:
        scope = Scope.parse(args.scope)
        if scope != planfile.scope:
            overrides.append("--scope")
    problem = Problem(loaded.graph, accelerator, scope)
    if args.scratchpad is not None:
        recorded = problem.capacity_bytes
        problem = problem.with_capacity(resolve_scratchpad(args.scratchpad, problem).capacity_bytes)
        if problem.capacity_bytes != recorded:
            overrides.append("--scratchpad")
    warnings = tuple(f"{args.plan}: {text}" for text in planfile.inconsistencies())
    return PlanInput(loaded, planfile, problem, tuple(overrides), tuple(notes), warnings)


def print_notes(command: str, given: PlanInput) -> None:
    """Print the notes and warnings of a plan input to stderr, one line each."""
    for note in given.notes:
        print(f"memplan {command}: note: {note}", file=sys.stderr)
    for warning in given.warnings:
        print(f"memplan {command}: warning: {warning}", file=sys.stderr)


def violation_dicts(problem: Problem, violations: Sequence[Violation]) -> list[dict[str, Any]]:
    """The ``violations`` of ``validate --json`` and ``score --json``: kind, message,
    tensors by name, steps."""
    names = [t.name for t in problem.graph.tensors]
    return [
        {
            "kind": v.kind.value,
            "message": v.message,
            "tensors": [names[t] for t in v.tensors if 0 <= t < len(names)],
            "steps": list(v.steps),
        }
        for v in violations
    ]


def report_fields(problem: Problem, report: ValidationReport) -> dict[str, Any]:
    """The violation fields of ``validate --json`` and ``score --json``: ``violations``
    (those listed), ``violation_count`` (all found), ``violation_counts`` (by kind) and
    ``violations_per_kind`` (the most listed of one kind; null: all)."""
    return {
        "violation_count": report.total,
        "violation_counts": {kind.value: n for kind, n in report.counts},
        "violations_per_kind": report.per_kind,
        "violations": violation_dicts(problem, report.listed),
    }


def unlisted_lines(report: ValidationReport) -> list[str]:
    """One line per kind whose violations were not all listed, saying how many were not."""
    return [
        f"  [{kind.value}] ... and {n:,} more not listed (--per-kind N or all lists more)"
        for kind, n in report.unlisted.items()
    ]


def add_per_kind_argument(parser: argparse.ArgumentParser | Any) -> None:
    """Add ``--per-kind`` (how many violations of each kind to list)."""
    from memplan.validate import LISTED_PER_KIND

    parser.add_argument(
        "--per-kind",
        type=_per_kind,
        default=LISTED_PER_KIND,
        metavar="N|all",
        help=(
            "list at most N violations of each kind (default "
            f"{LISTED_PER_KIND}); 'all' lists every one. Every violation is found and "
            "counted either way"
        ),
    )


def _per_kind(text: str) -> int | None:
    """``--per-kind``: a whole number >= 0, or 'all' (None)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of violations; give a whole number >= 0 or 'all'"
        )
    return value
