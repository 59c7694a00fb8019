"""``memplan compare``: several solvers on one model at one or more budgets, as a table.

It is a one-workload ``memplan bench`` without a results file: the same cells, each in
its own process under the time limit (a hung solver is killed and shown as timeout).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register ``compare``."""
    from memplan.cli.argparser import CommaList
    from memplan.cli.bench import add_solver_run_arguments
    from memplan.cli.common import add_model_arguments, add_problem_arguments

    parser = subparsers.add_parser(
        "compare",
        help="compare solvers on one model at one or more scratchpad budgets",
        description=(
            "Run each solver at each budget in its own process (killed at time limit + grace) "
            "and print non-compulsory traffic, the change against the baseline, bound, gap "
            "and time. Example: memplan compare model.onnx --solvers greedy,ilp "
            "--scratchpad MR,MH,MP"
        ),
    )
    add_model_arguments(parser)
    add_problem_arguments(parser)
    group = parser.add_argument_group("comparison")
    add_solver_run_arguments(group, per="budget")
    group.add_argument(
        "--scratchpad",
        action=CommaList,
        default="MR,MH,MP",
        metavar="SPEC,...",
        help="comma-separated budgets: MR, MH, MP, sizes (512KiB) or 0.5*MP; default: MR,MH,MP; "
        "repeatable (the lists join)",
    )
    group.add_argument(
        "--baseline",
        default=None,
        metavar="SOLVER",
        help=(
            "solver the others are compared against: one of --solvers as written "
            "(greedy[order=model]) or a solver name only one of them has; default: the "
            "first of --solvers"
        ),
    )
    group.add_argument("--json", action="store_true", help="print the result rows as JSON")
    group.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (on standard error)"
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the comparison and print it; on Ctrl-C, print the rows that finished."""
    from memplan.accelerator import load_accelerator
    from memplan.bench.harness import Workload, build_cells, run_cells_local
    from memplan.bench.specs import check_solvers, split_solver_options, split_specs
    from memplan.cli import EXIT_INTERRUPTED, EXIT_NO_PLAN, EXIT_OK
    from memplan.cli.bench import (
        baseline_label,
        execute_with_progress,
        setting,
        split_budgets,
        warn_oversubscribed,
    )
    from memplan.cli.common import err_console, load_model_from_args
    from memplan.cli.plancommon import sigterm_as_ctrl_c
    from memplan.errors import ConfigError
    from memplan.problem import Scope
    from memplan.units import check_seconds

    time_limit_s = setting(args, "time_limit_s")
    check_seconds("--time-limit", time_limit_s)
    check_seconds("--grace", setting(args, "grace_s"), allow_zero=True)
    check_seconds("--warmup-limit", setting(args, "warmup_limit_s"))
    if setting(args, "jobs") < 1:
        raise ConfigError(f"--jobs must be at least 1, got {setting(args, 'jobs')}")
    warn_oversubscribed(setting(args, "jobs"))
    solvers = split_specs(setting(args, "solvers"))
    budgets = split_budgets(args.scratchpad, "--scratchpad")
    options = split_solver_options(args.option, solvers)
    baseline = baseline_label(args.baseline, solvers, options)
    check_solvers(solvers, options)
    loaded = load_model_from_args(args)
    name = Path(args.model).stem
    workload = Workload(name, str(args.model), loaded.sha256, loaded.graph)
    cells = build_cells(
        [workload],
        scopes=[Scope.parse(args.scope)],
        budgets=budgets,
        solvers=solvers,
        options=options,
        time_limit_s=time_limit_s,
        accelerator=load_accelerator(args.accelerator),
        dtype_bytes=args.dtype_bytes,
    )
    by_key: dict[str, dict[str, Any]] = {}

    def execute(run: Any, on_row: Any, on_start: Any) -> int:
        def record(row: dict[str, Any]) -> None:
            by_key[row["key"]] = row
            on_row(row)

        run_cells_local(
            run.pending,
            record,
            jobs=setting(args, "jobs"),
            grace_s=setting(args, "grace_s"),
            warmup_limit_s=setting(args, "warmup_limit_s"),
            on_start=on_start,
        )
        return len(by_key)

    try:
        with sigterm_as_ctrl_c():
            # a progress bar on standard error: 4 solvers x 3 budgets at the default 60 s
            # ran for up to 12 minutes without a word
            execute_with_progress(SimpleNamespace(pending=cells), execute, args.quiet, "compare")
    except KeyboardInterrupt:
        # The finished rows are results like any others: show them, then say what is missing.
        _show(
            [by_key[c.key] for c in cells if c.key in by_key],
            baseline,
            args.json,
        )
        err_console.print(
            f"memplan compare: interrupted; {len(by_key)} of {len(cells)} runs finished "
            "(shown above), the others were stopped"
        )
        return EXIT_INTERRUPTED
    rows = [by_key[cell.key] for cell in cells]
    _show(rows, baseline, args.json)
    return (
        EXIT_OK
        if any(r.get("non_compulsory_bytes") is not None and r["status"] != "error" for r in rows)
        else EXIT_NO_PLAN
    )


def _show(rows: list[dict[str, Any]], baseline: str, as_json: bool) -> None:
    """Print the rows as a table, or as JSON for tools."""
    from memplan.bench.terminal import compare_table
    from memplan.cli.common import console, print_json

    if as_json:
        print_json(rows)
    elif rows:
        console.print(compare_table(rows, baseline))
