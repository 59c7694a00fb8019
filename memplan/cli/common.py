"""Helpers shared by every sub-command that reads a model.

A command that reads a model calls :func:`add_model_arguments` and
:func:`add_problem_arguments` on its parser, then in its ``func``::

    loaded = load_model_from_args(args)        # LoadedModel: graph, path, sha256, report
    problem = problem_from_args(args, loaded)  # Problem with the accelerator's capacity

Commands that take ``--scratchpad`` resolve it with :func:`memplan.budgets.resolve_budget`
and :meth:`memplan.problem.Problem.with_capacity`. Output goes through :data:`console`
(stdout) and :data:`err_console` (stderr); :func:`print_json` writes machine-readable
results to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from memplan.accelerator import DEFAULT_PRESET, load_accelerator
from memplan.problem import Problem, Scope

if TYPE_CHECKING:
    from memplan.io.loading import LoadedModel

#: Rich console for human-readable output on stdout.
console = Console(highlight=False)
#: Rich console for warnings and progress on stderr.
err_console = Console(stderr=True, highlight=False)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``model`` and the ONNX import options to ``parser``."""
    parser.add_argument(
        "model",
        help=(
            "the model: an ONNX file (.onnx), a memplan graph JSON file, or a workload "
            "name from 'memplan graphs list' (e.g. light_densenet121)"
        ),
    )
    group = parser.add_argument_group("ONNX import")
    group.add_argument(
        "--input-shape",
        dest="input_shape",
        action="append",
        nargs="+",
        default=[],
        metavar="NAME:D1,D2,...",
        help=(
            "fix the shape of a graph input, in elements per dimension, e.g. "
            "input:1,3,224,224; several inputs separated by spaces or by repeating the flag "
            "(the flag takes every following word, so give the model path before it)"
        ),
    )
    group.add_argument(
        "--dim",
        action="append",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "give a symbolic dimension a size in elements, e.g. batch=1 "
            "(applies wherever the name appears); several separated by spaces or by "
            "repeating the flag"
        ),
    )
    group.add_argument(
        "--input-value",
        dest="input_value",
        action="append",
        nargs="+",
        default=[],
        metavar="NAME:V1,V2,...",
        help=(
            "fix the value of a small graph input (a sample rate, a flag, a size), e.g. "
            "sr:16000, so the shape computations and If branches that depend on it fold "
            "away; several separated by spaces or by repeating the flag"
        ),
    )
    group.add_argument(
        "--dtype-bytes",
        dest="dtype_bytes",
        type=int,
        default=None,
        metavar="N",
        help=(
            "bytes per element for every tensor, overriding the ONNX element types "
            "(e.g. 1 for an 8-bit accelerator); default: the size of each tensor's ONNX type"
        ),
    )
    group.add_argument(
        "--no-aliases",
        dest="aliases",
        action="store_false",
        help=(
            "keep view ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, inference "
            "Dropout) as ops with their own output buffers instead of aliasing their input"
        ),
    )


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scope`` and ``--accelerator`` to ``parser``."""
    group = parser.add_argument_group("problem")
    group.add_argument(
        "--scope",
        choices=[s.value for s in Scope],
        default=Scope.ACTIVATIONS.value,
        help=(
            "which tensors compete for the scratchpad: 'activations' (activations and graph "
            "inputs; weights stream from DRAM) or 'all' (weights too); default: activations"
        ),
    )
    group.add_argument(
        "--accelerator",
        default=DEFAULT_PRESET,
        metavar="NAME|FILE",
        help=(
            "accelerator preset (edge-npu, server-npu, unaligned) or a .toml/.json spec file "
            "giving scratchpad capacity (bytes), offset alignment (bytes), DRAM bandwidth "
            f"(bytes/s), MAC rate and energies; default: {DEFAULT_PRESET}"
        ),
    )


def _flatten(values: Any) -> list[str]:
    """Flatten ``action='append', nargs='+'`` lists (and tolerate plain strings)."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    out: list[str] = []
    for item in values:
        out.extend(_flatten(item))
    return out


def load_model_from_args(args: argparse.Namespace) -> LoadedModel:
    """Load ``args.model`` with the ONNX import options in ``args``.

    ``args.model`` is a model file (ONNX or memplan graph JSON) or, when no such file
    exists, a workload name of the catalog (``memplan graphs list``). A stored workload
    loads from its file, so its sha256 is the file's whichever way it is named.

    Raises:
        OnnxImportError: the file cannot be imported.
        ConfigError: the name is neither a file nor a workload (with close matches).
    """
    from memplan.errors import ConfigError
    from memplan.io.loading import load_model
    from memplan.onnx.importer import parse_dims, parse_input_shapes, parse_input_values

    dtype_bytes = getattr(args, "dtype_bytes", None)
    if dtype_bytes is not None and dtype_bytes < 1:
        raise ConfigError(f"--dtype-bytes must be a positive number of bytes, got {dtype_bytes}")
    return load_model(
        _model_source(args.model),
        input_shapes=parse_input_shapes(_flatten(getattr(args, "input_shape", None))),
        dims=parse_dims(_flatten(getattr(args, "dim", None))),
        input_values=parse_input_values(_flatten(getattr(args, "input_value", None))),
        dtype_bytes=dtype_bytes,
        aliases=getattr(args, "aliases", True),
    )


def _model_source(model: Any) -> Any:
    """A path for files and stored workloads, a ModelProto for generated workloads."""
    from memplan.errors import ConfigError

    name = str(model)
    path = Path(name)
    if not isinstance(model, str) or path.exists() or path.suffix.lower() in (".onnx", ".json"):
        return model
    if "/" in name or "\\" in name:
        return model  # a path that does not exist: the loader names it in its error
    from memplan.graphs import catalog

    try:
        info = catalog.get_workload(name)
    except ConfigError as error:
        raise ConfigError(
            f"model {name!r} is not a file, nor a catalog workload: {error}"
        ) from None
    return str(info.stored_file()) if not info.is_generated else catalog.load_model(name)


def problem_from_args(args: argparse.Namespace, loaded: LoadedModel) -> Problem:
    """The problem for ``loaded``'s graph with ``--accelerator`` and ``--scope``.

    The capacity is the accelerator's; commands with ``--scratchpad`` replace it.
    """
    accelerator = load_accelerator(getattr(args, "accelerator", DEFAULT_PRESET))
    scope = Scope.parse(getattr(args, "scope", Scope.ACTIVATIONS.value))
    return Problem(loaded.graph, accelerator, scope)


def print_json(obj: Any) -> None:
    """Write ``obj`` as indented JSON to stdout (no rich markup or wrapping)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()
