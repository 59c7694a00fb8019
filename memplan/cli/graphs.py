"""``memplan graphs``: list and export the benchmark workloads of ``graphs/index.toml``.

``memplan graphs list [--suite SUITE] [--json]`` shows each workload's family, its
ONNX compute nodes and, after importing it, memplan's op and tensor counts, M_R and the
peak live bytes of the model's own order (for ``--scope`` and ``--accelerator``).
``memplan graphs export NAME -o FILE`` writes a workload as an ONNX file.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.cli.common import add_problem_arguments, console, err_console, print_json
from memplan.errors import ConfigError

if TYPE_CHECKING:
    import onnx

    from memplan.accelerator import Accelerator
    from memplan.graphs.catalog import WorkloadInfo
    from memplan.problem import Scope

#: Version of ``memplan graphs list --json`` output; bump when the layout changes.
LIST_JSON_VERSION = 1
_EXIT_OK, _EXIT_BAD_INPUT = 0, 2


@dataclass(frozen=True, slots=True)
class GraphStats:
    """What memplan sees in one imported workload."""

    ops: int  # ops of the scheduling graph (views aliased away by default)
    tensors: int  # tensors of the scheduling graph (all kinds)
    m_r_bytes: int  # M_R: the largest aligned in-scope working set of one op
    model_order_peak_bytes: int  # peak live bytes under the model's own order, no spills


def add_parser(subparsers: Any) -> None:
    """Add ``memplan graphs`` with its ``list`` and ``export`` actions."""
    parser = subparsers.add_parser(
        "graphs",
        help="list or export the benchmark workloads",
        description=(
            "The benchmark workloads: the light_* models of the onnx wheel and generated "
            "NAS-cell, RandWire, transformer and CNN models (graphs/index.toml)."
        ),
    )
    actions = parser.add_subparsers(dest="graphs_action", metavar="ACTION")
    lister = actions.add_parser(
        "list",
        help="list the workloads with their sizes",
        description=(
            "List workloads: family, ONNX compute nodes and, unless --no-stats, memplan ops, "
            "tensors, M_R and the model-order peak live bytes (each model is generated and "
            "imported, which takes a few seconds for the whole suite)."
        ),
    )
    lister.add_argument(
        "--suite",
        default=None,
        metavar="SUITE",
        help="only the workloads of this suite (e.g. light, small, nas, large); default: all",
    )
    lister.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lister.add_argument(
        "--no-stats",
        dest="stats",
        action="store_false",
        help="do not generate or import the models: show only what the index records",
    )
    lister.add_argument(
        "--dtype-bytes",
        dest="dtype_bytes",
        type=int,
        default=None,
        metavar="N",
        help="bytes per element for every tensor (e.g. 1 for int8); default: the ONNX types",
    )
    lister.add_argument(
        "--no-aliases",
        dest="aliases",
        action="store_false",
        help="keep view ops (Reshape, Flatten, Dropout...) as ops with their own buffers",
    )
    add_problem_arguments(lister)
    exporter = actions.add_parser(
        "export",
        help="write a workload as an ONNX file",
        description="Write a workload's ONNX model to a file (atomically).",
    )
    exporter.add_argument("name", help="workload name (see 'memplan graphs list')")
    exporter.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="ONNX file to write"
    )
    parser.set_defaults(func=run, graphs_help=parser.format_help)


def run(args: argparse.Namespace) -> int:
    """Run ``memplan graphs ACTION``; return the exit code."""
    action = getattr(args, "graphs_action", None)
    if action == "list":
        return _run_list(args)
    if action == "export":
        return _run_export(args)
    err_console.print(args.graphs_help(), markup=False)
    return _EXIT_BAD_INPUT


def _run_export(args: argparse.Namespace) -> int:
    from memplan.graphs.catalog import export_model, get_workload
    from memplan.io.files import check_output_path

    get_workload(args.name)  # an unknown name first: it is the likelier mistake
    target = check_output_path(args.output, "-o")
    if Path(args.output).suffix.lower() != ".onnx":
        # Loaders go by the suffix: ONNX bytes in a .json file would not load again.
        raise ConfigError(
            f"-o {args.output}: export writes an ONNX model; give the file the .onnx suffix"
        )
    path = export_model(args.name, target.given)
    err_console.print(f"wrote {args.name} to {path}", markup=False)
    return _EXIT_OK


def _run_list(args: argparse.Namespace) -> int:
    from memplan.accelerator import load_accelerator
    from memplan.graphs.catalog import list_workloads, load_model
    from memplan.problem import Scope

    workloads = list_workloads(args.suite)
    if args.dtype_bytes is not None and args.dtype_bytes < 1:
        raise ConfigError(
            f"--dtype-bytes must be a positive number of bytes, got {args.dtype_bytes}"
        )
    accelerator = load_accelerator(args.accelerator)
    scope = Scope.parse(args.scope)
    rows = []
    for info in workloads:
        stats = None
        if args.stats:
            stats = _graph_stats(
                load_model(info.name), accelerator, scope, args.dtype_bytes, args.aliases
            )
        rows.append(_row(info, stats))
    if args.json:
        print_json(
            {
                "format_version": LIST_JSON_VERSION,
                "suite": args.suite or "all",
                "scope": scope.value,
                "accelerator": accelerator.name,
                "alignment_bytes": accelerator.alignment_bytes,
                "aliases": args.aliases,
                "dtype_bytes": args.dtype_bytes,
                "workloads": rows,
            }
        )
    else:
        _print_table(rows, args.suite or "all", scope.value, accelerator.alignment_bytes)
    return _EXIT_OK


def _graph_stats(
    model: onnx.ModelProto,
    accelerator: Accelerator,
    scope: Scope,
    dtype_bytes: int | None = None,
    aliases: bool = True,
) -> GraphStats:
    """Import ``model`` into memplan and measure it (M_R and model-order peak, aligned)."""
    from memplan.analysis import model_order, peak_live_bytes
    from memplan.io.loading import load_model
    from memplan.problem import Problem

    graph = load_model(model, dtype_bytes=dtype_bytes, aliases=aliases).graph
    problem = Problem(graph, accelerator, scope)
    peak = peak_live_bytes(graph, model_order(graph), problem.aligned_sizes_bytes, problem.in_scope)
    return GraphStats(graph.num_ops, graph.num_tensors, problem.min_resident_bytes, peak)


def _row(info: WorkloadInfo, stats: GraphStats | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": info.name,
        "family": info.family,
        "suites": list(info.suites),
        "onnx_ops": info.ops,
        "source": info.source,
        "licence": info.licence,
        "generator": info.generator,
        "params": dict(info.params) if info.generator else None,
        "path": info.path,
        "package": info.package,
        "sha256": info.sha256,
    }
    if stats is not None:
        row.update(
            ops=stats.ops,
            tensors=stats.tensors,
            m_r_bytes=stats.m_r_bytes,
            model_order_peak_bytes=stats.model_order_peak_bytes,
        )
    return row


def _print_table(rows: list[dict[str, Any]], suite: str, scope: str, alignment: int) -> None:
    from rich import box
    from rich.table import Table

    with_stats = bool(rows) and "ops" in rows[0]
    title = f"workloads: suite {suite}"
    caption = None
    if with_stats:
        title += f" (scope {scope}, alignment {alignment} B)"
        caption = (
            "ops, tensors: memplan's graph; M_R: largest working set of one op; peak: live "
            "bytes under the model's own order, nothing spilled (KiB, MiB = 1024-based)"
        )
    table = Table(
        title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("onnx ops", justify="right")
    if with_stats:
        for column in ("ops", "tensors", "M_R", "peak"):
            table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        cells = [row["name"], row["family"], str(row["onnx_ops"])]
        if with_stats:
            cells += [
                str(row["ops"]),
                str(row["tensors"]),
                _size(row["m_r_bytes"]),
                _size(row["model_order_peak_bytes"]),
            ]
        table.add_row(*cells)
    console.print(table)


def _size(n: int) -> str:
    """Bytes with a binary unit and three significant digits: ``640 KiB``, ``24.5 MiB``."""
    value, unit = float(n), "B"
    for next_unit in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    if unit == "B":
        return f"{n} B"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"
