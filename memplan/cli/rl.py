"""``memplan rl``: train the mallocGame agent the ``rl`` solver plays with, and measure it.

::

    memplan rl train --minutes 30 --seed 0 -o agent.npz
    memplan rl evaluate --json heldout.json

Self-play training (:mod:`memplan.rl.train`, needs ``pip install
'memplan[rl]'`` for torch) for a wall-clock time, with a progress bar. It writes the
checkpoint (``agent.npz``: numpy weights and how they were trained), the log of every
game and evaluation (``agent.log.jsonl``) and the learning curve (``agent.png``).
The three paths are checked before training, and the three files are written together
(all or none). Ctrl-C stops training early and still writes all three; a second Ctrl-C
before the games have stopped aborts with nothing written; once they have, Ctrl-C is
ignored through the final evaluation and the writing (a few seconds).
Use a checkpoint with ``memplan optimize MODEL --solver rl --option network=agent.npz``.

``memplan rl evaluate`` plays the same held-out instances with and without the network
at equal budget (:mod:`memplan.rl.evaluate`) and prints what the network is worth.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import TYPE_CHECKING, Any

from memplan.cli.argparser import input_file
from memplan.cli.common import checked_seed
from memplan.errors import ConfigError

if TYPE_CHECKING:
    from memplan.rl.train import TrainConfig, TrainOutputs, TrainRun

#: Most search simulations per move (:data:`memplan.rl.evaluate.MAX_SIMULATIONS`, copied
#: so that building the parser imports no search code; a test keeps them equal).
MAX_SIMULATIONS = 4096
#: Move slots of the game (:data:`memplan.solvers.rl.features.NUM_ACTIONS`, likewise).
MOVE_SLOTS = 25
#: Largest seed (:data:`memplan.options.SEED_MAX`).
SEED_MAX = 2**31 - 1
#: Typical seconds of a run's setup (counted in --minutes) and of its end (on top).
SETUP_S, FINISH_S = "3-6", "1-5"


def add_parser(subparsers: Any) -> None:
    """Register ``rl`` with its sub-commands ``train`` and ``evaluate``."""
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
            "install 'memplan[rl]'). Writes the checkpoint CHECKPOINT.npz and, beside it under "
            "the same name, CHECKPOINT.log.jsonl (every game and evaluation) and CHECKPOINT.png "
            "(learning curve): all three together, or none. Ctrl-C stops training early and "
            "still writes all three; a second Ctrl-C before the games have stopped aborts "
            "with nothing written; after that, Ctrl-C is ignored until the files are written. "
            "Example: memplan rl train --minutes 30 --seed 0 -o agent.npz"
        ),
    )
    train.add_argument(
        "--minutes",
        type=float,
        required=True,
        metavar="MINUTES",
        help="wall-clock time limit in minutes, a finite number > 0 (no default; e.g. 30). "
        f"It covers the setup (sampling the validation instances and evaluating the initial "
        f"network, typically {SETUP_S} s; torch's import too) and the training games; the "
        f"final evaluation and writing the three files come on top (typically {FINISH_S} s). "
        "A run that ends before its first training step (about 0.1 minute at least, more "
        "on a busy machine) writes an untrained checkpoint and warns",
    )
    train.add_argument(
        "--seed",
        default="0",
        metavar="N",
        help="seed of the training instances, the initial weights and the search noise; a "
        f"whole number 0 .. {SEED_MAX} (default: %(default)s); same seed, same instances",
    )
    train.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="CHECKPOINT.npz",
        help="checkpoint to write (no default; must end in .npz); the log (.log.jsonl) and "
        "the learning curve (.png) are written beside it under the same name, and all "
        "three paths are checked before training",
    )
    train.add_argument(
        "--families",
        default=None,
        metavar="A,B",
        help="comma-separated catalog workload families to train on besides random DAGs "
        "('' for random DAGs only; names as in memplan graphs list); default: the shipped "
        "agent's training families",
    )
    train.add_argument(
        "--simulations",
        type=int,
        default=8,
        metavar="N",
        help="Gumbel search simulations per move in self-play games, 1 .. "
        f"{MAX_SIMULATIONS} (default: %(default)s); more makes better but slower games",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="CPU threads torch may use for the training steps, >= 1 (default: %(default)s)",
    )
    train.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (default: show one on stderr)"
    )
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
        type=_suite_entry,
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
        metavar="N",
        help="largest default workload, in ops, >= 1 (default: %(default)s; ignored with --suite)",
    )
    evaluate.add_argument(
        "--budgets",
        default="MR,MH",
        metavar="SPEC,...",
        help="comma-separated scratchpad budgets, each MR, MH, MP, a size in bytes (65536, "
        "512KiB, 2MB) or a multiple (1.2*MR) (default: %(default)s); a budget below a "
        "workload's M_R (no plan exists) is skipped for it",
    )
    evaluate.add_argument(
        "--scope",
        choices=["activations", "all", "both"],
        default="both",
        help="which tensors compete for the scratchpad: activations (weights stream from "
        "DRAM), all (weights too) or both, one cell each (default: %(default)s)",
    )
    evaluate.add_argument(
        "--orders",
        default="model,min-peak",
        metavar="A,B",
        help="comma-separated fixed op orders of the games, each model, min-peak, dfs, bfs "
        "or rpo (default: %(default)s)",
    )
    evaluate.add_argument(
        "--accelerator",
        type=input_file("--accelerator"),
        default=None,
        metavar="PRESET|FILE",
        help="accelerator preset (edge-npu, server-npu, unaligned) or .toml/.json spec file "
        "(offset alignment in bytes, DRAM and compute rates; its capacity is replaced by "
        "--budgets); default: edge-npu",
    )
    evaluate.add_argument(
        "--network",
        default="shipped",
        metavar="shipped|CHECKPOINT.npz",
        help="the network to measure: 'shipped' (the agent memplan ships) or a .npz "
        "checkpoint written by memplan rl train (default: %(default)s)",
    )
    evaluate.add_argument(
        "--simulations",
        type=int,
        default=8,
        metavar="N",
        help=f"Gumbel search: simulations per move, 1 .. {MAX_SIMULATIONS} (default: %(default)s)",
    )
    evaluate.add_argument(
        "--considered",
        type=int,
        default=4,
        metavar="N",
        help=f"Gumbel search: moves sampled at the root per move, 1 .. {MOVE_SLOTS} "
        "(default: %(default)s)",
    )
    evaluate.add_argument(
        "--rollout-steps",
        type=int,
        default=16,
        metavar="N",
        help="Gumbel search with the network: default-policy moves played before a leaf's "
        "network value, >= 0 (default: %(default)s)",
    )
    evaluate.add_argument(
        "--alternatives",
        type=int,
        default=2,
        metavar="N",
        help=f"rollout pass: moves tried per move besides the default one, 1 .. "
        f"{MOVE_SLOTS - 1} (default: %(default)s)",
    )
    evaluate.add_argument(
        "--seed",
        default="0",
        metavar="N",
        help="seed of the network-free searches' random draws, a whole number 0 .. "
        f"{SEED_MAX} (default: %(default)s)",
    )
    evaluate.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also write the rows and the tallies to this JSON file, rewritten atomically "
        "after every cell (default: none, the table only)",
    )
    evaluate.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (default: show one on stderr)"
    )
    evaluate.set_defaults(func=evaluate_command)


def _usage(parser: argparse.ArgumentParser) -> int:
    from memplan.cli import EXIT_BAD_INPUT

    parser.print_help()
    return EXIT_BAD_INPUT


def train_command(args: argparse.Namespace) -> int:
    """``memplan rl train``."""
    started = time.monotonic()  # --minutes counts from here: imports and setup included
    from memplan.cli import EXIT_OK
    from memplan.cli.common import err_console
    from memplan.cli.plancommon import StopOnSigint, sigint_ignored
    from memplan.rl.sampler import TRAIN_FAMILIES
    from memplan.rl.train import TrainConfig, TrainOutputs, run_training, save_training

    seed = checked_seed(args.seed)
    if not 1 <= args.simulations <= MAX_SIMULATIONS:
        raise ConfigError(f"--simulations must be 1 .. {MAX_SIMULATIONS}, got {args.simulations}")
    families = TRAIN_FAMILIES if args.families is None else _families(args.families)
    config = TrainConfig(
        minutes=args.minutes,
        seed=seed,
        families=families,
        simulations=args.simulations,
        threads=args.threads,
    )
    outputs = TrainOutputs.check(args.output)  # all three, before any work
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(
            "training needs torch; install it with: pip install 'memplan[rl]'"
        ) from None
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
    notice = (
        "memplan rl train: stopping; then saving the checkpoint, log and curve (Ctrl-C "
        "again before the games stop aborts and saves nothing)"
    )
    with progress, StopOnSigint(stop, notice):
        task = progress.add_task(
            "train", total=total_s, status="setup: sampling the validation instances"
        )

        def report(elapsed_s: float, row: dict[str, Any]) -> None:
            status = (
                f"game {row['game']} ({row['kind']}) {row['instance'][:24]} "
                f"return {row['return']:+.3f}"
            )
            progress.update(task, completed=min(elapsed_s, total_s), status=status)

        run = run_training(config, progress=report, should_stop=stop.is_set, started=started)
        progress.update(
            task,
            completed=min(run.trained_s, total_s),
            status="final evaluation; writing the three files",
        )
        with sigint_ignored():  # the games are over: evaluate and write the three files whole
            save_training(outputs, run)
        progress.update(task, status="written")
    with sigint_ignored():
        _report_training(run, outputs, config, interrupted=stop.is_set())
    return EXIT_OK


def _families(text: str) -> tuple[str, ...]:
    """The value of ``--families``: catalog families with workloads small enough to train on.

    Raises:
        ConfigError: an empty name between commas, or a family with no such workload.
    """
    from memplan.rl.sampler import MAX_TRAIN_OPS, catalog_workloads

    if not text.strip():
        return ()  # random DAGs only
    families = tuple(name.strip() for name in text.split(","))
    if "" in families:
        raise ConfigError(
            f"--families {text!r}: an empty name between commas; give family names separated "
            "by commas, or '' for random DAGs only"
        )
    for family in families:
        if not catalog_workloads((family,)):
            raise ConfigError(
                f"--families: {family!r} has no catalog workload of at most {MAX_TRAIN_OPS} ops "
                "to train on; see memplan graphs list for family names and sizes"
            )
    return families


def _report_training(
    run: TrainRun, outputs: TrainOutputs, config: TrainConfig, *, interrupted: bool
) -> None:
    """Print what a finished run did, and warn when its checkpoint is untrained."""
    from memplan.cli.common import console, err_console

    meta, log = run.network.meta, run.log
    first, last = log.evaluations[0], log.evaluations[-1]
    console.print(
        f"trained {meta['games']} games ({meta['updates']} training steps) in "
        f"{meta['trained_s']:.0f} s; validation return (network prior alone, 0 = greedy) "
        f"{first['policy_return']:+.3f} -> {last['policy_return']:+.3f}",
        soft_wrap=True,
    )
    console.print(f"wrote {', '.join(outputs.names)}", markup=False, soft_wrap=True)
    if run.untrained:
        why = (
            "Ctrl-C came"
            if interrupted
            else f"--minutes {config.minutes:g} ran out (the setup alone took "
            f"{first['time_s']:.0f} s)"
        )
        err_console.print(
            f"memplan rl train: warning: the checkpoint is UNTRAINED (its random initial "
            f"weights): {why} before the first training step, which needs "
            f"{config.batch_size} moves of played games; give more --minutes "
            "(0.5 or more) before using it",
            markup=False,
            soft_wrap=True,
        )


def _suite_entry(text: str) -> str:
    """An argparse ``type`` for one ``--suite`` entry: not empty (``Path("")`` is the
    current folder, whose every file was tried), and no FIFO or device."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "--suite: an empty entry; give a catalog suite or workload name, a model file "
            "or a folder"
        )
    return input_file("--suite")(text)


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
