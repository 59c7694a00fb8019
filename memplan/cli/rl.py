"""``memplan rl``: train the mallocGame agent the ``rl`` solver plays with.

::

    memplan rl train --minutes 30 --seed 0 -o agent.npz

Self-play training (:mod:`memplan.rl.train`, needs ``pip install
'memplan[rl]'`` for torch) for a wall-clock time, with a progress bar. It writes the
checkpoint (``agent.npz``: numpy weights and how they were trained), the log of every
game and evaluation (``agent.log.jsonl``) and the learning curve (``agent.png``).
Ctrl-C stops training early and still writes all three; a second Ctrl-C aborts.
Use a checkpoint with ``memplan optimize MODEL --solver rl --option network=agent.npz``.
"""

from __future__ import annotations

import argparse
import math
import os
import threading
from pathlib import Path
from typing import Any

from memplan.errors import ConfigError


def add_parser(subparsers: Any) -> None:
    """Register ``rl`` and ``rl train``."""
    parser = subparsers.add_parser(
        "rl",
        help="train the mallocGame agent of the rl solver",
        description="Train the policy/value network that the rl solver's tree search uses.",
    )
    sub = parser.add_subparsers(dest="rl_command", metavar="train")
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
    parser.set_defaults(func=lambda args: _usage(parser))


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
