"""The one error hierarchy of memplan.

Every error a user can cause derives from :class:`MemplanError`. The CLI turns any of
them into one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
Messages name the file, node, tensor, field or line at fault and say how to fix it.
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


class InfeasibleError(MemplanError):
    """The caller asked for something that cannot exist (e.g. a capacity below M_R)."""


class InvalidPlanError(MemplanError):
    """A plan fails validation, or a plan file does not match the model it is used with."""


class InputFormatError(MemplanError):
    """A file memplan reads (JSON, CSV, TOML) is malformed; the message names the line."""
