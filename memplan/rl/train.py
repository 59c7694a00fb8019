"""Self-play training of the mallocGame agent (needs torch: ``pip install 'memplan[rl]'``).

AlphaZero's loop with the game's own simulator as the model::

    sample an instance ──► play a game: every move by Gumbel search with the current
         ▲                 network (numpy) ──► (features, improved policy, value target)
         │                                              │ per move, into the replay buffer
         └── export the weights to numpy ◄── SGD on minibatches of the buffer (torch)

- Policy target: the search's improved policy ``softmax(logits + sigma(completed Q))``;
  value target: minus the non-compulsory traffic the game still paid after that move,
  in units of the instance's scale (Monte Carlo, undiscounted: rewards are exact).
- Warm start: the first ``warm_games`` games are played by the default policy (replay
  the greedy stack's plan where it applies, else the online Belady pass; see
  :mod:`~memplan.solvers.rl.reference`), with its moves as policy targets, so the buffer
  starts with sensible games instead of random ones.
- Every ``eval_every_s`` seconds the network plays a fixed set of validation instances
  by its prior alone (no search): the learning curve shows what the network learned,
  as the return ``(greedy bytes - game bytes) / scale`` (0 = as good as greedy).

A run writes three files together (all or none, :func:`save_training`): the checkpoint
(``.npz``, numpy weights plus the run's metadata), a JSON-lines log and the
learning-curve PNG next to it. Their paths are checked before any work
(:meth:`TrainOutputs.check`).

The clock (``minutes``) starts before the setup, which builds the model, samples the
validation instances and evaluates the initial network (typically 3-6 s with torch's
import): a run shorter than the setup plays no game. The final evaluation and the
learning curve come on top (typically 1-5 s; the evaluation is reused when no training
step was taken, as the network is then the initial one). A run that took no training
step (``meta["updates"] == 0``) holds the random initial weights:
:attr:`TrainRun.untrained`.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memplan.errors import ConfigError, OutputFileError
from memplan.io.files import OutputTarget, atomic_write_bytes, atomic_write_many, check_output_path
from memplan.options import SEED_MAX
from memplan.placement import PlacementState
from memplan.rl.sampler import TRAIN_FAMILIES, InstanceSampler
from memplan.solver import Budget
from memplan.solvers.rl.features import (
    ACTION_FEATURES,
    GLOBAL_FEATURES,
    NUM_ACTIONS,
    Encoding,
    encode,
)
from memplan.solvers.rl.instances import Instance
from memplan.solvers.rl.network import HIDDEN, PARAMETERS, Network
from memplan.solvers.rl.reference import Reference, default_move
from memplan.solvers.rl.search import play_episode, search_for
from memplan.units import MAX_SECONDS


@dataclass(frozen=True)
class TrainConfig:
    """How to train (recorded in the checkpoint)."""

    minutes: float  # wall-clock training time
    seed: int  # seed of instances, initial weights, noise
    families: tuple[str, ...] = TRAIN_FAMILIES  # catalog families to train on (+ random DAGs)
    simulations: int = 8  # search simulations per move in self-play
    considered: int = 4  # moves the root considers (Gumbel top-k)
    rollout_steps: int = 16  # game steps of default play before a leaf's network value
    warm_games: int = 30  # games of the online Belady pass to start the buffer
    buffer_size: int = 30_000  # replay buffer capacity (moves)
    batch_size: int = 128  # minibatch size (moves)
    updates_per_move: float = 0.25  # SGD steps per move played
    learning_rate: float = 1e-3  # Adam step size
    value_weight: float = 1.0  # weight of the value loss beside the policy loss
    eval_instances: int = 8  # fixed validation instances (same families, other seeds)
    eval_every_s: float = 90.0  # seconds between evaluations
    threads: int = 1  # torch threads

    def __post_init__(self) -> None:
        # Written as "not inside" so that NaN, which compares false both ways, is refused:
        # a NaN time limit would never be reached.
        if not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ConfigError(f"--minutes must be a finite number > 0, got {self.minutes}")
        if self.minutes * 60 > MAX_SECONDS:  # 1e308 broke the progress bar's estimate
            raise ConfigError(
                f"--minutes {self.minutes:g}: at most {MAX_SECONDS // 60} minutes (a year); "
                "give a shorter time"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"--seed must be a whole number, got {self.seed!r}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"--seed must be 0 .. {SEED_MAX}, got {self.seed}")
        if self.simulations < 1:  # the command line caps it too (memplan.cli.rl)
            raise ConfigError(f"--simulations must be >= 1, got {self.simulations}")
        if not 1 <= self.considered <= NUM_ACTIONS:
            raise ConfigError(f"considered must be 1 .. {NUM_ACTIONS}, got {self.considered}")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        cpus = os.cpu_count() or 1
        if self.threads > cpus:  # 16384 threads: libgomp failed (exit 1) or SIGSEGV mid-run
            raise ConfigError(
                f"--threads {self.threads}: at most {cpus}, the CPUs of this machine (more "
                "threads only slow the training steps, and thousands crash torch's thread pool)"
            )
        for name in ("warm_games", "rollout_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("buffer_size", "batch_size", "eval_instances"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.eval_every_s > 0 and self.updates_per_move >= 0):
            raise ConfigError("eval_every_s must be > 0 and updates_per_move >= 0")


#: The log and the learning curve go beside the checkpoint, with these suffixes.
LOG_SUFFIX = ".log.jsonl"
CURVE_SUFFIX = ".png"


@dataclass(frozen=True)
class TrainOutputs:
    """The three files of a run, checked by :func:`~memplan.io.files.check_output_path`."""

    checkpoint: OutputTarget  # the .npz checkpoint (-o)
    log: OutputTarget  # the JSON-lines log of every game and evaluation, beside it
    curve: OutputTarget  # the learning-curve PNG, beside it

    @staticmethod
    def check(output: str | os.PathLike[str]) -> TrainOutputs:
        """Check the checkpoint path and the log and curve paths beside it, before any work.

        Raises:
            ConfigError: the checkpoint name does not end in ``.npz``.
            OutputFileError: one of the three may not be written (a folder, read-only,
                no such folder, ...); the message names it.
        """
        path = Path(output)
        if path.suffix != ".npz":
            raise ConfigError(f"-o {output}: a checkpoint file name must end in .npz")
        checkpoint = check_output_path(path, "-o")

        def beside(suffix: str, what: str) -> OutputTarget:
            try:
                return check_output_path(path.with_suffix(suffix), what)
            except OutputFileError as error:
                raise OutputFileError(
                    f"{error} (it is written beside -o {output}: move it away or choose "
                    "another -o name)"
                ) from None

        return TrainOutputs(
            checkpoint, beside(LOG_SUFFIX, "the log"), beside(CURVE_SUFFIX, "the learning curve")
        )

    @property
    def names(self) -> tuple[str, str, str]:
        """The three paths as given (for messages)."""
        return (self.checkpoint.given, self.log.given, self.curve.given)


@dataclass
class Sample:
    """One move of a game, as the network is trained on it."""

    actions: np.ndarray  # (NUM_ACTIONS, ACTION_FEATURES)
    globals: np.ndarray  # (GLOBAL_FEATURES,)
    mask: np.ndarray  # (NUM_ACTIONS,) bool
    policy: np.ndarray  # (NUM_ACTIONS,) target distribution
    value: float = 0.0  # target: minus the traffic still to come / scale


@dataclass
class TrainLog:
    """What a run records: one row per game and per evaluation."""

    games: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainRun:
    """A run: filled in by :func:`run_training`, ended by :func:`finish_training`."""

    network: Network  # the current weights; ``meta`` says how they were trained
    log: TrainLog  # every game and evaluation
    lines: list[str]  # the log as JSON lines, in the order they happened
    teacher_return: float  # the default policy's validation return (the curve's grey line)
    eval_set: list[Instance]  # the fixed validation instances
    games: int = 0  # games played and learned from
    updates: int = 0  # training (SGD) steps taken: none means the initial weights
    trained_s: float = 0.0  # seconds from the start of the clock to the end of the games
    finished: bool = False  # whether the final evaluation is done (finish_training)

    @property
    def untrained(self) -> bool:
        """Whether no training step was taken: the weights are the random initial ones."""
        return self.updates == 0

    def evaluate(self, elapsed_s: float) -> None:
        """Play the validation set by the network's prior alone; log the mean return."""
        if self.untrained and self.log.evaluations:
            # The same network as at the last evaluation, and its games are deterministic.
            policy_return = self.log.evaluations[-1]["policy_return"]
        else:
            returns = [_relative(i, policy_game(i, self.network)) for i in self.eval_set]
            policy_return = float(np.mean(returns))
        row = {"time_s": elapsed_s, "games": self.games, "policy_return": policy_return}
        self.log.evaluations.append(row)
        self.lines.append(json.dumps({"record": "eval", **row}))


class _PolledEvent(threading.Event):
    """A stop flag that is set when ``poll`` (e.g. a Ctrl-C flag's ``is_set``) says so,
    for a :class:`~memplan.solver.Budget` inside training (None: never set by it)."""

    def __init__(self, poll: Callable[[], bool] | None) -> None:
        super().__init__()
        self._poll = poll

    def is_set(self) -> bool:
        """Whether :meth:`set` was called or ``poll`` says stop."""
        return super().is_set() or (self._poll is not None and self._poll())


def teacher_slot(state: PlacementState, encoding: Encoding, reference: Reference | None) -> int:
    """The default policy's move (replay the reference, else online Belady), as a slot."""
    return encoding.moves.index(default_move(state, reference))


def _teacher_game(instance: Instance) -> tuple[list[Sample], list[int], int]:
    state = instance.new_state(undo=False)
    samples, paid = [], []
    while not state.done:
        encoding = encode(state, instance.scale_bytes, instance.guide)
        slot = teacher_slot(state, encoding, instance.guide)
        target = np.zeros(NUM_ACTIONS)
        target[slot] = 1.0
        samples.append(Sample(encoding.actions, encoding.globals, encoding.mask, target))
        paid.append(state.non_compulsory_bytes)
        move = encoding.moves[slot]
        assert move is not None
        state.apply(move)
    return samples, paid, state.non_compulsory_bytes


def _search_game(
    instance: Instance,
    network: Network,
    config: TrainConfig,
    rng: np.random.Generator,
    out_of_time: Callable[[], bool],
) -> tuple[list[Sample], list[int], int] | None:
    """A self-play game with search; None when ``out_of_time`` cut it short (checked
    before every simulation: a game of many simulations per move can take minutes)."""
    state = instance.new_state()
    search = search_for(
        instance,
        network,
        simulations=config.simulations,
        considered=config.considered,
        rollout_steps=config.rollout_steps,
        rng=rng,
        noise=True,
        should_stop=out_of_time,
    )
    samples: list[Sample] = []
    paid: list[int] = []

    def record(result: Any, before: int) -> None:
        e = result.encoding
        samples.append(Sample(e.actions, e.globals, e.mask, result.policy))
        paid.append(before)

    if not play_episode(state, search, should_stop=out_of_time, on_move=record):
        return None
    if out_of_time():
        return None  # its last moves were chosen from fewer simulations than asked for
    return samples, paid, state.non_compulsory_bytes


def policy_game(instance: Instance, network: Network) -> int:
    """Non-compulsory bytes of a game played by the network's prior alone (argmax)."""
    state = instance.new_state(undo=False)
    while not state.done:
        encoding = encode(state, instance.scale_bytes, instance.guide)
        logits, _ = network(encoding)
        move = encoding.moves[int(np.argmax(logits))]
        assert move is not None
        state.apply(move)
    return state.non_compulsory_bytes


def _relative(instance: Instance, game_bytes: int) -> float:
    assert instance.baseline_bytes is not None
    return (instance.baseline_bytes - game_bytes) / instance.scale_bytes


class _Model:
    """The torch twin of :class:`Network` (same parameter names and shapes)."""

    def __init__(self, network: Network, config: TrainConfig) -> None:
        import torch

        torch.manual_seed(config.seed)
        torch.set_num_threads(config.threads)
        self.torch = torch
        nn = torch.nn
        self.layers = nn.ModuleDict(
            {
                "g": nn.Linear(GLOBAL_FEATURES, HIDDEN),
                "a": nn.Linear(ACTION_FEATURES, HIDDEN),
                "u": nn.Linear(HIDDEN, HIDDEN, bias=False),
                "e": nn.Linear(HIDDEN, HIDDEN),
                "p": nn.Linear(HIDDEN, 1),
                "v": nn.Linear(3 * HIDDEN, HIDDEN),
                "o": nn.Linear(HIDDEN, 1),
            }
        )
        with torch.no_grad():
            for name, tensor in self.layers.state_dict().items():
                tensor.copy_(torch.from_numpy(network.params[name]))
        self.optimizer = torch.optim.Adam(self.layers.parameters(), lr=config.learning_rate)

    def forward(self, actions: Any, globals_: Any, mask: Any) -> tuple[Any, Any]:
        torch, layers = self.torch, self.layers
        relu = torch.relu
        g = relu(layers["g"](globals_))
        h = relu(layers["a"](actions) + layers["u"](g)[:, None, :])
        e = relu(layers["e"](h))
        logits = layers["p"](e).squeeze(-1).masked_fill(~mask, -1e9)
        m = mask[..., None].float()
        mean = (e * m).sum(1) / m.sum(1).clamp(min=1.0)
        top = (e * m).max(1).values
        hidden = relu(layers["v"](torch.cat([g, mean, top], dim=1)))
        value = -torch.nn.functional.softplus(layers["o"](hidden).squeeze(-1))
        return logits, value

    def step(self, batch: Sequence[Sample], value_weight: float) -> tuple[float, float]:
        torch = self.torch
        actions = torch.from_numpy(np.stack([s.actions for s in batch]))
        globals_ = torch.from_numpy(np.stack([s.globals for s in batch]))
        mask = torch.from_numpy(np.stack([s.mask for s in batch]))
        policy = torch.from_numpy(np.stack([s.policy for s in batch]).astype(np.float32))
        value = torch.tensor([s.value for s in batch], dtype=torch.float32)
        logits, predicted = self.forward(actions, globals_, mask)
        log_p = torch.log_softmax(logits, dim=1)
        policy_loss = -(policy * log_p).sum(1).mean()
        value_loss = ((predicted - value) ** 2).mean()
        loss = policy_loss + value_weight * value_loss
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.layers.parameters(), 5.0)
        self.optimizer.step()
        return float(policy_loss.detach()), float(value_loss.detach())

    def export(self, meta: dict[str, Any]) -> Network:
        params = {
            name: tensor.detach().numpy().astype(np.float32).copy()
            for name, tensor in self.layers.state_dict().items()
        }
        assert set(params) == set(PARAMETERS)
        return Network(params, meta)


def train(
    config: TrainConfig,
    output: str | os.PathLike[str],
    *,
    progress: Callable[[float, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Network, TrainLog]:
    """Train for ``config.minutes`` and write the checkpoint, log and curve next to ``output``.

    The three paths are checked first (:meth:`TrainOutputs.check`), then
    :func:`run_training` runs and :func:`save_training` writes the three files together.

    Args:
        config: the run's settings.
        output: the checkpoint path (``.npz``); ``.log.jsonl`` and ``.png`` go beside it.
        progress: called after every game with (elapsed seconds, the game's log row).
        should_stop: polled between games and simulations (e.g. Ctrl-C); training stops
            early, saving.

    Raises:
        ConfigError, OutputFileError: a bad output path, found before any training.
    """
    outputs = TrainOutputs.check(output)
    run = run_training(config, progress=progress, should_stop=should_stop)
    save_training(outputs, run)
    return run.network, run.log


def run_training(
    config: TrainConfig,
    *,
    progress: Callable[[float, dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    started: float | None = None,
) -> TrainRun:
    """Play and learn for ``config.minutes`` of wall-clock time, counted from ``started``.

    The time covers the setup (building the model, sampling the validation instances,
    evaluating the initial network and the teacher on them) and the games. The final
    evaluation (:func:`finish_training`) and the files (:func:`save_training`) come after.

    Args:
        config: the run's settings.
        progress: called after every game with (elapsed seconds, the game's log row).
        should_stop: polled between games and simulations (e.g. Ctrl-C); training stops
            early.
        started: the ``time.monotonic()`` the clock starts from (so that a caller's own
            setup counts too); default: now.
    """
    started = time.monotonic() if started is None else started
    rng = np.random.default_rng(config.seed)
    network = Network.initial(config.seed)
    model = _Model(network, config)
    sampler = InstanceSampler(config.seed, config.families)
    validation = InstanceSampler(config.seed + 1_000_003, config.families)
    eval_set = [validation.sample() for _ in range(config.eval_instances)]
    teacher_eval = float(np.mean([_relative(i, _teacher_game(i)[2]) for i in eval_set]))
    meta: dict[str, Any] = {"config": asdict(config), "teacher_eval_return": teacher_eval}
    run = TrainRun(Network(network.params, meta), TrainLog(), [], teacher_eval, eval_set)
    buffer: deque[Sample] = deque(maxlen=config.buffer_size)
    limit_s = config.minutes * 60.0

    def out_of_time() -> bool:
        return time.monotonic() - started >= limit_s or (should_stop is not None and should_stop())

    # A training instance's greedy baseline may search for seconds (30 at most): it gets
    # the time left and stops on should_stop (Ctrl-C); one cut short is not played.
    sampling = Budget(limit_s, started_at_s=started, stop_event=_PolledEvent(should_stop))

    run.evaluate(time.monotonic() - started)
    last_eval = 0.0
    while True:
        elapsed = time.monotonic() - started
        if out_of_time():
            break
        if elapsed - last_eval >= config.eval_every_s:
            run.evaluate(elapsed)
            last_eval = elapsed
        instance = sampler.sample(sampling)
        if out_of_time():
            break  # the baseline was cut short: its reward would not be the same
        warm = run.games < config.warm_games
        if warm:
            samples, paid, final = _teacher_game(instance)
        else:
            played = _search_game(instance, run.network, config, rng, out_of_time)
            if played is None:
                break  # the time ran out (or Ctrl-C) inside the game: it is not kept
            samples, paid, final = played
        for sample, before in zip(samples, paid, strict=True):
            sample.value = -(final - before) / instance.scale_bytes
            buffer.append(sample)
        losses = [0.0, 0.0]
        steps = max(1, int(len(samples) * config.updates_per_move))
        if len(buffer) >= config.batch_size:
            for _ in range(steps):
                picks = rng.integers(len(buffer), size=config.batch_size)
                losses = list(model.step([buffer[k] for k in picks], config.value_weight))
            run.updates += steps
            run.network = model.export(meta)
        run.games += 1
        row = {
            "time_s": time.monotonic() - started,
            "game": run.games,
            "kind": "teacher" if warm else "search",
            "instance": instance.name,
            "moves": len(samples),
            "game_bytes": final,
            "greedy_bytes": instance.baseline_bytes,
            "return": _relative(instance, final),
            "policy_loss": losses[0],
            "value_loss": losses[1],
        }
        run.log.games.append(row)
        run.lines.append(json.dumps({"record": "game", **row}))
        if progress is not None:
            progress(row["time_s"], row)
    run.trained_s = time.monotonic() - started
    return run


def finish_training(run: TrainRun) -> None:
    """The final evaluation, and what the run did in the checkpoint's ``meta`` (once).

    With no training step taken, the network is the initial one and its evaluation is
    reused (no time spent).
    """
    if run.finished:
        return
    run.evaluate(run.trained_s)
    run.network.meta.update(
        games=run.games,
        updates=run.updates,
        trained_s=round(run.trained_s, 1),
        final_policy_return=run.log.evaluations[-1]["policy_return"],
        initial_policy_return=run.log.evaluations[0]["policy_return"],
    )
    run.finished = True


def save_training(outputs: TrainOutputs, run: TrainRun) -> None:
    """Write the checkpoint, the log and the learning curve together: all three or none.

    Ends the run first (:func:`finish_training`). Everything is rendered, then the three
    files are staged and renamed (:func:`~memplan.io.files.atomic_write_many`): an error
    or Ctrl-C on the way leaves the three paths as they were.

    Raises:
        OutputFileError: a path may no longer be written, or the disk refused the bytes.
    """
    finish_training(run)
    checkpoint = run.network.to_bytes()
    log_text = "\n".join(run.lines) + "\n"
    curve = learning_curve_png(run.log, run.teacher_return)
    atomic_write_many(
        [
            (outputs.checkpoint, checkpoint),
            (outputs.log, log_text.encode("utf-8")),
            (outputs.curve, curve),
        ]
    )


def rescue_training(outputs: TrainOutputs, run: TrainRun) -> Path:
    """Write the three files of a run that :func:`save_training` could not write (the
    folder was removed, filled or made read-only during training) into a new folder in
    the system's temp folder, under the same names; return the checkpoint's path there.

    Raises:
        OutputFileError: the temp folder refused them too.
    """
    import tempfile

    checkpoint = Path(outputs.checkpoint.given)
    try:
        folder = Path(tempfile.mkdtemp(prefix="memplan-rl-train-"))
    except OSError as error:
        raise OutputFileError(
            f"cannot create a folder in the temp folder ({error.strerror or error})"
        ) from None
    rescued = TrainOutputs.check(folder / checkpoint.name)
    save_training(rescued, run)
    return folder / checkpoint.name


def plot_learning_curve(
    log: TrainLog, path: str | os.PathLike[str], teacher_return: float | None = None
) -> None:
    """Write the learning curve (:func:`learning_curve_png`) to ``path`` atomically."""
    atomic_write_bytes(path, learning_curve_png(log, teacher_return))


def learning_curve_png(log: TrainLog, teacher_return: float | None = None) -> bytes:
    """Reward against time: self-play games (smoothed) and the network's validation return."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=110)
    axes = figure.add_subplot()
    search = [g for g in log.games if g["kind"] == "search"]
    if search:
        minutes = np.array([g["time_s"] for g in search]) / 60
        returns = np.array([g["return"] for g in search])
        window = max(1, len(returns) // 20)
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        axes.plot(minutes, returns, ".", alpha=0.25, color="tab:blue", label="self-play game")
        axes.plot(
            minutes[window - 1 :], smooth, color="tab:blue", label=f"self-play (mean of {window})"
        )
    if log.evaluations:
        axes.plot(
            [e["time_s"] / 60 for e in log.evaluations],
            [e["policy_return"] for e in log.evaluations],
            "o-",
            color="tab:red",
            label="network prior alone, validation set",
        )
    if teacher_return is not None:
        axes.axhline(teacher_return, color="grey", linestyle=":", label="default policy (teacher)")
    axes.axhline(0.0, color="black", linewidth=0.8, label="greedy stack (baseline)")
    axes.set_xlabel("training time (minutes)")
    axes.set_ylabel("return = (greedy bytes - game bytes) / scale")
    # The figure is read without the code: say what the scale is (under the x label).
    figure.subplots_adjust(bottom=0.2)
    figure.text(
        0.01,
        0.01,
        "scale: per game, the larger of its capacity and the online Belady pass's traffic",
        fontsize=7,
        color="dimgrey",
    )
    axes.set_title("mallocGame agent: learning curve")
    axes.legend(loc="lower right", fontsize=8)
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
