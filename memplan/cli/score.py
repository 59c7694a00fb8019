"""``memplan score``: validate a plan file against a model, then print its cost.

::

    memplan score model.onnx plan.json [--json]

The cost is recomputed by the cost model (traffic, peak, latency, energy) with the
plan file's accelerator and scope unless overridden; the output says whether it
matches the cost recorded in the file, and if not, in which fields and why (an
override of the accelerator or scope, or a file edited or written by another cost
model). Recorded results that contradict each other (a lower bound above the plan's
cost) are a warning on stderr. Exit codes: 0 valid and scored, 1 invalid
(nothing is scored; run memplan validate for every violation), 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from typing import TYPE_CHECKING, Any

from memplan import __version__
from memplan.cli import EXIT_NO_PLAN, EXIT_OK
from memplan.cli.common import add_model_arguments, print_json, result_on_stdout
from memplan.cli.plancommon import (
    PlanInput,
    add_plan_problem_arguments,
    load_plan_problem,
    print_notes,
    report_fields,
)

if TYPE_CHECKING:
    from memplan.cost import Cost
    from memplan.validate import ValidationReport


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
    from memplan.validate import validate_report

    given = load_plan_problem(args)
    problem, planfile = given.problem, given.planfile
    report = validate_report(problem, planfile.plan)
    if not report.valid:
        print_notes(args.command, given)
        print(
            f"memplan score: {args.plan} is invalid ({report.total} violation(s)), first: "
            f"{report.listed[0]}; run memplan validate to list them",
            file=sys.stderr,
        )
        if args.json:  # a JSON reader gets a document on every outcome, not an empty stdout
            with result_on_stdout():
                print_json(_json_document(args, given, None, None, report))
        return EXIT_NO_PLAN
    cost = evaluate(problem, planfile.plan)
    bound = planfile.lower_bound_bytes
    if (
        not given.warnings
        and not given.overrides
        and bound is not None
        and bound > cost.non_compulsory_bytes
    ):
        given = dataclasses.replace(
            given,
            warnings=(
                f"{args.plan}: recorded lower_bound_bytes {bound} is above this plan's "
                f"non-compulsory cost {cost.non_compulsory_bytes} B, which a bound on every "
                "valid plan cannot be: the file was edited or is corrupt, so its bound and "
                "gap are not to be trusted",
            ),
        )
    print_notes(args.command, given)
    differences = (
        recorded_cost_differences(planfile.cost, cost) if planfile.cost is not None else None
    )
    with result_on_stdout():
        if args.json:
            print_json(_json_document(args, given, cost, differences, report))
            return EXIT_OK
        print(
            f"{args.plan}: valid plan for {problem.graph.name!r} "
            f"(solver {planfile.solver}, status {planfile.status.value}, scratchpad "
            f"{problem.capacity_bytes} B, scope {problem.scope.value})"
        )
        print(cost.to_text())
        if differences is not None:
            print(_recorded_cost_line(differences, given.overrides, planfile.created_by))
    return EXIT_OK


def _json_document(
    args: argparse.Namespace,
    given: PlanInput,
    cost: Cost | None,
    differences: list[tuple[str, Any, Any]] | None,
    report: ValidationReport,
) -> dict[str, Any]:
    """What ``score --json`` prints: the cost of a valid plan, or (``cost`` None) the
    violations of an invalid one (the first of each kind, and the count of each)."""
    problem = given.problem
    return {
        "plan": str(args.plan),
        "model": problem.graph.name,
        "valid": report.valid,
        "capacity_bytes": problem.capacity_bytes,
        "scope": problem.scope.value,
        "overrides": list(given.overrides),
        "cost": None if cost is None else cost.to_dict(),
        "matches_recorded": None if differences is None else not differences,
        "recorded_differs_in": [name for name, _, _ in differences or ()],
        "warnings": list(given.warnings),
        **report_fields(problem, report),
    }


#: The cost fields an --accelerator override changes (its timing and energy figures);
#: a --scope override changes every field, --scratchpad none.
_ACCELERATOR_FIELDS = frozenset(
    {"latency_s", "energy_j", "timing_model", "serial_latency_s", "overlap_latency_s"}
)


def recorded_cost_differences(recorded: Cost, computed: Cost) -> list[tuple[str, Any, Any]]:
    """The fields where ``recorded`` differs from ``computed``: (name, recorded, computed).

    Byte counts and the timing model must be equal; latencies and energy equal to a
    relative 1e-9 (the same plan gives the same floats, but a file may have been
    written on another platform). A per-model latency the recorded cost lacks (a file
    written before both were recorded) is not compared.
    """
    from memplan.cost import Cost

    differences = []
    for item in dataclasses.fields(Cost):
        mine, theirs = getattr(recorded, item.name), getattr(computed, item.name)
        if mine is None or theirs is None:
            continue
        if isinstance(mine, float) or isinstance(theirs, float):
            same = math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-300)
        else:
            same = mine == theirs
        if not same:
            differences.append((item.name, mine, theirs))
    return differences


def _recorded_cost_line(
    differences: list[tuple[str, Any, Any]], overrides: tuple[str, ...], created_by: str
) -> str:
    """The text line saying whether the recorded cost matches, and if not, why: an
    override of what the cost depends on, or else a file that was edited (or written by
    a memplan whose cost model differs)."""
    if not differences:
        return "recorded cost: matches"
    explained: frozenset[str] = frozenset()
    if "--accelerator" in overrides:
        explained = _ACCELERATOR_FIELDS
    if "--scope" in overrides:
        explained = frozenset(name for name, _, _ in differences)
    unexplained = [d for d in differences if d[0] not in explained]
    if not unexplained:
        changed = [flag for flag in ("--accelerator", "--scope") if flag in overrides]
        return (
            f"recorded cost: differs in {_shown(differences)}: it was computed for the plan "
            f"file's own accelerator and scope, and this score overrides {' and '.join(changed)}"
        )
    this = f"memplan {__version__}"
    why = (
        f"the file was edited after it was written (by {this}, this version)"
        if created_by == this
        else f"the file was edited, or {created_by or 'the memplan that wrote it'} has "
        f"another cost model than {this}"
    )
    return (
        f"recorded cost: differs in {_shown(unexplained)}, which no override explains: {why}; "
        "the cost above is the one computed now"
    )


def _shown(differences: list[tuple[str, Any, Any]]) -> str:
    """``name (recorded X, computed Y)`` for the first three differences."""
    shown = ", ".join(
        f"{name} (recorded {mine:g}, computed {theirs:g})"
        if isinstance(mine, float) or isinstance(theirs, float)
        else f"{name} (recorded {mine}, computed {theirs})"
        for name, mine, theirs in differences[:3]
    )
    return shown + (f" and {len(differences) - 3} more" if len(differences) > 3 else "")
