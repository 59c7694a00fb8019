"""``memplan rl train``: self-play training of the mallocGame agent with a progress bar;
writes the checkpoint, its log and the learning curve together (see :mod:`memplan.cli.rl`)."""

from __future__ import annotations

import argparse
import threading
import time
from typing import TYPE_CHECKING, Any, NoReturn

from memplan.cli.common import checked_seed
from memplan.errors import ConfigError, OutputFileError

if TYPE_CHECKING:
    from memplan.rl.train import TrainConfig, TrainOutputs, TrainRun


def train_command(args: argparse.Namespace) -> int:
    """``memplan rl train``."""
    started = time.monotonic()  # --minutes counts from here: imports and setup included
    from memplan.cli import EXIT_OK
    from memplan.cli.common import err_console
    from memplan.cli.plancommon import StopOnSigint, sigint_ignored, sigterm_stops
    from memplan.rl.sampler import TRAIN_FAMILIES
    from memplan.rl.train import TrainConfig, TrainOutputs, run_training, save_training
    from memplan.solvers.rl.search import MAX_SIMULATIONS

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
    term_notice = "memplan rl train: SIGTERM: stopping; then saving the checkpoint, log and curve"
    # SIGTERM stops the games as Ctrl-C does, and is ignored while the files are written.
    with progress, StopOnSigint(stop, notice), sigterm_stops(stop, term_notice):
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
            try:
                save_training(outputs, run)
            except OutputFileError as error:  # checked before training, gone since
                _rescue(error, outputs, run)
        progress.update(task, status="written")
    with sigint_ignored():
        _report_training(run, outputs, config, interrupted=stop.is_set())
    return EXIT_OK


def _rescue(error: OutputFileError, outputs: TrainOutputs, run: TrainRun) -> NoReturn:
    """Save a run whose -o could no longer be written to a folder in the temp folder;
    raise ``error`` saying where the files went (or that they are lost)."""
    from memplan.rl.train import LOG_SUFFIX, rescue_training

    try:
        saved = rescue_training(outputs, run)
    except OutputFileError as second:
        raise OutputFileError(
            f"{error}; saving the run in the temp folder failed too ({second}): it is lost"
        ) from None
    raise OutputFileError(
        f"{error}; the run was saved instead to {saved} (and {saved.stem}{LOG_SUFFIX}, "
        f"{saved.stem}.png beside it): move them where you want them"
    ) from None


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
            "Ctrl-C (or SIGTERM) came"
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
