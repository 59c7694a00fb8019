"""``memplan inspect``: what a model looks like to the planner.

Prints op and tensor counts, the op-type histogram, weight and activation bytes,
M_R and the op that sets it, the peak live bytes of the model's own order and of the
heuristic min-peak order, the largest tensors, what the importer aliased and folded,
and how many tensor pairs are co-resident under the model's order (the size of an
exact allocator's non-overlap constraint set). ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
from typing import Any

from memplan.cli.common import (
    add_model_arguments,
    add_problem_arguments,
    console,
    load_model_from_args,
    print_json,
    problem_from_args,
)
from memplan.io.loading import LoadedModel
from memplan.ir import TensorKind
from memplan.problem import Problem
from memplan.units import check_seconds, format_bytes


def add_parser(subparsers: Any) -> None:
    """Register ``inspect``."""
    parser = subparsers.add_parser(
        "inspect",
        help="summarise a model: sizes, M_R, peaks, aliases, folded constants",
        description=(
            "Import a model (ONNX or memplan graph JSON) and summarise what the planner "
            "sees: op and tensor counts, weight and activation bytes, M_R (the largest "
            "working set of one op), the peak live bytes of the model's order and of a "
            "heuristic low-peak order, the largest tensors, and the importer's aliases "
            "and folded constants."
        ),
    )
    add_model_arguments(parser)
    add_problem_arguments(parser)
    parser.add_argument(
        "--top",
        type=int,
        default=10,
        metavar="N",
        help="how many of the largest tensors to list (default 10)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON document instead of tables"
    )
    parser.add_argument(
        "--exact-mp",
        nargs="?",
        const=60.0,
        type=float,
        default=None,
        metavar="SECONDS",
        help="prove M_P with the ilp solver's peak model (default limit 60 s; cached; "
        "falls back to the heuristic, saying so, without the ilp extra)",
    )
    parser.set_defaults(func=run)


def summarize(loaded: LoadedModel, problem: Problem, top: int = 10) -> dict[str, Any]:
    """Everything ``inspect`` reports, as a JSON-ready dictionary (sizes in bytes)."""
    from memplan.analysis import co_resident_pairs, model_order, peak_live_bytes
    from memplan.budgets import heuristic_min_peak

    graph = loaded.graph
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    order = model_order(graph)
    model_peak = peak_live_bytes(graph, order, sizes, scope)
    heuristic = heuristic_min_peak(problem)
    mr_op = problem.min_resident_op
    kinds = {kind.value: sum(1 for t in graph.tensors if t.kind is kind) for kind in TensorKind}
    largest = sorted(graph.tensors, key=lambda t: (-t.size_bytes, t.id))[: max(top, 0)]
    report = loaded.report
    summary: dict[str, Any] = {
        "model": str(loaded.path) if loaded.path is not None else graph.name,
        "name": graph.name,
        "sha256": loaded.sha256,
        "format": "onnx" if report is not None else "memplan.graph",
        "accelerator": problem.accelerator.name,
        "alignment_bytes": problem.alignment_bytes,
        "scope": problem.scope.value,
        "ops": graph.num_ops,
        "tensors": graph.num_tensors,
        "tensors_by_kind": kinds,
        "graph_outputs": sum(1 for t in graph.tensors if t.is_output),
        "macs": sum(op.macs for op in graph.ops),
        "op_types": graph.op_histogram(),
        "weight_bytes": graph.bytes_of_kind(TensorKind.WEIGHT),
        "activation_bytes": graph.bytes_of_kind(TensorKind.ACTIVATION),
        "input_bytes": graph.bytes_of_kind(TensorKind.INPUT),
        "min_resident_bytes": problem.min_resident_bytes,
        "min_resident_op": graph.ops[mr_op].name if mr_op is not None else None,
        "min_resident_op_type": graph.ops[mr_op].op_type if mr_op is not None else None,
        "model_order_peak_bytes": model_peak,
        "heuristic_min_peak_bytes": heuristic.value_bytes,
        "heuristic_min_peak_source": heuristic.source,
        "heuristic_min_peak_proven": heuristic.proven,
        "compulsory_bytes": problem.compulsory_bytes(),
        "co_resident_pairs_model_order": co_resident_pairs(graph, order, scope),
        "largest_tensors": [
            {
                "name": t.name,
                "kind": t.kind.value,
                "size_bytes": t.size_bytes,
                "shape": list(t.shape),
                "dtype": t.dtype,
                "is_output": t.is_output,
            }
            for t in largest
        ],
    }
    if report is not None:
        summary["import"] = report.to_json()
    return summary


def _b(n: int) -> str:
    return f"{n:,} B ({format_bytes(n)})"


def _render(summary: dict[str, Any]) -> None:
    from rich.table import Table

    overview = Table(title=f"memplan inspect: {summary['model']}", show_header=False)
    overview.add_column("what", style="bold")
    overview.add_column("value")
    kinds = summary["tensors_by_kind"]
    rows = [
        ("format", summary["format"]),
        ("sha256", summary["sha256"][:16] + "..."),
        (
            "accelerator",
            f"{summary['accelerator']} (alignment {summary['alignment_bytes']} B), "
            f"scope {summary['scope']}",
        ),
        ("ops", f"{summary['ops']:,}"),
        (
            "tensors",
            f"{summary['tensors']:,} ({kinds['activation']:,} activations, "
            f"{kinds['input']:,} inputs, {kinds['weight']:,} weights; "
            f"{summary['graph_outputs']} graph outputs)",
        ),
        ("MACs", f"{summary['macs']:,}"),
        ("weight bytes", _b(summary["weight_bytes"])),
        ("activation bytes", _b(summary["activation_bytes"])),
        ("input bytes", _b(summary["input_bytes"])),
        (
            "M_R (largest working set)",
            f"{_b(summary['min_resident_bytes'])} at op {summary['min_resident_op']!r} "
            f"({summary['min_resident_op_type']})"
            if summary["min_resident_op"] is not None
            else f"{_b(summary['min_resident_bytes'])} (the graph has no ops)",
        ),
        ("peak, model order", _b(summary["model_order_peak_bytes"])),
        (
            "peak, min-peak search",
            f"{_b(summary['heuristic_min_peak_bytes'])} "
            + (
                "(M_P, proven)"
                if summary["heuristic_min_peak_proven"]
                else "(an upper bound on M_P)"
            ),
        ),
        ("compulsory DRAM traffic", _b(summary["compulsory_bytes"])),
        ("co-resident pairs, model order", f"{summary['co_resident_pairs_model_order']:,}"),
    ]
    for key, value in rows:
        overview.add_row(key, value)
    console.print(overview)

    hist = Table(title="op types")
    hist.add_column("op type")
    hist.add_column("count", justify="right")
    for op_type, count in summary["op_types"].items():
        hist.add_row(op_type, str(count))
    console.print(hist)

    largest = Table(title="largest tensors")
    for col in ("name", "kind", "shape", "dtype"):
        largest.add_column(col, overflow="fold")
    largest.add_column("size", justify="right", no_wrap=True)
    for t in summary["largest_tensors"]:
        shape = "x".join(str(d) for d in t["shape"]) or "-"
        kind = t["kind"] + (" (output)" if t["is_output"] else "")
        largest.add_row(t["name"], kind, shape, t["dtype"], format_bytes(t["size_bytes"]))
    console.print(largest)

    info = summary.get("import")
    if info is None:
        return
    console.print(
        f"[bold]import[/bold]: ONNX IR {info['ir_version']}, opset {info['opset']}, "
        f"{info['onnx_nodes']} nodes; inputs "
        + ", ".join(f"{n}:{','.join(map(str, s))}" for n, s in info["input_shapes"].items())
    )
    folded = ", ".join(f"{k} {v}" for k, v in info["folded_by_type"].items()) or "none"
    console.print(
        f"[bold]folded constants[/bold]: {info['folded_nodes']} nodes ({folded}) -> "
        f"{info['weight_tensors']} weight tensors read by ops; "
        f"{info['initializers_as_inputs']} initializers listed as graph inputs"
    )
    if info["evaluated_nodes"]:
        computed = ", ".join(f"{k} {v}" for k, v in info["evaluated_by_type"].items())
        console.print(
            f"[bold]shape computations[/bold]: {info['evaluated_nodes']} nodes evaluated "
            f"({computed}) in {info['inference_runs']} shape-inference runs"
        )
    for name, values in info["input_values"].items():
        console.print(f"[bold]input value[/bold]: {name} fixed to {values}")
    for line in info["inlined"]:
        console.print(f"[bold]inlined[/bold]: {line}")
    aliases = info["aliases"]
    console.print(f"[bold]aliases[/bold]: {len(aliases)} view outputs share their input's buffer")
    for alias, buffer in aliases[:10]:
        console.print(f"  {alias} -> {buffer}")
    if len(aliases) > 10:
        console.print(f"  ... and {len(aliases) - 10} more (see --json)")
    if info["kept_views"]:
        console.print(f"[bold]view ops kept as ops[/bold]: {len(info['kept_views'])}")
        for line in info["kept_views"][:10]:
            console.print(f"  {line}")
    for warning in info["warnings"]:
        console.print(f"[yellow]warning[/yellow]: {warning}", soft_wrap=True)  # one line


def run(args: argparse.Namespace) -> int:
    """Run ``memplan inspect``."""
    from memplan.errors import ConfigError

    if args.top < 0:
        raise ConfigError(f"--top must be >= 0, got {args.top}")
    if args.exact_mp is not None:
        check_seconds("--exact-mp", args.exact_mp)
    loaded = load_model_from_args(args)
    problem = problem_from_args(args, loaded)
    summary = summarize(loaded, problem, args.top)
    if args.exact_mp is not None:
        from memplan.min_peak import exact_min_peak

        estimate = exact_min_peak(problem, args.exact_mp)
        summary["exact_min_peak_bytes"] = estimate.value_bytes
        summary["exact_min_peak_proven"] = estimate.proven
        summary["exact_min_peak_source"] = estimate.source
    if args.json:
        print_json(summary)
    else:
        _render(summary)
        if args.exact_mp is not None:
            kind = "proven" if summary["exact_min_peak_proven"] else "NOT proven, upper bound"
            console.print(
                f"[bold]M_P[/bold] {_b(summary['exact_min_peak_bytes'])} ({kind}; "
                f"{summary['exact_min_peak_source']})"
            )
    return 0
