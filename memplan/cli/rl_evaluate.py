"""``memplan rl evaluate``: the held-out games played with and without the network at
equal budget, as a table, JSON and a one-line verdict (see :mod:`memplan.cli.rl`)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from memplan.cli.common import checked_seed
from memplan.errors import ConfigError


def evaluate_command(args: argparse.Namespace) -> int:
    """``memplan rl evaluate``."""
    import json

    from memplan.accelerator import DEFAULT_PRESET, load_accelerator
    from memplan.analysis import NAMED_ORDERS
    from memplan.bench.harness import load_workloads
    from memplan.cli import EXIT_INTERRUPTED, EXIT_OK
    from memplan.cli.bench import split_list
    from memplan.cli.common import console, err_console
    from memplan.cli.plancommon import StopOnSigint
    from memplan.io.files import atomic_write_text, check_output_path
    from memplan.onnx.inputs import UNFIXED_SHAPES
    from memplan.problem import Problem, Scope
    from memplan.rl.evaluate import EvalConfig, EvalRow, cells, evaluate_cell, tally
    from memplan.rl.sampler import HELD_OUT_FAMILIES, catalog_workloads
    from memplan.solvers.rl.network import SHIPPED_CHECKPOINT, Network

    config = EvalConfig(
        simulations=args.simulations,
        considered=args.considered,
        rollout_steps=args.rollout_steps,
        alternatives=args.alternatives,
        seed=checked_seed(args.seed),
    )
    orders = split_list(args.orders, "--orders")
    for order in orders:
        if order not in NAMED_ORDERS:
            raise ConfigError(f"--orders: unknown order {order!r}; use {', '.join(NAMED_ORDERS)}")
    budgets = split_list(args.budgets, "--budgets")
    scopes = (Scope.ACTIVATIONS, Scope.ALL) if args.scope == "both" else (Scope(args.scope),)
    output = check_output_path(args.json, "--json") if args.json is not None else None
    network_path = SHIPPED_CHECKPOINT if args.network == "shipped" else args.network
    if output is not None and output.path is not None and _same_file(output.path, network_path):
        raise ConfigError(
            f"--json {args.json} is the --network checkpoint: the rows would replace the "
            "network; choose another file name for --json"
        )
    network = Network.load(network_path)
    if network.meta.get("updates") == 0:  # memplan rl train warned about it once
        err_console.print(
            f"memplan rl evaluate: warning: {args.network} is UNTRAINED (its run took no "
            "training step: random initial weights); the table measures those",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    accelerator = load_accelerator(args.accelerator or DEFAULT_PRESET)
    if args.suite is None:
        if args.max_ops < 1:
            raise ConfigError(f"--max-ops must be >= 1, got {args.max_ops}")
        suite = catalog_workloads(HELD_OUT_FAMILIES, args.max_ops)
        if not suite:
            raise ConfigError(f"--max-ops {args.max_ops}: no held-out workload is that small")
    else:
        suite = list(args.suite)
    workloads, failures = load_workloads(suite)
    for failure in failures:
        err_console.print(f"skipped: {failure}", highlight=False)
    if any(UNFIXED_SHAPES in failure for failure in failures):  # its fix names flags
        err_console.print(
            "note: memplan rl evaluate takes no --dim or --input-shape (the ONNX import "
            "flags of optimize): give it models with fixed input shapes (exported without "
            "dynamic axes)",
            highlight=False,
        )
    if not workloads:
        raise ConfigError("--suite: no workload could be loaded (see the lines above)")
    graphs = [(w.name, w.graph) for w in workloads]

    def problem_of(graph: Any, scope: Scope) -> Problem:
        return Problem(graph, accelerator, scope)

    rows: list[EvalRow] = []

    def save() -> None:
        if output is not None:
            document = {
                "network": str(args.network),
                "config": {**vars(config)},
                "suite": [w.name for w in workloads],
                "accelerator": accelerator.name,
                "scopes": [scope.value for scope in scopes],
                "budgets": list(budgets),
                "orders": list(orders),
                "interrupted": stop.is_set(),
                "rows": [row.to_dict() for row in rows],
                "tallies": [vars(t) for t in tally(rows)],
            }
            atomic_write_text(output, json.dumps(document, indent=1) + "\n")

    stop = threading.Event()
    from rich.progress import BarColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("[bold]held-out games[/bold]"),
        BarColumn(),
        TextColumn("cells played: {task.completed}"),
        TextColumn("{task.fields[status]}"),
        console=err_console,
        disable=args.quiet,
        transient=True,
    )
    with (
        progress,
        StopOnSigint(
            stop, "memplan rl evaluate: stopping; the cells played are kept (Ctrl-C again aborts)"
        ),
    ):
        # The number of cells is known only as they come: cells where the online pass
        # does not spill are skipped.
        task = progress.add_task("eval", total=None, status="")
        # Budgets below a workload's M_R are skipped; their lines wait for the first cell
        # played, so that a run where nothing can be played says so in one line.
        below_mr: list[str] = []
        # (workload, scope) -> whether the pass spilled nowhere even at M_R itself
        quiet_at_mr: dict[tuple[str, Scope], bool] = {}

        def skipped(why: str) -> None:
            below_mr.append(why)
            if rows:
                err_console.print(f"skipped: {why}", highlight=False)

        def quiet(workload: str, scope: Scope, budget: str, at_mr: bool) -> None:
            key = (workload, scope)
            quiet_at_mr[key] = quiet_at_mr.get(key, False) or at_mr

        found = cells(graphs, problem_of, scopes, budgets, orders, on_skip=skipped, on_quiet=quiet)
        for cell in found:
            if stop.is_set():
                break
            progress.update(task, status=cell.instance.name)
            row = evaluate_cell(cell, network, config, should_stop=stop.is_set)
            if row is None:  # Ctrl-C during the cell's games: it is left out
                break
            if not rows:
                for why in below_mr:
                    err_console.print(f"skipped: {why}", highlight=False)
            rows.append(row)
            save()
            progress.advance(task)
    if not rows:
        if stop.is_set():
            err_console.print(
                "memplan rl evaluate: interrupted by Ctrl-C before any cell was played"
            )
            return EXIT_INTERRUPTED
        combinations = len(graphs) * len(scopes) * len(budgets)
        at_mr = bool(quiet_at_mr) and all(quiet_at_mr.values())
        raise ConfigError(_nothing_played(args.budgets, below_mr, combinations, at_mr))
    console.print(_table(rows))
    for line in _summary(rows):
        console.print(line, highlight=False)
    if stop.is_set():
        err_console.print("interrupted by Ctrl-C: the table holds the cells played to the end")
    if output is not None:
        save()
        console.print(f"wrote {output.given}", markup=False, soft_wrap=True)
    return EXIT_OK


def _table(rows: list[Any]) -> Any:
    from rich import box
    from rich.table import Table

    from memplan.units import format_bytes

    table = Table(
        title="held-out games at equal budget: non-compulsory bytes, the games' as a "
        "multiple of greedy's (net: with the network, free: network-free)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("workload", overflow="fold", ratio=1)
    table.add_column("cell", overflow="fold", ratio=1)
    table.add_column("greedy", justify="right", no_wrap=True)
    for column in ("gumbel\nnet", "gumbel\nfree", "rollout\nnet", "rollout\nfree"):
        table.add_column(column, justify="right", no_wrap=True)

    def relative(moved: int, greedy: int) -> str:
        return f"{moved / greedy:.2f}x" if greedy else format_bytes(moved)

    for row in rows:
        scope = "act" if row.scope == "activations" else row.scope
        table.add_row(
            row.workload,
            f"{scope} {row.budget} {row.order}",
            format_bytes(row.greedy_bytes),
            *(
                relative(row.game(search, net).bytes, row.greedy_bytes)
                for search in ("gumbel", "rollout")
                for net in (True, False)
            ),
        )
    return table


def _nothing_played(
    budgets: str, below_mr: list[str], combinations: int, quiet_at_mr: bool = False
) -> str:
    """The one line for a run where no cell could be played, saying why.

    Args:
        budgets: ``--budgets`` as given.
        below_mr: why each (workload, scope, budget) below M_R was skipped.
        combinations: how many (workload, scope, budget) combinations there were.
        quiet_at_mr: the online pass spilled nowhere even at M_R, for every workload and
            scope at or above it: no smaller budget is left to try.
    """
    below = len(below_mr)
    if below == combinations:
        return (
            f"--budgets {budgets}: nothing could be played: every budget is below M_R, the "
            f"smallest scratchpad any plan fits in, for every workload and scope (e.g. "
            f"{below_mr[0]}); give budgets of at least MR, such as MR,MH"
        )
    below_text = (
        f"{below} of the {combinations} (workload, scope, budget) combinations are below M_R "
        "and, at the others, "
        if below
        else ""
    )
    if quiet_at_mr:
        return (
            f"--budgets {budgets}: nothing could be played: {below_text}the online Belady "
            "pass spills on none of the --orders even at M_R, the smallest scratchpad any "
            "plan fits in, so there is nothing to play on these workloads and no smaller "
            "budget to try; evaluate other workloads (larger or more branched models)"
        )
    return (
        f"--budgets {budgets}: nothing could be played: {below_text}the online Belady pass "
        "spills on none of the --orders, so the game decides nothing; give smaller budgets, "
        "down to MR (the smallest any plan fits in), such as MR,MH"
    )


def _summary(rows: list[Any]) -> list[str]:
    from memplan.rl.evaluate import tally

    lines = [f"{len(rows)} held-out cells where the online Belady pass spills"]
    for t in tally(rows):
        lines.append(
            f"{t.search}: network better on {t.better}, equal on {t.equal}, worse on {t.worse}; "
            f"below greedy: network {t.below_greedy_network}, network-free "
            f"{t.below_greedy_free}; median game {t.median_seconds_network:.2f} s vs "
            f"{t.median_seconds_free:.2f} s"
        )
    return lines


def _same_file(a: Any, b: Any) -> bool:
    """Whether two paths name one existing file (links followed)."""
    import os

    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either is missing (a new --json file), or unreadable
        return False
