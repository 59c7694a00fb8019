"""The ``memplan`` command line: one module per sub-command.

Each module in :data:`COMMANDS` defines ``add_parser(subparsers)``, which adds its
sub-parser and sets ``func`` (a callable taking the parsed namespace and returning an
exit code). :func:`main` turns every :class:`~memplan.errors.MemplanError` into one
line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections.abc import Sequence

from memplan import __version__
from memplan.cli.argparser import Parser
from memplan.errors import MemplanError

#: Sub-command modules, in the order ``memplan --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "inspect",
    "graphs",
    "optimize",
    "validate",
    "score",
    "solvers",
    "bench",
    "compare",
    "allocate",
    "rl",
)

#: The error of a command that must print to a closed standard output (started with ``>&-``).
STDOUT_CLOSED = (
    "standard output is closed, and this command prints its result there; run it with "
    "standard output open, or redirected to a file (> result.json)"
)

#: Exit codes: success, a result that is not a plan (infeasible, invalid plan), bad input.
EXIT_OK, EXIT_NO_PLAN, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


#: ``time.monotonic()`` when this process started, set by the console script
#: (:func:`entry_point`); None when :func:`main` is called in a running process (a test,
#: a notebook). A command whose ``--time-limit`` covers the whole command starts its
#: budget then, so its wall time (start-up and imports included) stays within the limit.
launched_at_s: float | None = None


def process_age_s() -> float:
    """Seconds since this process started (Linux ``/proc``), or 0 where that is unknown.

    The start-up and the imports take 1 to 3 s on a loaded machine (see
    :data:`launched_at_s`).
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the name may hold spaces
        with open("/proc/uptime", encoding="ascii") as uptime:
            now_s = float(uptime.read().split()[0])
        started_s = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
    return min(max(now_s - started_s, 0.0), MAX_PROCESS_AGE_S)


#: Start-up longer than this is not believed (a clock read wrongly): seconds.
MAX_PROCESS_AGE_S = 60.0


def build_parser() -> Parser:
    """Return the top-level parser with every sub-command registered."""
    parser = Parser(
        prog="memplan",
        description=(
            "Plan how a neural network runs on an accelerator with a small scratchpad: "
            "operator order, on-chip placement (offsets) and spills to DRAM."
        ),
    )
    parser.add_argument("--version", action="version", version=f"memplan {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"memplan.cli.{name}")
        module.add_parser(subparsers)
    return parser


def _command_word(argv: Sequence[str]) -> tuple[str | None, bool]:
    """The sub-command named in ``argv``, and whether ``--debug`` comes before it.

    For a Ctrl-C before the arguments are parsed: the top-level options take no values,
    so the first word not starting with ``-`` is the command.
    """
    words = list(argv)
    command = next((word for word in words if not word.startswith("-")), None)
    before = words[: words.index(command)] if command is not None else words
    return command, "--debug" in before


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        # Building the parser imports every sub-command (numpy, rich: 0.3 s, more on a
        # busy machine): a Ctrl-C then printed a 30-line traceback from an import.
        early, debug = _command_word(argv)
        if debug:
            raise
        print(f"memplan{' ' + early if early else ''}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    # The sub-command as typed, for the one-line messages ("memplan rl evaluate").
    words = [args.command, getattr(args, "rl_command", None), getattr(args, "graphs_action", None)]
    command = " ".join(word for word in words if word)
    if sys.stdout is None and getattr(args, "json", False):  # before any work
        print(f"memplan {command}: error: {STDOUT_CLOSED}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args))
    except MemplanError as error:
        if args.debug:
            raise
        print(f"memplan {command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"memplan {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a plain print() to a reader that left (validate, score)
        from memplan.cli.common import drop_closed_stream

        drop_closed_stream(sys.stdout)
        return EXIT_OK


def entry_point() -> None:
    """Console-script entry: exit with :func:`main`'s code.

    Once :func:`main` has returned, Ctrl-C is ignored: the interpreter's shutdown (numba
    and thread clean-up, about 0.3 s) is no place to die by SIGINT, which reported 130,
    "aborted, nothing written", for a command whose files were written. A command that
    ran solvers on a fresh installation then starts the kernels' background compile
    (:func:`memplan.solvers.jit.compile_ahead`), so the next one finds them compiled.
    """
    global launched_at_s
    launched_at_s = time.monotonic() - process_age_s()
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kernels = sys.modules.get("memplan.solvers.jit")  # loaded when a solver ran
    if kernels is not None:
        kernels.compile_ahead()  # a fresh installation's next command finds them compiled
    sys.exit(code)
