"""``memplan optimize``: plan a model for a scratchpad and write the plan.

::

    memplan optimize model.onnx --scratchpad MR -o plan.json --csv buffers.csv --plot plan.png

Loads the model, resolves the budget (``--scratchpad``, default ``MH``), runs the solver
(``--solver``, default ``greedy``) under ``--time-limit``, prints a summary and writes
the requested files atomically. Every plan is validated before it is reported or
written (:func:`memplan.solver.make_result`). Ctrl-C asks the solver to stop and keep
its best plan; a second Ctrl-C aborts.

Exit codes: 0 a plan was found (optimal, feasible, or the best one at a timeout);
1 no plan (infeasible, e.g. a scratchpad below M_R, or nothing found in time);
2 bad input (unreadable model, plan for another model, unknown solver or option);
130 aborted by a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NO_PLAN, EXIT_OK
from memplan.cli.common import (
    add_model_arguments,
    add_problem_arguments,
    load_model_from_args,
    print_json,
    problem_from_args,
)
from memplan.cli.objective import (
    add_objective_arguments,
    objective_options,
    plan_figure,
    wants_timeline,
)
from memplan.cli.plancommon import (
    StopOnSigint,
    add_scratchpad_argument,
    resolve_scratchpad,
)
from memplan.errors import ConfigError
from memplan.units import format_bytes

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.io.loading import LoadedModel
    from memplan.problem import Problem
    from memplan.solver import SolveResult

#: The budget planned for when ``--scratchpad`` is not given.
DEFAULT_SCRATCHPAD = "MH"
#: The solver run when ``--solver`` is not given.
DEFAULT_SOLVER = "greedy"


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
            "Ctrl-C stops the solver and keeps its best plan so far (written as usual); "
            "press it twice to abort without writing anything."
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
        dest="time_limit_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall-clock limit of the solve in seconds; the best plan found is kept "
        "(default: none)",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="random seed for solvers that use randomness (same seed, same plan); "
        "the same as --option seed=N",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        metavar="PLAN.json",
        help="write the plan file (versioned JSON: model sha256, accelerator, scope, "
        "solver, cost, plan)",
    )
    out.add_argument(
        "--csv",
        metavar="BUFFERS.csv",
        help="write the residencies as a MiniMalloc CSV: id,lower,upper,size,offset "
        "(steps [lower, upper), size and offset in bytes; id = tensor#k for its k-th stay)",
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
        help="also print the ASCII memory map (one row per residency, steps across)",
    )
    add_objective_arguments(group, out)
    parser.set_defaults(func=run)


def _solver_from_args(args: argparse.Namespace) -> Any:
    from memplan.options import parse_option_pairs
    from memplan.solver import make_solver

    options: dict[str, Any] = dict(parse_option_pairs(args.options))
    if args.seed is not None:
        if "seed" in options and options["seed"] != str(args.seed):
            raise ConfigError(
                f"--seed {args.seed} and --option seed={options['seed']} disagree; give one"
            )
        options["seed"] = str(args.seed)
    options = objective_options(args, options)
    if args.time_limit_s is not None and args.time_limit_s <= 0:
        raise ConfigError(f"--time-limit must be > 0 seconds, got {args.time_limit_s}")
    return make_solver(args.solver, options)


def run(args: argparse.Namespace) -> int:
    """Run ``memplan optimize``; return the exit code."""
    from memplan.solver import Budget

    for flag, value in (("-o", args.output), ("--csv", args.csv), ("--plot", args.plot)):
        if value is not None and Path(value).is_dir():
            raise ConfigError(f"{flag} {value!r} is a folder; give a file name")
    if args.plot is not None and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigError(f"--plot {args.plot!r}: use a .png, .svg or .pdf file name")
    solver = _solver_from_args(args)  # unknown solver / option: fail before importing
    loaded = load_model_from_args(args)
    problem = problem_from_args(args, loaded)
    budget_spec = resolve_scratchpad(args.scratchpad, problem)
    problem = problem.with_capacity(budget_spec.capacity_bytes)

    budget = Budget(time_limit_s=args.time_limit_s)
    notice = "memplan optimize: stopping, keeping the best plan so far (Ctrl-C again aborts)"
    with StopOnSigint(budget.stop_event, notice):
        result = solver.solve(problem, budget)
    interrupted = budget.interrupted()

    written = _write_outputs(args, result, problem, loaded, budget_spec)
    summary = summarize(result, problem, loaded, budget_spec, interrupted, written)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    if args.map and result.plan is not None:
        from memplan.plan import memory_map

        print(memory_map(result.plan, problem.graph, problem.capacity_bytes))
    if result.plan is not None:
        return EXIT_OK
    why = result.message or f"solver {result.solver!r} found no plan"
    print(f"memplan optimize: {result.status.value}: {why}", file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_NO_PLAN


def _write_outputs(
    args: argparse.Namespace,
    result: SolveResult,
    problem: Problem,
    loaded: LoadedModel,
    budget_spec: ResolvedBudget,
) -> dict[str, str]:
    """Write -o/--csv/--plot for a result with a plan; nothing is written without one."""
    if result.plan is None:
        return {}
    from memplan.io.planfile import write_plan_csv, write_plan_file

    written: dict[str, str] = {}
    if args.output:
        write_plan_file(
            args.output,
            result,
            problem,
            model_sha256=loaded.sha256,
            model_file=loaded.path,
            budget=budget_spec,
        )
        written["plan"] = str(args.output)
    if args.csv:
        write_plan_csv(args.csv, problem.graph, result.plan)
        written["csv"] = str(args.csv)
    if args.plot:
        _write_plot(args.plot, problem, result, wants_timeline(args))
        written["plot"] = str(args.plot)
    return written


def _write_plot(path: str, problem: Problem, result: SolveResult, timeline: bool) -> None:
    import io

    from memplan.io.files import atomic_write_bytes

    assert result.plan is not None
    fig = plan_figure(problem, result.plan, timeline)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lower().lstrip("."), dpi=120)
    atomic_write_bytes(path, buffer.getvalue())


def summarize(
    result: SolveResult,
    problem: Problem,
    loaded: LoadedModel,
    budget_spec: ResolvedBudget,
    interrupted: bool = False,
    written: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The optimize summary as a JSON-ready dictionary (sizes in bytes, times in seconds)."""
    graph = problem.graph
    return {
        "model": {
            "name": graph.name,
            "file": str(loaded.path) if loaded.path is not None else None,
            "sha256": loaded.sha256,
            "ops": graph.num_ops,
            "tensors": graph.num_tensors,
        },
        "accelerator": problem.accelerator.name,
        "alignment_bytes": problem.alignment_bytes,
        "scope": problem.scope.value,
        "budget": {
            "spec": budget_spec.spec,
            "capacity_bytes": problem.capacity_bytes,
            "note": budget_spec.note,
        },
        "min_resident_bytes": problem.min_resident_bytes,
        **result.to_dict(),
        "interrupted": interrupted,
        "written": dict(written or {}),
    }


def _b(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n} B" if abs(n) < 1024 else f"{format_bytes(n)} ({n:,} B)"


def _budget_text(budget: dict[str, Any]) -> str:
    spec, note = str(budget["spec"]), str(budget["note"])
    if note.upper().startswith(spec.strip().upper()):
        return note
    return f"{spec} ({note})"


def format_summary(summary: dict[str, Any]) -> str:
    """The text form of :func:`summarize`'s dictionary."""
    from memplan.cost import Cost

    model, budget, cost = summary["model"], summary["budget"], summary["cost"]
    options = ", ".join(f"{k}={v}" for k, v in summary["options"].items())
    lines = [
        f"model        {model['name']} ({model['ops']} ops, {model['tensors']} tensors)"
        + (f" from {model['file']}" if model["file"] else ""),
        f"accelerator  {summary['accelerator']} (alignment {summary['alignment_bytes']} B), "
        f"scope {summary['scope']}",
        f"scratchpad   {_b(budget['capacity_bytes'])} = {_budget_text(budget)}; "
        f"MR = {_b(summary['min_resident_bytes'])}",
        f"solver       {summary['solver']} ({options})",
        f"status       {summary['status']}"
        + (" (interrupted by Ctrl-C)" if summary["interrupted"] else ""),
    ]
    if cost is not None:
        lines += [
            f"non-compulsory traffic  {_b(cost['non_compulsory_bytes'])}",
            f"compulsory traffic      {_b(cost['compulsory_bytes'])}",
            f"total traffic           {_b(cost['traffic_bytes'])} (loads "
            f"{format_bytes(cost['loaded_bytes'])}, stores {format_bytes(cost['stored_bytes'])}, "
            f"streamed weights {format_bytes(cost['streamed_weight_bytes'])})",
            f"peak                    {_b(cost['peak_bytes'])} (max live "
            f"{format_bytes(cost['max_live_bytes'])})",
            f"latency                 {Cost.from_dict(cost).latency_text(4)}",
            f"energy                  {cost['energy_j'] * 1e3:.5f} mJ",
        ]
    gap = summary["gap"]
    lines += [
        (
            "lower bound             none proven (heuristic solver)"
            if summary["lower_bound_bytes"] is None
            else f"lower bound             {_b(summary['lower_bound_bytes'])} non-compulsory"
            + ("" if gap is None else f", gap {gap:.1%}")
        ),
        f"wall time               {summary['wall_s']:.3f} s",
    ]
    if summary["message"]:
        lines.append(f"message                 {summary['message']}")
    for what, path in summary["written"].items():
        lines.append(f"wrote {what:<5} {path}")
    return "\n".join(lines)


def main_exit_codes() -> dict[str, int]:
    """The exit codes of ``optimize`` by meaning (for documentation and tests)."""
    return {
        "plan found": EXIT_OK,
        "no plan": EXIT_NO_PLAN,
        "bad input": EXIT_BAD_INPUT,
        "aborted": EXIT_INTERRUPTED,
    }
