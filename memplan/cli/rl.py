"""``memplan rl``: train the mallocGame agent the ``rl`` solver plays with, and measure it.

::

    memplan rl train --minutes 30 --seed 0 -o agent.npz
    memplan rl evaluate --json heldout.json

Self-play training (:mod:`memplan.rl.train`, needs ``pip install
'memplan[rl]'`` for torch) for a wall-clock time, with a progress bar. It writes the
checkpoint (``agent.npz``: numpy weights and how they were trained), the log of every
game and evaluation (``agent.log.jsonl``) and the learning curve (``agent.png``).
The three paths are checked before training, and the three files are written together
(all or none). Ctrl-C (or SIGTERM) stops training early and still writes all three; a
second Ctrl-C before the games have stopped aborts with nothing written; once they have,
Ctrl-C is ignored through the final evaluation and the writing (a few seconds).
Use a checkpoint with ``memplan optimize MODEL --solver rl --option network=agent.npz``.

``memplan rl evaluate`` plays the same held-out instances with and without the network
at equal budget (:mod:`memplan.rl.evaluate`) and prints what the network is worth.

This module builds both parsers; the commands run in :mod:`memplan.cli.rl_train` and
:mod:`memplan.cli.rl_evaluate`, imported only when they run.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from memplan.cli.argparser import CommaList, input_file

if TYPE_CHECKING:
    pass

#: Most search simulations per move (:data:`memplan.solvers.rl.search.MAX_SIMULATIONS`, copied
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
            "(learning curve): all three together, or none. Ctrl-C (or SIGTERM: kill, timeout) "
            "stops training early and still writes all three; a second Ctrl-C before the "
            "games have stopped aborts with nothing written; after that, Ctrl-C is ignored "
            "until the files are written. "
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
        action=CommaList,
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
        help="CPU threads torch may use for the training steps, 1 .. the machine's CPU "
        "count (default: %(default)s)",
    )
    train.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (default: show one on stderr)"
    )
    train.set_defaults(func=_run_train)
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
        action=CommaList,
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
        action=CommaList,
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
    evaluate.set_defaults(func=_run_evaluate)


def _usage(parser: argparse.ArgumentParser) -> int:
    from memplan.cli import EXIT_BAD_INPUT

    parser.print_help()
    return EXIT_BAD_INPUT


def _suite_entry(text: str) -> str:
    """An argparse ``type`` for one ``--suite`` entry: not empty (``Path("")`` is the
    current folder, whose every file was tried), and no FIFO or device."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "--suite: an empty entry; give a catalog suite or workload name, a model file "
            "or a folder"
        )
    return input_file("--suite")(text)


def _run_train(args: argparse.Namespace) -> int:
    """``memplan rl train`` (:mod:`memplan.cli.rl_train`, imported when it runs)."""
    from memplan.cli.rl_train import train_command

    return train_command(args)


def _run_evaluate(args: argparse.Namespace) -> int:
    """``memplan rl evaluate`` (:mod:`memplan.cli.rl_evaluate`, imported when it runs)."""
    from memplan.cli.rl_evaluate import evaluate_command

    return evaluate_command(args)
