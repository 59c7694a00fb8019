"""``memplan optimize``: plan a model for a scratchpad and write the plan.

::

    memplan optimize model.onnx --scratchpad MR -o plan.json --csv buffers.csv --plot plan.png

Checks every output path first (:func:`memplan.io.files.check_output_path`: nothing
is solved for a file that cannot be written), loads the model, resolves the budget
(``--scratchpad``, default ``MH``), prints the model, budget and solver at once, runs
the solver (``--solver``, default ``greedy``) under ``--time-limit`` (default 60 s)
with a live line for any solve longer than a second, then prints the result and
writes the requested files together (all or none). Every plan is validated before it
is reported or written (:func:`memplan.solver.make_result`). Ctrl-C asks the solver
to stop and keep its best plan; a second Ctrl-C before the solver returns aborts and
writes nothing (after it, the outputs are written whole: Ctrl-C is ignored there).

Exit codes: 0 a plan was found (optimal, feasible, or the best one at a timeout);
1 no plan (infeasible, e.g. a scratchpad below M_R, or nothing found in time);
2 bad input (unreadable model, unwritable output, unknown solver or option);
130 aborted by a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.cli import EXIT_INTERRUPTED, EXIT_NO_PLAN, EXIT_OK
from memplan.cli.common import (
    add_model_arguments,
    add_problem_arguments,
    checked_seed,
    console,
    err_console,
    load_model_from_args,
    print_import_warnings,
    print_json,
    problem_from_args,
    time_limit_from_text,
)
from memplan.cli.objective import (
    add_objective_arguments,
    objective_note,
    objective_options,
    plan_figure,
    wants_timeline,
)
from memplan.cli.optimize_text import (
    format_header,
    format_result,
    map_legend,
    map_width,
    summarize,
)
from memplan.cli.plancommon import (
    StopOnSigint,
    add_scratchpad_argument,
    resolve_scratchpad,
    sigint_ignored,
    sigterm_stops,
)
from memplan.errors import ConfigError
from memplan.options import SEED_MAX

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.io.files import OutputTarget
    from memplan.io.loading import LoadedModel
    from memplan.problem import Problem
    from memplan.solver import SolveResult

#: The budget planned for when ``--scratchpad`` is not given.
DEFAULT_SCRATCHPAD = "MH"
#: The solver run when ``--solver`` is not given.
DEFAULT_SOLVER = "greedy"
#: The solve's wall-clock limit when ``--time-limit`` is not given, in seconds.
DEFAULT_TIME_LIMIT_S = 60.0
#: Figure formats of ``--plot``, by file suffix.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def add_parser(subparsers: Any) -> None:
    """Register ``optimize``."""
    parser = subparsers.add_parser(
        "optimize",
        help="plan a model: operator order, on-chip offsets and spills; write the plan",
        description=(
            "Plan MODEL (an .onnx file, a memplan graph .json file, or a workload name from "
            "'memplan graphs list') for a scratchpad: choose the operator order, which "
            "tensors stay on chip at which offsets, and which spill to DRAM. Prints the "
            "cost (traffic in bytes, peak scratchpad bytes, latency, energy) and the bound "
            "and gap, and writes the plan (-o), a MiniMalloc CSV (--csv) and a figure "
            "(--plot). Exit codes: 0 plan found, 1 no plan (infeasible, e.g. scratchpad "
            "below MR), 2 bad input, 130 aborted."
        ),
        epilog=(
            "Every output path is checked before solving: an existing regular file is "
            "replaced atomically and keeps its mode, a symlink's target is written, and a "
            "folder, device, FIFO, read-only file or missing folder is refused. Ctrl-C stops "
            "the solver and keeps its best plan so far (written as usual); press it twice "
            "to abort without writing anything (once the solver has returned, the outputs "
            "are written whole and Ctrl-C is ignored)."
        ),
    )
    add_model_arguments(parser)
    add_problem_arguments(parser)
    group = parser.add_argument_group("planning")
    add_scratchpad_argument(
        group,
        DEFAULT_SCRATCHPAD,
        f"; default: {DEFAULT_SCRATCHPAD}, the middle budget where spilling decisions matter",
    )
    group.add_argument(
        "--solver",
        default=DEFAULT_SOLVER,
        metavar="NAME",
        help=(
            f"solver to run (default: {DEFAULT_SOLVER}); 'memplan solvers' lists the "
            "installed ones with their options"
        ),
    )
    group.add_argument(
        "--option",
        "-O",
        dest="options",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a solver option, e.g. --option order=min-peak; repeatable",
    )
    group.add_argument(
        "--time-limit",
        dest="time_limit",
        default=None,
        metavar="SECONDS",
        help=(
            "wall-clock limit of the solve in seconds; the best plan found by then is kept "
            f"(default: {DEFAULT_TIME_LIMIT_S:g}; 'none' for no limit). Loading the model, "
            "resolving MH or MP (a min-peak order) and writing come on top"
        ),
    )
    group.add_argument(
        "--seed",
        default=None,
        metavar="N",
        help=(
            "random seed for solvers that use randomness (same seed, same plan), from 0 to "
            f"{SEED_MAX} for every solver; the same as --option seed=N"
        ),
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        metavar="PLAN.json",
        help="write the plan file (versioned JSON: model sha256, import options, accelerator, "
        "scope, solver, cost, plan); '-' for standard output",
    )
    out.add_argument(
        "--csv",
        metavar="BUFFERS.csv",
        help="write the residencies as a MiniMalloc CSV: id,lower,upper,size,offset "
        "(steps [lower, upper), size and offset in bytes; id = tensor#k for its k-th stay); "
        "'-' for standard output",
    )
    out.add_argument(
        "--plot",
        metavar="PLAN.png",
        help="write the memory map and live-bytes figure (.png, .svg or .pdf)",
    )
    out.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout instead of text",
    )
    out.add_argument(
        "--map",
        action="store_true",
        help="also print the ASCII memory map (one row per residency, steps across) "
        "with its legend",
    )
    add_objective_arguments(group, out)
    parser.set_defaults(func=run)


def _solver_from_args(args: argparse.Namespace) -> Any:
    from memplan.options import parse_option_pairs
    from memplan.solver import make_solver

    options: dict[str, Any] = dict(parse_option_pairs(args.options))
    if args.seed is not None:  # checked here, as allocate and rl check theirs
        seed = checked_seed(args.seed)
        if "seed" in options and options["seed"] != str(seed):
            raise ConfigError(
                f"--seed {args.seed} and --option seed={options['seed']} disagree; give one"
            )
        options["seed"] = str(seed)
    if "seed" in options:
        checked_seed(options["seed"], "--option seed=")
    return make_solver(args.solver, objective_options(args, options))


def _check_outputs(args: argparse.Namespace) -> dict[str, OutputTarget]:
    """Check -o, --csv and --plot before any work; the targets by output kind."""
    from memplan.io.files import check_output_path

    if args.plot is not None and Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {args.plot!r}: use a .png, .svg or .pdf file name")
    if args.timeline and args.plot is None:
        raise ConfigError(
            "--timeline adds the timeline to the --plot figure, and no --plot is given; "
            "add --plot PLAN.png (or .svg, .pdf)"
        )
    flags = {"plan": ("-o", args.output, True), "csv": ("--csv", args.csv, True)}
    flags["plot"] = ("--plot", args.plot, False)
    targets = {
        kind: check_output_path(value, flag, allow_stdout=stdout)
        for kind, (flag, value, stdout) in flags.items()
        if value is not None
    }
    to_stdout = [flags[kind][0] for kind, target in targets.items() if target.is_stdout]
    if args.json:
        to_stdout.append("--json")
    if len(to_stdout) > 1:
        raise ConfigError(
            f"{' and '.join(to_stdout)} would all write to standard output; give file names"
        )
    # Files the run reads: the model, the --accelerator spec, and any --option value
    # naming a file (the rl solver's network=agent.npz was overwritten by -o agent.npz).
    inputs = [("the model file being planned", Path(args.model))]
    if getattr(args, "accelerator", None):
        inputs.append(("the --accelerator spec file", Path(args.accelerator)))
    for pair in args.options:
        name, _, value = str(pair).partition("=")
        inputs.append((f"the file of --option {name}", Path(value)))
    seen: dict[Path, str] = {}
    for kind, target in targets.items():
        if target.path is None:
            continue
        for what, source in inputs:
            if source.is_file() and target.path.exists() and target.path.samefile(source):
                raise ConfigError(
                    f"{flags[kind][0]} {target.given}: is {what}; writing there would "
                    "destroy it; give another file name"
                )
        if target.path in seen:
            raise ConfigError(
                f"{seen[target.path]} and {flags[kind][0]} name the same file "
                f"{target.path}; give each its own"
            )
        seen[target.path] = flags[kind][0]
    return targets


def run(args: argparse.Namespace) -> int:
    """Run ``memplan optimize``; return the exit code."""
    from memplan.cli.progress import LiveLine
    from memplan.solver import Budget, checked_result

    targets = _check_outputs(args)  # before anything slow: no solve for an unwritable file
    time_limit_s = time_limit_from_text(args.time_limit, DEFAULT_TIME_LIMIT_S)
    solver = _solver_from_args(args)  # unknown solver / option: fail before importing
    data_on_stdout = args.json or any(t.is_stdout for t in targets.values())
    talk = err_console if data_on_stdout else console
    loaded = load_model_from_args(args)
    print_import_warnings("optimize", loaded)
    problem = problem_from_args(args, loaded)
    budget_spec = resolve_scratchpad(args.scratchpad, problem)
    problem = problem.with_capacity(budget_spec.capacity_bytes)
    note = objective_note(args, problem)
    if note is not None:
        print(f"memplan optimize: note: {note}", file=sys.stderr)
    if not args.json:
        talk.print(
            format_header(problem, loaded, budget_spec, solver, time_limit_s),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    live = LiveLine(err_console, time_limit_s)
    budget = Budget(time_limit_s=time_limit_s, on_progress=live)
    notice = "memplan optimize: stopping, keeping the best plan so far (Ctrl-C again aborts)"
    terminated = threading.Event()
    term_notice = "memplan optimize: SIGTERM: stopping, keeping the best plan so far"
    # SIGTERM (timeout, kill, a job scheduler) stops the solver as Ctrl-C does and never
    # aborts, so the best plan is still written; it killed the run with nothing written.
    with sigterm_stops(budget.stop_event, term_notice, received=terminated):
        with StopOnSigint(budget.stop_event, notice), live:
            result = solver.solve(problem, budget)
        if not type(solver).__module__.startswith("memplan."):
            # A plug-in may build its result itself: its plan is checked here before it is
            # written or reported (memplan's own solvers do it in make_result).
            result = checked_result(args.solver, problem, result)
        interrupted = budget.interrupted()
        # A second Ctrl-C still aborts while the files' contents are made (a figure of a
        # large plan takes seconds; it was ignored from the solver's return on, so a
        # second Ctrl-C 0.3 s after the first wrote the files and exited 0).
        with StopOnSigint(budget.stop_event, notice):
            contents = _output_contents(
                targets, result, problem, loaded, budget_spec, timeline=wants_timeline(args)
            )
        stopped_by = ("SIGTERM" if terminated.is_set() else "Ctrl-C") if interrupted else None
        with sigint_ignored():  # the files are being written: write and report them whole
            return _finish(
                args, targets, result, problem, (loaded, budget_spec), talk, stopped_by,
                time_limit_s, contents,
            )  # fmt: skip


def _finish(
    args: argparse.Namespace,
    targets: dict[str, OutputTarget],
    result: SolveResult,
    problem: Problem,
    model_and_budget: tuple[LoadedModel, ResolvedBudget],
    talk: Any,
    stopped_by: str | None,
    time_limit_s: float | None,
    contents: dict[str, bytes],
) -> int:
    """Write the outputs (``contents``, by kind) and print the result; return the exit code.

    ``stopped_by`` names what interrupted the solve ("Ctrl-C", "SIGTERM"), or is None.

    A write that fails (a full disk, a folder removed during the solve) still prints
    the result first, so the status and cost of a long solve are not lost; then the
    error is raised (one line, exit 2).
    """
    from memplan.errors import OutputFileError

    loaded, budget_spec = model_and_budget
    write_error: OutputFileError | None = None
    try:
        written = _write_outputs(targets, contents)
    except OutputFileError as error:
        written, write_error = {}, error
    summary = summarize(
        result, problem, loaded, budget_spec, stopped_by is not None, written, time_limit_s,
        stopped_by=stopped_by,
    )  # fmt: skip
    if args.json:
        print_json(summary)
    else:
        talk.print(format_result(summary), markup=False, highlight=False, soft_wrap=True)
    if args.map and result.plan is not None:
        from memplan.plan import memory_map

        width = map_width(problem, result.plan, talk.width)
        text = memory_map(result.plan, problem.graph, problem.capacity_bytes, width=width)
        talk.print(text + "\n" + map_legend(len(result.plan.order), width), markup=False,
                   highlight=False, soft_wrap=True)  # fmt: skip
    if write_error is not None:
        raise write_error
    if result.plan is not None:
        return EXIT_OK
    why = result.message or f"solver {result.solver!r} found no plan"
    print(f"memplan optimize: {result.status.value}: {why}", file=sys.stderr)
    if stopped_by is not None:
        return EXIT_INTERRUPTED
    return EXIT_NO_PLAN


def _write_outputs(targets: dict[str, OutputTarget], contents: dict[str, bytes]) -> dict[str, str]:
    """Write -o/--csv/--plot together (all or none); return the paths written, by kind."""
    from memplan.io.files import atomic_write_many

    atomic_write_many([(targets[kind], data) for kind, data in contents.items()])
    return {kind: targets[kind].given for kind in contents}


def _output_contents(
    targets: dict[str, OutputTarget],
    result: SolveResult,
    problem: Problem,
    loaded: LoadedModel,
    budget_spec: ResolvedBudget,
    *,
    timeline: bool = False,
) -> dict[str, bytes]:
    """The bytes of -o/--csv/--plot, by kind; none without a plan.

    ``timeline``: the figure shows the compute and DMA lanes below the memory map.
    """
    if result.plan is None or not targets:
        return {}
    from memplan.io.planfile import plan_csv, plan_file_dict, plan_json

    contents: dict[str, bytes] = {}
    if "plan" in targets:
        data = plan_file_dict(
            result,
            problem,
            model_sha256=loaded.sha256,
            model_file=loaded.path,
            budget=budget_spec,
            import_options=loaded.import_options,
        )
        contents["plan"] = plan_json(data).encode("utf-8")
    if "csv" in targets:
        contents["csv"] = plan_csv(problem.graph, result.plan).encode("utf-8")
    if "plot" in targets:
        contents["plot"] = _plot_bytes(targets["plot"].given, problem, result, timeline)
    return contents


def _plot_bytes(path: str, problem: Problem, result: SolveResult, timeline: bool) -> bytes:
    import io

    from memplan.viz.cuts import cuts_of, plot_cuts

    assert result.plan is not None
    cuts = None if timeline else cuts_of(result)  # a dnc result: its cuts over the live bytes
    if cuts is not None:
        fig = plot_cuts(problem, result.plan, cuts)
    else:
        fig = plan_figure(problem, result.plan, timeline)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lower().lstrip("."), dpi=120)
    return buffer.getvalue()
