"""`memplan rl train`: its files written together, its inputs checked first, its time kept."""

from __future__ import annotations

import time
from typing import Any

import pytest

from memplan.solvers.rl.network import Network


def test_training_learns_to_follow_its_teacher_and_writes_its_files(tmp_path) -> None:
    pytest.importorskip("torch")
    from memplan.rl.train import TrainConfig, train

    config = TrainConfig(
        minutes=0.4, seed=1, families=(), warm_games=12, eval_instances=3, eval_every_s=1e9
    )
    output = tmp_path / "agent.npz"
    _, log = train(config, output)
    assert output.is_file() and output.with_suffix(".png").is_file()
    assert output.with_suffix(".log.jsonl").read_text().count('"record": "game"') == len(log.games)
    first, last = log.evaluations[0]["policy_return"], log.evaluations[-1]["policy_return"]
    assert last > first  # the prior alone plays better than the random initial network
    loaded = Network.load(output)
    assert loaded.meta["games"] == len(log.games) and loaded.meta["config"]["seed"] == 1


def test_training_stops_inside_a_long_game(tmp_path) -> None:
    """The time limit and Ctrl-C are checked before every simulation of a self-play game,
    not only between games: at 100,000 simulations per move a game takes minutes (a
    15-s run went on for over 8 minutes and ignored Ctrl-C). A cut game is not kept."""
    pytest.importorskip("torch")
    import time

    from memplan.rl.train import TrainConfig, train

    config = TrainConfig(
        minutes=0.05, seed=2, families=(), warm_games=0, eval_instances=1,
        eval_every_s=1e9, simulations=100_000,
    )  # fmt: skip
    started = time.monotonic()
    _, log = train(config, tmp_path / "agent.npz")
    assert time.monotonic() - started < 3 * 60 * config.minutes + 10
    assert log.games == []  # no game of 100,000 simulations per move ends in 3 s
    assert (tmp_path / "agent.npz").is_file()


def test_cli_train_checks_its_output_before_training(tmp_path, capsys) -> None:
    from memplan.cli import EXIT_BAD_INPUT, main

    code = main(["rl", "train", "--minutes", "1", "-o", str(tmp_path / "no" / "a.npz")])
    assert code == EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err
    code = main(["rl", "train", "--minutes", "1", "-o", str(tmp_path / "agent.bin")])
    assert code == EXIT_BAD_INPUT and ".npz" in capsys.readouterr().err
    # A NaN would never compare as elapsed, so training would never stop.
    code = main(["rl", "train", "--minutes", "nan", "-o", str(tmp_path / "agent.npz")])
    assert code == EXIT_BAD_INPUT and "finite" in capsys.readouterr().err
    # 1e308 was taken, and the progress bar's estimate failed with an OverflowError.
    code = main(["rl", "train", "--minutes", "1e308", "-o", str(tmp_path / "agent.npz")])
    assert code == EXIT_BAD_INPUT and "at most 525600 minutes" in capsys.readouterr().err


def _one_line(err: str) -> str:
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-1"], "--seed -1: a seed is a whole number from 0 to 2147483647"),
        (["--seed", "99999999999999999999"], "--seed 99999999999999999999: a seed is"),
        (["--seed", "2147483648"], "--seed 2147483648: a seed is"),  # evaluate refuses it too
        (["--seed", "1.5"], "--seed 1.5: a seed is"),
        (["--simulations", "0"], "--simulations must be 1 .. 4096"),
        (["--simulations", "4097"], "--simulations must be 1 .. 4096"),  # as rl evaluate
        (["--threads", "0"], "--threads must be >= 1"),
        # torch's thread pool failed to start (libgomp), or the process died of SIGSEGV, at
        # the first training step: everything trained so far was lost.
        (["--threads", "100000"], "--threads 100000: at most"),
        (["--families", "vgg,nosuch"], "'nosuch' has no catalog workload"),
        (["--families", "vgg,,resnet"], "an empty name between commas"),
    ],
)
def test_cli_train_refuses_bad_input_in_one_line_before_training(
    argv, message, tmp_path, capsys
) -> None:
    """A seed out of range was a numpy ValueError or torch OverflowError traceback after
    the setup, or (2**31) accepted where every other command refuses it."""
    from memplan.cli import EXIT_BAD_INPUT, main

    output = tmp_path / "agent.npz"
    assert main(["rl", "train", "--minutes", "0.05", "-o", str(output), *argv]) == EXIT_BAD_INPUT
    assert message in _one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_cli_train_checks_the_log_and_curve_paths_before_training(tmp_path, capsys) -> None:
    """The .png and .log.jsonl beside -o were checked only after training, when the
    checkpoint and log had been written (a folder side_png.png, a read-only rop.png)."""
    from memplan.cli import EXIT_BAD_INPUT, main

    (tmp_path / "side.png").mkdir()
    code = main(["rl", "train", "--minutes", "0.02", "-q", "-o", str(tmp_path / "side.npz")])
    assert code == EXIT_BAD_INPUT
    err = _one_line(capsys.readouterr().err)
    assert "side.png: is a folder" in err and "beside -o" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["side.png"]

    old = {tmp_path / f"rop{suffix}": f"old {suffix}" for suffix in (".npz", ".log.jsonl")}
    for path, text in old.items():
        path.write_text(text)
    (tmp_path / "rop.png").write_text("old png")
    (tmp_path / "rop.png").chmod(0o444)
    code = main(["rl", "train", "--minutes", "0.02", "-q", "-o", str(tmp_path / "rop.npz")])
    assert code == EXIT_BAD_INPUT
    assert "rop.png: is read-only" in _one_line(capsys.readouterr().err)
    assert all(path.read_text() == text for path, text in old.items())
    (tmp_path / "log.log.jsonl").mkdir()
    code = main(["rl", "train", "--minutes", "0.02", "-q", "-o", str(tmp_path / "log.npz")])
    assert code == EXIT_BAD_INPUT
    assert "log.log.jsonl: is a folder" in _one_line(capsys.readouterr().err)


def _old_set(tmp_path) -> dict:
    files = {
        tmp_path / f"agent{suffix}": f"old {suffix}" for suffix in (".npz", ".log.jsonl", ".png")
    }
    for path, text in files.items():
        path.write_text(text)
    return files


def test_cli_train_writes_its_three_files_all_or_none(tmp_path, capsys, monkeypatch) -> None:
    """A Ctrl-C (or any failure) while saving left the checkpoint and log written and no
    curve: the three files are rendered first, then written as one set."""
    pytest.importorskip("torch")
    from matplotlib.figure import Figure

    from memplan.cli import EXIT_INTERRUPTED, main

    old = _old_set(tmp_path)

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    code = main(["rl", "train", "--minutes", "0.02", "-q", "-o", str(tmp_path / "agent.npz")])
    assert code == EXIT_INTERRUPTED
    assert "interrupted" in capsys.readouterr().err
    # The old set is untouched, and no temporary file is left beside it.
    assert sorted(tmp_path.iterdir()) == sorted(old)
    assert all(path.read_text() == text for path, text in old.items())


def test_cli_train_ignores_ctrl_c_once_the_games_are_over(tmp_path, capsys, monkeypatch) -> None:
    """A second Ctrl-C while the files were being written aborted with a partial set; once
    the games are over Ctrl-C is ignored (as in optimize), so the run is saved whole."""
    pytest.importorskip("torch")
    import os
    import signal

    from matplotlib.figure import Figure

    from memplan.cli import EXIT_OK, main

    old = _old_set(tmp_path)
    savefig = Figure.savefig

    def interrupted_twice(self: Any, *args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # a signal handler would run by now
        savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", interrupted_twice)
    code = main(["rl", "train", "--minutes", "0.02", "-q", "-o", str(tmp_path / "agent.npz")])
    assert code == EXIT_OK
    assert sorted(tmp_path.iterdir()) == sorted(old)
    assert not any(path.read_bytes().startswith(b"old") for path in old)
    assert Network.load(tmp_path / "agent.npz").meta["games"] >= 0


def test_cli_train_warns_when_the_time_ends_before_any_training_step(
    tmp_path, capsys, monkeypatch
) -> None:
    """--minutes 0.01 ends inside the setup: the files are written (as after an early
    Ctrl-C) but the checkpoint holds random weights, which the run now says loudly."""
    pytest.importorskip("torch")
    import memplan.rl.train
    from memplan.cli import EXIT_OK, main

    policy_game = memplan.rl.train.policy_game
    calls = []

    def slow_setup(*args: Any) -> int:  # the setup's first evaluation outlasts 0.6 s
        if not calls:
            time.sleep(0.7)
        calls.append(1)
        return policy_game(*args)

    monkeypatch.setattr(memplan.rl.train, "policy_game", slow_setup)

    output = tmp_path / "agent.npz"
    assert main(["rl", "train", "--minutes", "0.01", "-q", "-o", str(output)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "UNTRAINED" in captured.err and "--minutes 0.01 ran out" in captured.err
    assert "0 training steps" in captured.out
    meta = Network.load(output).meta
    assert meta["updates"] == 0 and meta["initial_policy_return"] == meta["final_policy_return"]
    assert output.with_suffix(".png").is_file() and output.with_suffix(".log.jsonl").is_file()


def _options_help(command: str) -> dict[str, str]:
    """Each option of ``memplan rl COMMAND`` and its help text, with defaults filled in."""
    import argparse

    from memplan.cli import build_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices[name]
        raise AssertionError(name)

    parser = sub(sub(build_parser(), "rl"), command)
    return {
        action.option_strings[-1]: str(action.help) % {"default": action.default}
        for action in parser._actions
        if action.option_strings and action.option_strings[0] != "-h"
    }


def test_cli_train_help_gives_every_default_and_range() -> None:
    helps = _options_help("train")
    for option, text in helps.items():
        assert "default" in text, option
    assert "0 .. 2147483647 (default: 0)" in helps["--seed"]
    assert "1 .. 4096 (default: 8)" in helps["--simulations"]
    # What the minutes cover, and what comes on top, in seconds.
    assert "setup" in helps["--minutes"] and "come on top" in helps["--minutes"]


def test_cli_rl_help_ranges_match_what_is_enforced() -> None:
    from memplan.cli import rl
    from memplan.options import SEED_MAX
    from memplan.solvers.rl.features import NUM_ACTIONS
    from memplan.solvers.rl.search import MAX_SIMULATIONS

    assert (rl.MAX_SIMULATIONS, rl.MOVE_SLOTS, rl.SEED_MAX) == (
        MAX_SIMULATIONS,
        NUM_ACTIONS,
        SEED_MAX,
    )


def test_cli_train_stops_and_saves_on_sigterm(tmp_path, capsys, monkeypatch) -> None:
    """SIGTERM (``kill``, ``timeout``, a job scheduler's stop) killed a run at once with
    nothing written, however long it had trained; it now stops it as Ctrl-C does: the
    games end and the checkpoint, log and curve are written."""
    pytest.importorskip("torch")
    import os
    import signal

    import memplan.rl.train
    from memplan.cli import EXIT_OK, main

    class Killed(Exception):
        pass

    def killed(signum: int, frame: Any) -> None:  # what the old code let through: no save
        raise Killed

    previous = signal.signal(signal.SIGTERM, killed)
    teacher_game = memplan.rl.train._teacher_game
    calls = []

    def terminated_after_setup(instance: Any) -> Any:
        calls.append(1)
        if len(calls) == 10:  # the setup plays 8 teacher games; this is the 2nd warm game
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # a signal handler would run by now
        return teacher_game(instance)

    monkeypatch.setattr(memplan.rl.train, "_teacher_game", terminated_after_setup)
    output = tmp_path / "agent.npz"
    started = time.monotonic()
    try:
        code = main(["rl", "train", "--minutes", "1", "--families", "", "-q", "-o", str(output)])
        handler_after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == EXIT_OK
    assert time.monotonic() - started < 40  # stopped, not run to its minute
    assert "stopping" in capsys.readouterr().err
    assert 1 <= Network.load(output).meta["games"] <= 3
    assert output.with_suffix(".png").is_file() and output.with_suffix(".log.jsonl").is_file()
    assert handler_after is killed  # the command put the caller's handler back


def test_training_stops_inside_a_slow_instance_baseline(monkeypatch) -> None:
    """The greedy baseline of a sampled training instance may search up to 30 s (a
    127-op random DAG took 19-31 s before the fast kernels were compiled), and the time
    limit was not checked inside it: a 30-s run trained for 41 s. The baseline now gets
    the time left (and stops on Ctrl-C); an instance cut short is not played."""
    pytest.importorskip("torch")
    import memplan.solvers.rl.instances as instances
    from memplan.rl.train import TrainConfig, run_training

    greedy_plan = instances.greedy_plan
    calls: list[float] = []
    slow_since: list[float] = []

    def slow_after_setup(problem: Any, order: Any, time_limit_s: float, *args: Any) -> Any:
        calls.append(time_limit_s)
        slow_since.append(time.monotonic())
        if len(calls) > 1:  # the validation instance is quick; training instances are slow
            stop_event = args[1]
            until = time.monotonic() + time_limit_s
            while time.monotonic() < until and not (stop_event and stop_event.is_set()):
                time.sleep(0.01)
            time_limit_s = max(until - time.monotonic(), 0.0)  # what is left of its limit
        return greedy_plan(problem, order, time_limit_s, *args)

    monkeypatch.setattr(instances, "greedy_plan", slow_after_setup)
    # 6 s: the setup (about 2 s, more under load) must end before the time does.
    config = TrainConfig(minutes=0.1, seed=4, families=(), eval_instances=1, eval_every_s=1e9)
    started = time.monotonic()
    run = run_training(config)
    assert time.monotonic() - started < 6 + 2.0  # the time limit, a little slack
    assert run.games == 0 and len(calls) == 2
    assert calls[1] <= 6.0  # the baseline was given the time left, not 30 s

    def ctrl_c() -> bool:  # half a second into the slow baseline
        return len(calls) > 1 and time.monotonic() > slow_since[1] + 0.5

    config = TrainConfig(minutes=1, seed=4, families=(), eval_instances=1, eval_every_s=1e9)
    calls.clear()
    slow_since.clear()
    run = run_training(config, should_stop=ctrl_c)
    assert len(calls) == 2 and time.monotonic() - slow_since[1] < 2.0 and run.games == 0


def test_cli_train_saves_to_a_rescue_folder_when_its_folder_is_gone(
    tmp_path, capsys, monkeypatch
) -> None:
    """The -o folder was checked before training; when it was gone (or full, or read-only)
    by the end, the run failed with 'folder ... does not exist' and everything it had
    trained was lost. The three files now go to a fresh folder in the temp folder, and
    the error says where."""
    pytest.importorskip("torch")
    import os
    import shutil
    import signal
    import tempfile

    import memplan.rl.train
    from memplan.cli import EXIT_OK, main

    rescue_root = tmp_path / "tmp"
    rescue_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(rescue_root))
    out = tmp_path / "out"
    out.mkdir()
    teacher_game = memplan.rl.train._teacher_game
    calls = []

    def folder_removed(instance: Any) -> Any:
        calls.append(1)
        if len(calls) == 10:  # after the setup's 8: remove -o's folder, then Ctrl-C
            shutil.rmtree(out)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return teacher_game(instance)

    monkeypatch.setattr(memplan.rl.train, "_teacher_game", folder_removed)
    argv = ["rl", "train", "--minutes", "1", "--families", "", "-q", "-o", str(out / "a.npz")]
    code = main(argv)
    err = " ".join(capsys.readouterr().err.split())
    assert code != EXIT_OK
    assert "does not exist" in err and "saved instead" in err
    (rescue,) = list(rescue_root.glob("memplan-rl-train-*"))
    assert str(rescue / "a.npz") in err
    assert sorted(p.name for p in rescue.iterdir()) == ["a.log.jsonl", "a.npz", "a.png"]
    assert Network.load(rescue / "a.npz").meta["games"] >= 1
