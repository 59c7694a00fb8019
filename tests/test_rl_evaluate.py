"""The held-out evaluation: the same games with and without the network, equal budgets."""

from __future__ import annotations

import json

import pytest

from memplan.accelerator import Accelerator
from memplan.ir import graph_to_json
from memplan.problem import Problem, Scope
from memplan.rl.evaluate import EvalConfig, EvalRow, Game, cells, evaluate_cell, tally
from memplan.solvers.rl.network import SHIPPED_CHECKPOINT, Network
from memplan.testing import random_dag

ACCELERATOR = Accelerator("t", 1, alignment_bytes=64)


def _problem(graph, scope: Scope = Scope.ACTIVATIONS) -> Problem:
    return Problem(graph, ACCELERATOR, scope)


def _cells(seed: int, budgets=("MR",), orders=("model",)):
    graph = random_dag(seed, 30)
    return list(cells([(f"dag{seed}", graph)], _problem, [Scope.ACTIVATIONS], budgets, orders))


def test_cells_are_the_budgets_where_the_online_pass_spills() -> None:
    graph = random_dag(3, 30)
    found = list(cells([("dag3", graph)], _problem, [Scope.ACTIVATIONS], ["MR", "1GiB"], ["model"]))
    # At 1 GiB nothing spills, so the game decides nothing there: only M_R is a cell.
    assert [(c.workload, c.budget, c.order) for c in found] == [("dag3", "MR", "model")]
    instance = found[0].instance
    assert instance.problem.capacity_bytes == instance.problem.min_resident_bytes
    assert instance.name == "dag3/activations/MR/model"


@pytest.mark.parametrize("seed", [3, 11])
def test_every_game_is_scored_and_rollouts_never_end_above_greedy(seed: int) -> None:
    network = Network.load(SHIPPED_CHECKPOINT)
    config = EvalConfig(simulations=4, considered=2, rollout_steps=8, alternatives=1)
    for cell in _cells(seed, ("MR", "MH"), ("model", "min-peak")):
        instance = cell.instance
        row = evaluate_cell(cell, network, config)
        assert row is not None
        assert row.greedy_bytes == instance.baseline_bytes
        assert row.online_bytes > 0  # a cell is a game with something to decide
        # A fortified pass starts from greedy's plan and follows only better games.
        assert row.rollout_network.bytes <= row.greedy_bytes
        assert row.rollout_free.bytes <= row.greedy_bytes
        for search in ("gumbel", "rollout"):
            for net in (True, False):
                assert row.game(search, net).bytes >= 0 and row.game(search, net).seconds >= 0
        # Budgets are counted in simulations and rollouts: the same config, the same games.
        again = evaluate_cell(cell, network, config)
        assert again is not None
        assert [again.game(s, n).bytes for s in ("gumbel", "rollout") for n in (True, False)] == [
            row.game(s, n).bytes for s in ("gumbel", "rollout") for n in (True, False)
        ]


def test_a_cell_cut_short_is_left_out() -> None:
    network = Network.load(SHIPPED_CHECKPOINT)
    row = evaluate_cell(_cells(3)[0], network, EvalConfig(), should_stop=lambda: True)
    assert row is None


def _row(greedy: int, gumbel: tuple[int, int], rollout: tuple[int, int]) -> EvalRow:
    return EvalRow(
        "w", "activations", "MR", "model", 10, 1024, greedy, greedy * 2,
        Game(gumbel[0], 1.0), Game(gumbel[1], 2.0), Game(rollout[0], 3.0), Game(rollout[1], 5.0),
    )  # fmt: skip


def test_tally_counts_network_against_network_free_and_against_greedy() -> None:
    rows = [
        _row(100, (100, 300), (90, 100)),
        _row(50, (60, 40), (50, 50)),
        _row(70, (70, 70), (70, 60)),
    ]
    gumbel, rollout = tally(rows)
    assert (gumbel.better, gumbel.equal, gumbel.worse) == (1, 1, 1)
    assert (rollout.better, rollout.equal, rollout.worse) == (1, 1, 1)
    assert (gumbel.below_greedy_network, gumbel.below_greedy_free) == (0, 1)
    assert (rollout.below_greedy_network, rollout.below_greedy_free) == (1, 1)
    assert gumbel.median_seconds_network == 1.0 and rollout.median_seconds_free == 5.0


def test_evaluate_config_refuses_empty_budgets() -> None:
    from memplan.errors import ConfigError

    with pytest.raises(ConfigError, match="simulations"):
        EvalConfig(simulations=0)
    with pytest.raises(ConfigError, match="rollout-steps"):
        EvalConfig(rollout_steps=-1)


def test_cli_evaluate_writes_rows_and_tallies(tmp_path, capsys) -> None:
    from memplan.cli import EXIT_OK, main

    model = tmp_path / "dag.json"
    model.write_text(graph_to_json(random_dag(3, 24)))
    out = tmp_path / "heldout.json"
    code = main(
        ["rl", "evaluate", "--suite", str(model), "--budgets", "MR", "--scope", "activations",
         "--orders", "model", "--simulations", "2", "--json", str(out), "-q"]
    )  # fmt: skip
    assert code == EXIT_OK
    text = capsys.readouterr().out
    assert "held-out cells where the online Belady pass spills" in text
    document = json.loads(out.read_text())
    assert len(document["rows"]) == 1 and document["rows"][0]["workload"] == "dag"
    assert [t["search"] for t in document["tallies"]] == ["gumbel", "rollout"]
    assert document["config"]["simulations"] == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--orders", "sideways"], "unknown order"),
        (["--simulations", "0"], "--simulations must be 1 .. 4096"),
        (["--alternatives", "1000"], "--alternatives must be 1 .. 24"),
        (["--seed", "-1"], "--seed -1"),
        (["--suite", "no/such/model.onnx"], "no/such/model.onnx"),
        (["--network", "missing.npz"], "missing.npz"),
        (["--json", "no/such/folder/out.json"], "does not exist"),
        (["--max-ops", "1"], "no held-out workload"),
    ],
)
def test_cli_evaluate_refuses_bad_input_in_one_line(argv, message, capsys) -> None:
    from memplan.cli import EXIT_BAD_INPUT, main

    assert main(["rl", "evaluate", *argv]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--json", ""], "--json '': empty file name; give a file name"),
        (["--json", " "], "--json ' ': empty file name"),
        (["--suite", ""], "--suite: an empty entry; give a catalog suite or workload name"),
        (["--budgets", "MR,,MH"], "--budgets 'MR,,MH' has an empty item; remove the extra comma"),
        (["--budgets", ","], "--budgets is empty; give a comma-separated list"),
        (["--orders", "model,model"], "--orders 'model,model': 'model' is given twice"),
        (["--budgets", "MR, MR"], "--budgets 'MR, MR': 'MR' is given twice; give each once"),
    ],
)
def test_cli_evaluate_refuses_empty_and_repeated_items(
    argv, message, tmp_path, monkeypatch, capsys
) -> None:
    """``--json ''`` ran and wrote nothing, ``--suite ''`` scanned the current folder,
    ``--budgets MR,,MH`` skipped the empty item and ``--orders model,model`` played
    every cell twice and counted it twice: each is now one line, exit 2, before any game."""
    from memplan.cli import EXIT_BAD_INPUT, main

    model = tmp_path / "dag.json"
    model.write_text(graph_to_json(random_dag(3, 24)))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # an empty --suite entry once meant this folder
    base = ["--suite", str(model), "--budgets", "MR", "--scope", "activations",
            "--orders", "model", "--simulations", "2", "-q"]  # fmt: skip
    for flag in ("--budgets", "--orders"):  # a list option given twice joins its lists
        if flag in argv:
            at = base.index(flag)
            del base[at : at + 2]
    try:
        code = main(["rl", "evaluate", *base, *argv])
    except SystemExit as exit_:  # argparse's own errors exit; the checks in the command return
        code = exit_.code
    assert code == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert message in err and not captured.out
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ("0", "every budget is below M_R"),
        ("0.1*MR", "every budget is below M_R"),
        ("1GiB", "spills on none of the --orders"),
        ("0,1GiB", "1 of the 2 (workload, scope, budget) combinations are below M_R"),
    ],
)
def test_cli_evaluate_with_nothing_to_play_is_bad_input(budgets, message, tmp_path, capsys) -> None:
    """Every budget below M_R printed "skipped" lines and "no cell was played" and exited
    0, while a suite where nothing loads exits 2: both are now one line and exit 2."""
    from memplan.cli import EXIT_BAD_INPUT, main

    model = tmp_path / "dag.json"
    model.write_text(graph_to_json(random_dag(3, 24)))
    out = tmp_path / "heldout.json"
    code = main(
        ["rl", "evaluate", "--suite", str(model), "--budgets", budgets, "--scope", "activations",
         "--orders", "model", "--json", str(out), "-q"]
    )  # fmt: skip
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "nothing could be played" in err and message in err
    assert not out.exists()


def test_cli_evaluate_help_gives_every_default_and_the_enforced_ranges() -> None:
    import argparse

    from memplan.cli import build_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices[name]
        raise AssertionError(name)

    parser = sub(sub(build_parser(), "rl"), "evaluate")
    helps = {
        action.option_strings[-1]: str(action.help) % {"default": action.default}
        for action in parser._actions
        if action.option_strings and action.option_strings[0] != "-h"
    }
    for option, text in helps.items():
        assert "default" in text, option
    assert "1 .. 4096 (default: 8)" in helps["--simulations"]
    assert "1 .. 25 (default: 4)" in helps["--considered"]
    assert ">= 0 (default: 16)" in helps["--rollout-steps"]
    assert "1 .. 24 (default: 2)" in helps["--alternatives"]
    assert "0 .. 2147483647 (default: 0)" in helps["--seed"]
    # The ranges are the ones EvalConfig enforces.
    from memplan.errors import ConfigError
    from memplan.rl.evaluate import EvalConfig

    for field, most in (("simulations", 4096), ("considered", 25), ("alternatives", 24)):
        EvalConfig(**{field: most})
        with pytest.raises(ConfigError, match=f"1 .. {most}"):
            EvalConfig(**{field: most + 1})


def test_cli_evaluate_interrupted_before_any_cell_writes_nothing(
    tmp_path, capsys, monkeypatch
) -> None:
    """Ctrl-C inside the first cell: nothing to keep, so no (empty) JSON replaces --json."""
    import os
    import signal
    import time

    import memplan.rl.evaluate
    from memplan.cli import EXIT_INTERRUPTED, main

    def ctrl_c(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # StopOnSigint: the first Ctrl-C asks to stop
        time.sleep(0.05)
        return None  # the cell's games were cut short

    monkeypatch.setattr(memplan.rl.evaluate, "evaluate_cell", ctrl_c)
    model = tmp_path / "dag.json"
    model.write_text(graph_to_json(random_dag(3, 24)))
    out = tmp_path / "heldout.json"
    out.write_text("old results\n")
    code = main(
        ["rl", "evaluate", "--suite", str(model), "--budgets", "MR", "--scope", "activations",
         "--orders", "model", "--json", str(out), "-q"]
    )  # fmt: skip
    assert code == EXIT_INTERRUPTED
    assert "before any cell was played" in capsys.readouterr().err
    assert out.read_text() == "old results\n"


def test_cli_evaluate_on_workloads_that_spill_nowhere_at_mr_does_not_ask_for_smaller_budgets(
    tmp_path, capsys
) -> None:
    """On a one-op model nothing spills at any budget: the hint said "give smaller budgets,
    such as MR,MH" though the budgets were MR,MH. When the pass spills nowhere even at M_R
    it says so and asks for other workloads; smaller budgets only when larger ones were given."""
    from memplan.cli import EXIT_BAD_INPUT, main
    from memplan.ir import GraphBuilder, TensorKind

    b = GraphBuilder("single")
    x = b.tensor("x", 100, TensorKind.INPUT)
    y = b.tensor("y", 100)
    b.op("o", "Relu", [x], [y])
    b.mark_output(y)
    model = tmp_path / "single.json"
    model.write_text(graph_to_json(b.build()))
    for budgets in ("MR,MH", "MH"):
        code = main(["rl", "evaluate", "--suite", str(model), "--budgets", budgets, "-q"])
        assert code == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "even at M_R" in err and "evaluate other workloads" in err
        assert "give smaller budgets" not in err

    dag = tmp_path / "dag.json"
    dag.write_text(graph_to_json(random_dag(3, 24)))
    code = main(["rl", "evaluate", "--suite", str(dag), "--budgets", "1GiB", "-q"])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert "give smaller budgets, down to MR" in err and "even at M_R" not in err


def test_cli_evaluate_warns_about_an_untrained_checkpoint(tmp_path, capsys) -> None:
    """A checkpoint of a run that took no training step (``memplan rl train`` warns about
    it once) was measured without a word: its table showed random weights as "the
    network". The command now says so beside the table."""
    from memplan.cli import EXIT_OK, main

    model = tmp_path / "dag.json"
    model.write_text(graph_to_json(random_dag(3, 24)))
    untrained = Network(Network.initial(0).params, {"updates": 0, "games": 0})
    checkpoint = tmp_path / "untrained.npz"
    checkpoint.write_bytes(untrained.to_bytes())
    argv = ["rl", "evaluate", "--suite", str(model), "--budgets", "MR", "--scope", "activations",
            "--orders", "model", "--simulations", "2", "-q"]  # fmt: skip
    assert main([*argv, "--network", str(checkpoint)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "untrained.npz" in err and "UNTRAINED" in err and "random initial weights" in err
    assert main(argv) == EXIT_OK  # the shipped agent: no such warning
    assert "UNTRAINED" not in capsys.readouterr().err


def test_cli_evaluate_on_a_model_of_unfixed_shapes_does_not_suggest_flags_it_lacks(
    tmp_path, capsys
) -> None:
    """An ONNX model with a symbolic batch dim was skipped with "Give the sizes ..., e.g.
    --dim batch=1", a flag rl evaluate does not have (it said "unrecognized arguments")."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from memplan.cli import EXIT_BAD_INPUT, main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph), str(model))
    assert main(["rl", "evaluate", "--suite", str(model), "-q"]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert "symbolic dim 'batch'" in err
    assert "rl evaluate takes no --dim or --input-shape" in err and "fixed input shapes" in err


def test_cli_evaluate_refuses_to_write_its_json_over_the_checkpoint(tmp_path, capsys) -> None:
    """``--network agent.npz --json agent.npz`` replaced the checkpoint with the JSON
    rows after the first cell: the trained network was gone."""
    from memplan.cli import EXIT_BAD_INPUT, main

    checkpoint = tmp_path / "agent.npz"
    checkpoint.write_bytes(SHIPPED_CHECKPOINT.read_bytes())
    (tmp_path / "link.json").symlink_to(checkpoint)
    for json_path in (checkpoint, tmp_path / "link.json"):
        code = main(["rl", "evaluate", "--network", str(checkpoint), "--json", str(json_path),
                     "--suite", "darts_v2_cifar_small", "-q"])  # fmt: skip
        assert code == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "is the --network checkpoint" in err and len(err.strip().splitlines()) == 1
    assert checkpoint.read_bytes() == SHIPPED_CHECKPOINT.read_bytes()
