"""``memplan solvers``: the registered solvers, their options and what they need.

For each solver of the ``memplan.solvers`` entry points: whether it can be imported
now, the optional extra it needs (``pip install 'memplan[EXTRA]'``) and each option
with its type, default and help (from the solver dataclass's field metadata).
"""

from __future__ import annotations

import argparse
from typing import Any

from memplan.cli import EXIT_OK
from memplan.cli.common import print_json
from memplan.timing import OBJECTIVE_LATENCY


def add_parser(subparsers: Any) -> None:
    """Register ``solvers``."""
    parser = subparsers.add_parser(
        "solvers",
        help="list the installed solvers with their options",
        description=(
            "List every registered solver: whether it can be loaded now, the optional "
            "extra it needs, whether it supports 'optimize --objective latency', and its "
            "options (name, type, default, meaning and unit), "
            "which memplan optimize accepts as --option NAME=VALUE."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=run)


def solver_catalog() -> list[dict[str, Any]]:
    """One JSON-ready entry per registered solver."""
    from memplan.errors import MemplanError
    from memplan.options import describe_options
    from memplan.registry import capabilities_of
    from memplan.solver import available_solvers, required_extra, solver_class

    entries = []
    for name in available_solvers():
        extra = required_extra(name)
        entry: dict[str, Any] = {"name": name, "extra": extra}
        try:
            cls = solver_class(name)
        except MemplanError as error:
            entry.update(importable=False, error=str(error), doc="", options=[], capabilities=[])
        else:
            doc = (cls.__doc__ or "").strip().splitlines()
            entry.update(
                importable=True,
                error=None,
                doc=doc[0] if doc else "",
                capabilities=sorted(capabilities_of(cls)),
                options=[
                    {"name": o.name, "type": o.type_name, "default": o.default, "help": o.help}
                    for o in describe_options(cls)
                ],
            )
        entries.append(entry)
    return entries


def run(args: argparse.Namespace) -> int:
    """Run ``memplan solvers``; return the exit code."""
    entries = solver_catalog()
    if args.json:
        print_json(entries)
        return EXIT_OK
    if not entries:
        print("no solvers are registered; reinstall memplan (pip install -e .)")
        return EXIT_OK
    for entry in entries:
        extra = f", needs memplan[{entry['extra']}]" if entry["extra"] else ""
        state = "available" if entry["importable"] else "NOT importable"
        print(f"{entry['name']}: {state}{extra}" + (f" - {entry['doc']}" if entry["doc"] else ""))
        if not entry["importable"]:
            print(f"    {entry['error']}")
        if OBJECTIVE_LATENCY in entry["capabilities"]:
            print("    supports memplan optimize --objective latency")
        for option in entry["options"]:
            print(
                f"    --option {option['name']}=<{option['type']}> (default {option['default']!r})"
            )
            if option["help"]:
                print(f"        {option['help']}")
    return EXIT_OK
