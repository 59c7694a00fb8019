"""``memplan score``: validate a plan file against a model, then print its cost.

::

    memplan score model.onnx plan.json [--json]

The cost is recomputed by the cost model (traffic, peak, latency, energy) with the
plan file's accelerator and scope unless overridden; the output says whether it
matches the cost recorded in the file. Exit codes: 0 valid and scored, 1 invalid
(nothing is scored; run memplan validate for every violation), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from memplan.cli import EXIT_NO_PLAN, EXIT_OK
from memplan.cli.common import add_model_arguments, print_json
from memplan.cli.plancommon import (
    add_plan_problem_arguments,
    load_plan_problem,
)


def add_parser(subparsers: Any) -> None:
    """Register ``score``."""
    parser = subparsers.add_parser(
        "score",
        help="validate a plan file, then print its cost (traffic, peak, latency, energy)",
        description=(
            "Validate PLAN against MODEL and print its cost: non-compulsory and compulsory "
            "DRAM traffic (bytes), peak scratchpad bytes, max live bytes, latency (seconds) "
            "and energy (joules). Exit codes: 0 scored, 1 invalid plan, 2 bad input."
        ),
    )
    add_model_arguments(parser, plan_records=True)
    add_plan_problem_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the cost as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``memplan score``; return the exit code."""
    from memplan.cost import evaluate
    from memplan.validate import validate

    given = load_plan_problem(args)
    for note in given.notes:
        print(f"memplan {args.command}: note: {note}", file=sys.stderr)
    problem, planfile = given.problem, given.planfile
    violations = validate(problem, planfile.plan)
    if violations:
        print(
            f"memplan score: {args.plan} is invalid ({len(violations)} violation(s)), first: "
            f"{violations[0]}; run memplan validate to list them all",
            file=sys.stderr,
        )
        return EXIT_NO_PLAN
    cost = evaluate(problem, planfile.plan)
    matches = planfile.cost == cost if planfile.cost is not None else None
    if args.json:
        print_json(
            {
                "plan": str(args.plan),
                "model": problem.graph.name,
                "capacity_bytes": problem.capacity_bytes,
                "scope": problem.scope.value,
                "overrides": list(given.overrides),
                "cost": cost.to_dict(),
                "matches_recorded": matches,
            }
        )
        return EXIT_OK
    print(
        f"{args.plan}: valid plan for {problem.graph.name!r} "
        f"(solver {planfile.solver}, status {planfile.status.value}, scratchpad "
        f"{problem.capacity_bytes} B, scope {problem.scope.value})"
    )
    print(cost.to_text())
    if matches is not None:
        print(
            "recorded cost: matches"
            if matches
            else "recorded cost: differs (the model, accelerator or scope changed)"
        )
    return EXIT_OK
