"""Helpers shared by ``optimize``, ``validate`` and ``score`` (not a sub-command itself).

- :func:`add_scratchpad_argument` / :func:`resolve_scratchpad`: the ``--scratchpad``
  budget (``MR``, ``MH``, ``MP``, a size, a multiple, or ``accelerator``).
- :class:`StopOnSigint`: the first Ctrl-C asks the solver to stop and return its best
  plan; the second aborts.
- :func:`load_plan_problem`: a plan file read against a model, with the accelerator
  and scope it records unless the command line overrides them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from memplan.cli.common import load_model_from_args
from memplan.errors import ConfigError

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.io.loading import LoadedModel
    from memplan.io.planfile import PlanFile
    from memplan.problem import Problem

#: ``--scratchpad`` value meaning "the capacity of the --accelerator spec".
ACCELERATOR_BUDGET = "accelerator"

SCRATCHPAD_HELP = (
    "scratchpad size to plan for: MR (the largest working set of one op: the smallest "
    "scratchpad any plan fits in), MP (the lowest peak of live bytes over operator orders, "
    "no spilling; heuristic estimate), MH = (MR + MP) / 2, a multiple such as 0.5*MP or "
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
    """Turn ``--scratchpad`` into a capacity for ``problem`` (see :data:`SCRATCHPAD_HELP`)."""
    from memplan.budgets import ResolvedBudget, resolve_budget

    if text.strip().lower() == ACCELERATOR_BUDGET:
        alignment = problem.alignment_bytes
        capacity = problem.accelerator.capacity_bytes // alignment * alignment
        return ResolvedBudget(
            text, capacity, f"capacity of accelerator {problem.accelerator.name!r}"
        )
    try:
        from memplan.min_peak import cached_peak_provider

        return resolve_budget(text, problem, cached_peak_provider)
    except ConfigError as error:
        raise ConfigError(f"--scratchpad: {error} (or '{ACCELERATOR_BUDGET}')") from None


class StopOnSigint:
    """Context manager: Ctrl-C sets ``stop_event`` once; a second Ctrl-C aborts.

    Outside the main thread (where signal handlers cannot be installed) it does nothing.
    """

    def __init__(self, stop_event: threading.Event, notice: str) -> None:
        self.stop_event = stop_event  # the solver's Budget.stop_event
        self.notice = notice  # printed to stderr on the first Ctrl-C
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_event.is_set():
            raise KeyboardInterrupt
        self.stop_event.set()
        print(self.notice, file=sys.stderr, flush=True)

    def __enter__(self) -> StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


@dataclass(frozen=True)
class PlanInput:
    """A model and a plan file read against it."""

    loaded: LoadedModel  # the model given on the command line
    planfile: PlanFile  # the plan file, checked against the model's sha256
    problem: Problem  # the plan file's (or overridden) accelerator, scope and capacity
    overrides: tuple[str, ...]  # which of --accelerator, --scope, --scratchpad were given


def add_plan_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """``plan`` positional and the overrides of what the plan file records."""
    parser.add_argument("plan", help="the plan file written by memplan optimize -o")
    group = parser.add_argument_group("overrides (default: what the plan file records)")
    group.add_argument(
        "--accelerator",
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


def load_plan_problem(args: argparse.Namespace) -> PlanInput:
    """Load the model and the plan file; apply ``--accelerator``/``--scope``/``--scratchpad``."""
    from memplan.accelerator import load_accelerator
    from memplan.io.planfile import read_plan_file
    from memplan.problem import Problem, Scope

    loaded = load_model_from_args(args)
    planfile = read_plan_file(args.plan, loaded.graph, expected_sha256=loaded.sha256)
    overrides = []
    accelerator = planfile.accelerator
    if args.accelerator is not None:
        accelerator = load_accelerator(args.accelerator)
        overrides.append("--accelerator")
    scope = planfile.scope
    if args.scope is not None:
        scope = Scope.parse(args.scope)
        overrides.append("--scope")
    problem = Problem(loaded.graph, accelerator, scope)
    if args.scratchpad is not None:
        problem = problem.with_capacity(resolve_scratchpad(args.scratchpad, problem).capacity_bytes)
        overrides.append("--scratchpad")
    return PlanInput(loaded, planfile, problem, tuple(overrides))
