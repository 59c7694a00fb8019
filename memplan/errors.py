"""The one error hierarchy of memplan.

Every error a user can cause derives from :class:`MemplanError`. The CLI turns any of
them into one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
Messages name the file, node, tensor, field or line at fault and say how to fix it.

:class:`SolverContractError` stands apart: it reports a bug in a solver (a result that
breaks the contract of :mod:`memplan.solver`), not bad input, so it is no
:class:`MemplanError` and is never turned into a one-line user message. The same breach
by a plug-in the user named (``--solver module:Class``) is caught by the command that
ran it (:func:`memplan.solver.checked_result`) and is a :class:`PluginResultError`.
"""

from __future__ import annotations


class MemplanError(Exception):
    """Base class of every error memplan raises on purpose."""


class GraphError(MemplanError):
    """A scheduling graph breaks an IR invariant (cycle, two producers, bad size, ...)."""


class OnnxImportError(MemplanError):
    """An ONNX model cannot be imported (unreadable, unknown shape, unsupported op, ...)."""


class ConfigError(MemplanError):
    """A bad option, flag, accelerator spec or budget; the message lists allowed values."""


class OutputFileError(MemplanError):
    """An output path must not or cannot be written (a device, read-only, no folder, ...)."""


class InvalidPlanError(MemplanError):
    """A plan fails validation, or a plan file does not match the model it is used with."""


class InputFormatError(MemplanError):
    """A file memplan reads (JSON, CSV, TOML) is malformed; the message names the line."""


class PluginResultError(MemplanError):
    """A solver plug-in returned a result that breaks the contract (not a SolveResult,
    an invalid plan, a cost or a claim its plan does not back): a bug in a plug-in that
    builds its result itself rather than with :func:`memplan.solver.make_result`."""


class SolverContractError(AssertionError):
    """A solver broke the result contract (a bug in the solver, not a user error).

    Raised by :func:`memplan.solver.make_result` for a lower bound above the plan's
    value, a negative bound, or OPTIMAL without a bound equal to the value. It is
    deliberately *not* a :class:`MemplanError`: the CLI shows it as a crash with a
    traceback, and the conformance suite (an ``AssertionError`` catcher) fails on it.
    """
