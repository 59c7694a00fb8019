"""The argument parser of every ``memplan`` command: one-line errors.

argparse's own :meth:`~argparse.ArgumentParser.error` prints a usage block of 9 to 13
lines before the error, and an extra argument given to a sub-command is reported by
the top-level parser (``memplan: error: unrecognized arguments``). :class:`Parser`
(the class of the top-level parser, and so of every sub-parser argparse makes from it)
prints one line instead, naming the sub-command, what is wrong and where the help is::

    memplan optimize: error: --seed must be a whole number, got '1.5' (memplan optimize --help)

Exit code 2, as argparse's and as every other bad-input error (docs/cli.md).
"""

from __future__ import annotations

import argparse
import os
import re
import stat
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

#: The namespace attribute naming the innermost (sub-)parser that parsed the command line.
PARSER_ATTR = "_memplan_parser"

#: What argparse's ``invalid TYPE value`` means, by the type's name.
_TYPE_WORDS = {"int": "a whole number", "float": "a number"}

#: A value that starts with '-' is taken for an option; how to give it anyway.
_DASH_HINT = "to give one that starts with '-', join them with '=' ({flag}=-...)"


def _flag(name: str) -> str:
    """``-o/--output`` -> ``--output`` (the long form argparse lists last)."""
    return name.split("/")[-1]


def one_line(message: str) -> str:
    """argparse's error message, reworded to say what is wrong and how to fix it."""
    match = re.fullmatch(r"argument (\S+): (.*)", message, flags=re.DOTALL)
    if match is None:
        return " ".join(message.split())
    flag, problem = _flag(match.group(1)), match.group(2)
    invalid = re.fullmatch(r"invalid (\w+) value: (.*)", problem)
    if invalid is not None:
        kind = _TYPE_WORDS.get(invalid.group(1), "a valid value")
        return f"{flag} must be {kind}, got {invalid.group(2)}"
    choice = re.fullmatch(r"invalid choice: (.*?) \(choose from (.*)\)", problem)
    if choice is not None:
        return f"{flag} must be one of {choice.group(2)}, got {choice.group(1)}"
    if problem.startswith("expected one argument") and flag.startswith("-"):
        return f"{flag} needs a value; " + _DASH_HINT.format(flag=flag)
    problem = " ".join(problem.split())
    if flag.lower() in problem.lower():  # an ArgumentTypeError that names it already
        return problem
    if problem.startswith("must "):  # an ArgumentTypeError worded for "FLAG must ..."
        return f"{flag} {problem}"
    return f"{flag}: {problem}"


def input_file(what: str) -> Callable[[str], str]:
    """An argparse ``type`` for a file memplan reads; ``what`` names it in messages.

    The path is returned as given. An empty one is refused (``Path("")`` is the
    current folder, and was reported as ``.: is a directory``), and so is anything that
    exists and is not a regular file or a folder: reading a FIFO blocks until a writer
    comes, a device can be endless. A path that does not exist is left to the reader
    (a model may be a workload name, an accelerator a preset name); so is a folder,
    which each reader names in its own words.
    """

    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"empty path given for {what}; give a file name")
        try:
            mode = os.stat(text).st_mode
        except (OSError, ValueError):  # missing, a name too long, a NUL: the reader says
            return text
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            return text
        from memplan.io.files import file_kind

        raise argparse.ArgumentTypeError(
            f"{what} {text}: is {file_kind(mode)}; memplan reads regular files only "
            "(reading a FIFO or a device can block forever)"
        )

    check.__name__ = what  # argparse's fallback message names the type
    return check


class CommaList(argparse.Action):
    """A comma-separated list option that may be given more than once: the lists join.

    argparse keeps only the last value of a repeated option, so ``--budgets MR
    --budgets MH`` ran MH alone without a word. With this action it runs both, as
    ``--budgets MR,MH`` does; the first occurrence replaces the default.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        """Store the value, joined after the earlier occurrences' (not the default)."""
        given: set[str] = namespace.__dict__.setdefault("_memplan_lists_given", set())
        earlier = getattr(namespace, self.dest) if self.dest in given else ""
        given.add(self.dest)
        setattr(namespace, self.dest, ",".join(part for part in (earlier, str(values)) if part))


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (see the module docstring)."""

    def error(self, message: str) -> NoReturn:
        """Print one line, ``PROG: error: MESSAGE (PROG --help)``, and exit with 2."""
        self.exit(2, f"{self.prog}: error: {one_line(message)} ({self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse, and remember the innermost parser that ran (for :meth:`parse_args`)."""
        parsed, extras = super().parse_known_args(args, namespace)
        if getattr(parsed, PARSER_ATTR, None) is None:  # a sub-parser set it first
            setattr(parsed, PARSER_ATTR, self)
        return parsed, extras

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        """Parse; extra arguments are reported by the sub-command that was given them."""
        parsed, extras = self.parse_known_args(args, namespace)
        innermost: Any = getattr(parsed, PARSER_ATTR, self)
        delattr(parsed, PARSER_ATTR)
        parsed.__dict__.pop("_memplan_lists_given", None)
        if extras:
            innermost.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed
