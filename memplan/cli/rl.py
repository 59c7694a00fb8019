"""``memplan rl``: train the mallocGame agent the ``rl`` solver plays with, and measure it.

::

    memplan rl train --minutes 30 --seed 0 -o agent.npz
    memplan rl evaluate --json heldout.json

Self-play training (:mod:`memplan.rl.train`, needs ``pip install
'memplan[rl]'`` for torch) for a wall-clock time, with a progress bar. It writes the
checkpoint (``agent.npz``: numpy weights and how they were trained), the log of every
game and evaluation (``agent.log.jsonl``) and the learning curve (``agent.png``).
Ctrl-C stops training early and still writes all three; a second Ctrl-C aborts.
Use a checkpoint with ``memplan optimize MODEL --solver rl --option network=agent.npz``.

``memplan rl evaluate`` plays the same held-out instances with and without the network
at equal budget (:mod:`memplan.rl.evaluate`) and prints what the network is worth.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
from pathlib import Path
from typing import Any

from memplan.cli.common import checked_seed
from memplan.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    """Register ``rl`` and ``rl train``."""
    parser = subparsers.add_parser(
        "rl",
        help="train the mallocGame agent of the rl solver, or measure it on held-out games",
        description=(
            "Train the policy/value network that the rl solver's tree search uses (train), "
            "or measure what it is worth on held-out instances (evaluate)."
        ),
    )
    sub = parser.add_subparsers(dest="rl_command", metavar="{train,evaluate}")
    train = sub.add_parser(
        "train",
        help="self-play training for a given time; writes checkpoint, log and learning curve",
        description=(
            "Self-play training with Gumbel tree search and a replay buffer (needs torch: pip "
            "install 'memplan[rl]'). Writes OUTPUT (.npz checkpoint), OUTPUT's .log.jsonl "
            "and .png (learning curve) beside it. Example: memplan rl train --minutes 30 "
            "--seed 0 -o agent.npz"
        ),
    )
    train.add_argument(
        "--minutes", type=float, required=True, help="wall-clock training time in minutes (> 0)"
    )
    train.add_argument("--seed", type=int, default=0, help="seed of instances and weights")
    train.add_argument(
        "-o", "--output", required=True, metavar="CHECKPOINT.npz", help="checkpoint to write"
    )
    train.add_argument(
        "--families",
        default=None,
        metavar="A,B",
        help="catalog workload families to train on besides random DAGs ('' for DAGs only); "
        "default: the shipped agent's training families",
    )
    train.add_argument(
        "--simulations", type=int, default=8, help="search simulations per move in self-play"
    )
    train.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=train_command)
    _add_evaluate_parser(sub)
    parser.set_defaults(func=lambda args: _usage(parser))


def _add_evaluate_parser(sub: Any) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="play held-out games with and without the network at equal budget; print the "
        "network's worth",
        description=(
            "For every (workload, scope, budget, order) where the online Belady pass spills, "
            "play the same mallocGame instance by Gumbel search and by one fortified rollout "
            "pass, each with the network and network-free (uniform prior and random rollouts; "
            "random alternatives) at equal budget in simulations and rollouts, next to the "
            "greedy stack on that order. Every game's plan is validated. Default workloads: "
            "the catalog families the shipped agent never trained on. Example: memplan rl "
            "evaluate --json heldout.json"
        ),
    )
    evaluate.add_argument(
        "--suite",
        nargs="+",
        default=None,
        metavar="ENTRY",
        help="workloads: catalog suite or workload names, model files (.onnx, .json) or "
        "folders; default: catalog workloads of the held-out families with at most "
        "--max-ops ops",
    )
    evaluate.add_argument(
        "--max-ops",
        type=int,
        default=400,
        help="largest default workload, in ops (default 400; ignored with --suite)",
    )
    evaluate.add_argument(
        "--budgets",
        default="MR,MH",
        metavar="SPEC,...",
        help="comma-separated scratchpad budgets: MR, MH, MP, sizes (512KiB) or multiples "
        "(0.5*MP); default: MR,MH",
    )
    evaluate.add_argument(
        "--scope",
        choices=["activations", "all", "both"],
        default="both",
        help="tensors placed in the scratchpad (default: both, one cell each)",
    )
    evaluate.add_argument(
        "--orders",
        default="model,min-peak",
        metavar="A,B",
        help="fixed op orders of the games: model, min-peak, dfs, bfs, rpo "
        "(default: model,min-peak)",
    )
    evaluate.add_argument(
        "--accelerator",
        default=None,
        metavar="PRESET|FILE",
        help="accelerator preset or spec file (alignment, rates); default: edge-npu",
    )
    evaluate.add_argument(
        "--network",
        default="shipped",
        metavar="shipped|CHECKPOINT.npz",
        help="the network to measure: the shipped agent (default) or a checkpoint",
    )
    evaluate.add_argument(
        "--simulations", type=int, default=8, help="Gumbel search: simulations per move (>= 1)"
    )
    evaluate.add_argument(
        "--considered", type=int, default=4, help="Gumbel search: moves sampled per move (>= 1)"
    )
    evaluate.add_argument(
        "--rollout-steps",
        type=int,
        default=16,
        help="Gumbel search with the network: default-policy moves before its value (>= 0)",
    )
    evaluate.add_argument(
        "--alternatives",
        type=int,
        default=2,
        help="rollout pass: moves tried per move besides the default one (>= 1)",
    )
    evaluate.add_argument(
        "--seed",
        default="0",
        metavar="N",
        help="seed of the network-free random draws (0 .. 2147483647)",
    )
    evaluate.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="write the rows and the tallies as JSON (rewritten after every cell)",
    )
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=evaluate_command)


def _usage(parser: argparse.ArgumentParser) -> int:
    from memplan.cli import EXIT_BAD_INPUT

    parser.print_help()
    return EXIT_BAD_INPUT


def _check_output(path: Path) -> None:
    if path.suffix != ".npz":
        raise ConfigError(f"{path}: a checkpoint file name must end in .npz")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"{path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{path}: folder {folder} is not writable")
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise ConfigError(f"{path}: cannot be overwritten (a folder, or read-only)")


def train_command(args: argparse.Namespace) -> int:
    """``memplan rl train``."""
    from memplan.cli import EXIT_OK
    from memplan.cli.common import console, err_console
    from memplan.cli.plancommon import StopOnSigint

    if not (args.minutes > 0 and math.isfinite(args.minutes)):
        raise ConfigError(f"--minutes must be a finite number > 0, got {args.minutes}")
    if args.simulations < 1 or args.threads < 1:
        raise ConfigError("--simulations and --threads must be >= 1")
    output = Path(args.output)
    _check_output(output)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(
            "training needs torch; install it with: pip install 'memplan[rl]'"
        ) from None
    from memplan.rl.sampler import TRAIN_FAMILIES, catalog_workloads
    from memplan.rl.train import TrainConfig, train

    families = TRAIN_FAMILIES
    if args.families is not None:
        families = tuple(f.strip() for f in args.families.split(",") if f.strip())
        if families and not catalog_workloads(families):
            raise ConfigError(
                f"--families {args.families!r}: no catalog workload of these families is small "
                "enough to train on; see memplan graphs list for family names"
            )
    config = TrainConfig(
        minutes=args.minutes,
        seed=args.seed,
        families=families,
        simulations=args.simulations,
        threads=args.threads,
    )
    stop = threading.Event()
    total_s = args.minutes * 60.0
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]training[/bold]"),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=err_console,
        disable=args.quiet,
        transient=False,
    )
    with progress, StopOnSigint(stop, "memplan rl train: stopping; saving the checkpoint"):
        task = progress.add_task("train", total=total_s, status="sampling instances")

        def report(elapsed_s: float, row: dict[str, Any]) -> None:
            status = (
                f"game {row['game']} ({row['kind']}) {row['instance'][:24]} "
                f"return {row['return']:+.3f}"
            )
            progress.update(task, completed=min(elapsed_s, total_s), status=status)

        network, log = train(config, output, progress=report, should_stop=stop.is_set)
    first, last = log.evaluations[0], log.evaluations[-1]
    console.print(
        f"trained {network.meta['games']} games in {network.meta['trained_s']:.0f} s; "
        f"validation return (network prior alone, 0 = greedy) {first['policy_return']:+.3f} "
        f"-> {last['policy_return']:+.3f}"
    )
    console.print(
        f"wrote {output}, {output.with_suffix('.log.jsonl')}, {output.with_suffix('.png')}"
    )
    return EXIT_OK


def _split(text: str, flag: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise ConfigError(f"{flag}: give at least one value")
    return items


def evaluate_command(args: argparse.Namespace) -> int:
    """``memplan rl evaluate``."""
    import json

    from memplan.accelerator import DEFAULT_PRESET, load_accelerator
    from memplan.analysis import NAMED_ORDERS
    from memplan.bench.harness import load_workloads
    from memplan.cli import EXIT_OK
    from memplan.cli.common import console, err_console
    from memplan.cli.plancommon import StopOnSigint
    from memplan.io.files import atomic_write_text, check_output_path
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
    orders = _split(args.orders, "--orders")
    for order in orders:
        if order not in NAMED_ORDERS:
            raise ConfigError(f"--orders: unknown order {order!r}; use {', '.join(NAMED_ORDERS)}")
    budgets = _split(args.budgets, "--budgets")
    scopes = (Scope.ACTIVATIONS, Scope.ALL) if args.scope == "both" else (Scope(args.scope),)
    output = check_output_path(args.json, "--json") if args.json else None
    network = Network.load(SHIPPED_CHECKPOINT if args.network == "shipped" else args.network)
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

        def skipped(why: str) -> None:
            err_console.print(f"skipped: {why}", highlight=False)

        for cell in cells(graphs, problem_of, scopes, budgets, orders, on_skip=skipped):
            if stop.is_set():
                break
            progress.update(task, status=cell.instance.name)
            row = evaluate_cell(cell, network, config, should_stop=stop.is_set)
            if row is None:  # Ctrl-C during the cell's games: it is left out
                break
            rows.append(row)
            save()
            progress.advance(task)
    if rows:
        console.print(_table(rows))
    for line in _summary(rows):
        console.print(line, highlight=False)
    if stop.is_set():
        err_console.print("interrupted by Ctrl-C: the table holds the cells played to the end")
    if output is not None:
        save()
        console.print(f"wrote {output.given}", highlight=False)
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


def _summary(rows: list[Any]) -> list[str]:
    from memplan.rl.evaluate import tally

    if not rows:
        return [
            "no cell was played: none where the online Belady pass spills at a budget of at "
            "least M_R (or Ctrl-C came first)"
        ]
    lines = [f"{len(rows)} held-out cells where the online Belady pass spills"]
    for t in tally(rows):
        lines.append(
            f"{t.search}: network better on {t.better}, equal on {t.equal}, worse on {t.worse}; "
            f"below greedy: network {t.below_greedy_network}, network-free "
            f"{t.below_greedy_free}; median game {t.median_seconds_network:.2f} s vs "
            f"{t.median_seconds_free:.2f} s"
        )
    return lines
