"""``memplan compare``: several solvers on one model at one or more budgets, as a table.

It is a one-workload ``memplan bench`` without a results file: the same cells, each in
its own process under the time limit (a hung solver is killed and shown as timeout).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from memplan.bench.cells import DEFAULT_GRACE_S


def add_parser(subparsers: Any) -> None:
    """Register ``compare``."""
    from memplan.cli.common import add_model_arguments, add_problem_arguments

    parser = subparsers.add_parser(
        "compare",
        help="compare solvers on one model at one or more scratchpad budgets",
        description=(
            "Run each solver at each budget in its own process (killed at time limit + grace) "
            "and print non-compulsory traffic, the change against the baseline, peak, bound "
            "and time. Example: memplan compare model.onnx --solvers greedy,ilp "
            "--scratchpad MR,MH,MP"
        ),
    )
    add_model_arguments(parser)
    add_problem_arguments(parser)
    group = parser.add_argument_group("comparison")
    group.add_argument(
        "--solvers",
        default="greedy",
        metavar="A,B",
        help="comma-separated solver names (or module:Class paths); default: greedy",
    )
    group.add_argument(
        "--scratchpad",
        default="MR,MH,MP",
        metavar="SPEC,...",
        help="comma-separated budgets: MR, MH, MP, sizes (512KiB) or 0.5*MP; default: MR,MH,MP",
    )
    group.add_argument(
        "--time-limit",
        dest="time_limit_s",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="each solver's time budget per budget, in seconds; default: 60",
    )
    group.add_argument(
        "--grace",
        dest="grace_s",
        type=float,
        default=DEFAULT_GRACE_S,
        metavar="SECONDS",
        help=(
            "seconds past the time limit before a solver's process is killed; "
            f"default: {DEFAULT_GRACE_S:g}"
        ),
    )
    group.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="SOLVER.NAME=VALUE",
        help="a solver option, e.g. greedy.order=min-peak (NAME=VALUE: every solver with it)",
    )
    group.add_argument(
        "-j", "--jobs", type=int, default=1, help="solves run at once (processes); default: 1"
    )
    group.add_argument(
        "--baseline",
        default=None,
        metavar="SOLVER",
        help="solver the others are compared against; default: the first of --solvers",
    )
    group.add_argument("--json", action="store_true", help="print the result rows as JSON")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run the comparison and print it."""
    from memplan.accelerator import load_accelerator
    from memplan.bench.harness import (
        Workload,
        build_cells,
        check_solvers,
        run_cells_local,
        split_solver_options,
    )
    from memplan.cli import EXIT_NO_PLAN, EXIT_OK
    from memplan.cli.bench import _split, print_wide
    from memplan.cli.common import load_model_from_args, print_json
    from memplan.errors import ConfigError
    from memplan.problem import Scope

    if args.time_limit_s <= 0:
        raise ConfigError(f"--time-limit must be > 0 seconds, got {args.time_limit_s}")
    solvers = _split(args.solvers, "--solvers")
    budgets = _split(args.scratchpad, "--scratchpad")
    options = split_solver_options(args.option, solvers)
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
        time_limit_s=args.time_limit_s,
        accelerator=load_accelerator(args.accelerator),
    )
    by_key: dict[str, dict[str, Any]] = {}
    run_cells_local(
        cells, lambda row: by_key.__setitem__(row["key"], row), jobs=args.jobs, grace_s=args.grace_s
    )
    rows = [by_key[cell.key] for cell in cells]
    if args.json:
        print_json(rows)
    else:
        print_wide(compare_table(rows, args.baseline or solvers[0]))
    return (
        EXIT_OK
        if any(r.get("non_compulsory_bytes") is not None and r["status"] != "error" for r in rows)
        else EXIT_NO_PLAN
    )


def compare_table(rows: list[dict[str, Any]], baseline: str) -> Any:
    """A rich table: one line per (budget, solver)."""
    from rich.table import Table
    from rich.text import Text

    from memplan.bench.rows import has_plan
    from memplan.units import format_bytes

    first = rows[0]
    table = Table(
        title=Text(
            f"{first['workload']} ({first['graph_ops']} ops, scope {first['scope']}): "
            f"MR {format_bytes(first['mr_bytes'])}, MP {format_bytes(first['mp_bytes'])}"
        )
    )
    for header in (
        "budget",
        "capacity",
        "solver",
        "status",
        "non-compulsory",
        f"vs {baseline}",
        "peak",
        "bound",
        "gap",
        "time",
        "message",
    ):
        table.add_column(
            header,
            justify="left" if header in ("budget", "solver", "status", "message") else "right",
        )
    base = {r["budget"]: r for r in rows if r["solver"] == baseline}
    for row in rows:
        versus = "-"
        ref = base.get(row["budget"])
        if row["solver"] != baseline and ref is not None and has_plan(ref) and has_plan(row):
            ref_value, value = ref["non_compulsory_bytes"], row["non_compulsory_bytes"]
            if ref_value:
                versus = f"{100.0 * (value - ref_value) / ref_value:+.1f}%"
            else:
                versus = "trivial" if value == 0 else "+inf"
        plan = has_plan(row)
        bound = row.get("lower_bound_bytes")
        gap = row.get("gap")
        time_s = row.get("solve_wall_s")
        cells = (
            row["budget"],
            format_bytes(row["capacity_bytes"]),
            row["solver"],
            row["status"] + (" (killed)" if row.get("killed") else ""),
            format_bytes(row["non_compulsory_bytes"]) if plan else "-",
            versus,
            format_bytes(row["peak_bytes"]) if plan else "-",
            format_bytes(bound) if bound is not None else "-",
            f"{100 * gap:.1f}%" if gap is not None else "-",
            f"{time_s:.3g} s" if time_s is not None else "-",
            " ".join(str(row.get("message", "")).split())[:80],
        )
        table.add_row(*map(Text, cells))
    return table
