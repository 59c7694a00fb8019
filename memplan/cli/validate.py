"""``memplan validate``: check a plan file against a model, listing every violation.

::

    memplan validate model.onnx plan.json [--json] [--per-kind N|all]

The plan file must have been made for this model (same sha256). The accelerator,
scope and capacity are the ones the plan file records unless ``--accelerator``,
``--scope`` or ``--scratchpad`` override them. Exit codes: 0 valid, 1 invalid
(every violation is counted, and the first ``--per-kind`` (20) of each kind are listed:
kind and message), 2 bad input (unreadable or malformed file, a plan for another model).
Recorded results that contradict each other (a lower bound above the plan's recorded
cost) are a warning on stderr, not a verdict on the plan.
"""

from __future__ import annotations

import argparse
from typing import Any

from memplan.cli import EXIT_NO_PLAN, EXIT_OK
from memplan.cli.common import add_model_arguments, print_json, result_on_stdout
from memplan.cli.plancommon import (
    add_per_kind_argument,
    add_plan_problem_arguments,
    load_plan_problem,
    print_notes,
    report_fields,
    unlisted_lines,
)
from memplan.units import format_bytes


def add_parser(subparsers: Any) -> None:
    """Register ``validate``."""
    parser = subparsers.add_parser(
        "validate",
        help="check a plan file against a model and list every violation",
        description=(
            "Check PLAN (written by memplan optimize -o) against MODEL with the reference "
            "validator: the order respects every dependency, every op's in-scope inputs and "
            "outputs are on chip when it runs, activations are produced once and loaded only "
            "after a store, offsets are aligned and inside the scratchpad, and no two "
            "residencies share bytes at one step. Every violation is counted; the first "
            "--per-kind of each kind are listed. Exit codes: 0 valid, 1 invalid, 2 bad input."
        ),
    )
    add_model_arguments(parser, plan_records=True)
    add_plan_problem_arguments(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the verdict and violations as JSON"
    )
    add_per_kind_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``memplan validate``; return the exit code."""
    from memplan.validate import validate_report

    given = load_plan_problem(args)
    print_notes(args.command, given)
    problem, plan = given.problem, given.planfile.plan
    report = validate_report(problem, plan, args.per_kind)
    with result_on_stdout():  # a reader that leaves does not change the verdict
        if args.json:
            print_json(
                {
                    "plan": str(args.plan),
                    "model": problem.graph.name,
                    "valid": report.valid,
                    "capacity_bytes": problem.capacity_bytes,
                    "alignment_bytes": problem.alignment_bytes,
                    "scope": problem.scope.value,
                    "overrides": list(given.overrides),
                    "warnings": list(given.warnings),
                    **report_fields(problem, report),
                }
            )
        else:
            where = (
                f"model {problem.graph.name!r}, scratchpad {format_bytes(problem.capacity_bytes)} "
                f"({problem.capacity_bytes} B), alignment {problem.alignment_bytes} B, "
                f"scope {problem.scope.value}"
                + (f"; overridden: {', '.join(given.overrides)}" if given.overrides else "")
            )
            if not report.valid:
                kinds = ", ".join(f"{n:,} {kind.value}" for kind, n in report.counts)
                print(f"{args.plan}: INVALID: {report.total:,} violation(s): {kinds} ({where})")
                for v in report.listed:
                    print(f"  [{v.kind.value}] {v.message}")
                for line in unlisted_lines(report):
                    print(line)
            else:
                print(
                    f"{args.plan}: valid ({len(plan.order)} steps, {len(plan.residencies)} "
                    f"residencies; {where})"
                )
    return EXIT_OK if report.valid else EXIT_NO_PLAN
