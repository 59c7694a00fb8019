"""``memplan solvers``: the registered plug-ins, whether they run here, and their options.

For each solver (``memplan.solvers`` entry points) and each allocator
(``memplan.allocators``): whether it can run now (its class loads *and* every module
its optional extra installs imports: :func:`memplan.registry.missing_requirements`),
the reason when it cannot, the extra it needs (``pip install 'memplan[EXTRA]'``) and
each option with its type, default and help (from the plug-in dataclass's fields).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from typing import Any

from memplan.cli import EXIT_OK
from memplan.cli.common import print_json
from memplan.timing import OBJECTIVE_LATENCY


def add_parser(subparsers: Any) -> None:
    """Register ``solvers``."""
    parser = subparsers.add_parser(
        "solvers",
        help="list the installed solvers and allocators with their options",
        description=(
            "List every registered solver and allocator: whether it can run now (its "
            "optional extra's modules really import), why not when it cannot, the extra "
            "it needs, whether a solver supports 'optimize --objective latency', and its "
            "options (name, type, default, meaning and unit), which memplan optimize "
            "accepts as --option NAME=VALUE."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=run)


def plugin_catalog() -> list[dict[str, Any]]:
    """One JSON-ready entry per registered plug-in, solvers first."""
    from memplan.options import describe_options
    from memplan.registry import (
        PluginKind,
        available,
        capabilities_of,
        missing_requirements,
        plugin_class,
        required_extra,
    )

    entries = []
    for kind in PluginKind:
        for name in available(kind):
            missing = missing_requirements(kind, name)
            entry: dict[str, Any] = {
                "kind": kind.noun,
                "name": name,
                "extra": required_extra(kind, name),
                "importable": missing is None,
                "error": missing,
                "doc": "",
                "capabilities": [],
                "options": [],
            }
            if missing is None:
                cls = plugin_class(kind, name)
                # The summary is the docstring's first paragraph, which may wrap.
                first_paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
                entry["doc"] = " ".join(first_paragraph.split())
                entry["capabilities"] = sorted(capabilities_of(cls))
                if dataclasses.is_dataclass(cls):
                    entry["options"] = [
                        {"name": o.name, "type": o.type_name, "default": o.default, "help": o.help}
                        for o in describe_options(cls)
                    ]
            entries.append(entry)
    return entries


def run(args: argparse.Namespace) -> int:
    """Run ``memplan solvers``; return the exit code."""
    entries = plugin_catalog()
    if args.json:
        print_json(entries)
        return EXIT_OK
    if not entries:
        print("no solvers are registered; reinstall memplan (pip install -e .)")
        return EXIT_OK
    headings = {
        "solver": "solvers (memplan optimize --solver NAME --option NAME=VALUE):",
        "allocator": "allocators (memplan allocate --algorithm NAME):",
    }
    kind = None
    for entry in entries:
        if entry["kind"] != kind:
            kind = entry["kind"]
            print(("\n" if kind != entries[0]["kind"] else "") + headings[kind])
        extra = f", needs memplan[{entry['extra']}]" if entry["extra"] else ""
        state = "available" if entry["importable"] else "NOT available"
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
                print(
                    textwrap.fill(
                        option["help"], 80, initial_indent=" " * 8, subsequent_indent=" " * 8
                    )
                )
    return EXIT_OK
