"""Every command-line error argparse finds is one line naming the sub-command and the fix;
so is a Ctrl-C before the arguments are parsed."""

from __future__ import annotations

import pytest

from memplan.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, main

D = "darts_v2_cifar_small"


def _error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors exit; the checks in run() return
        code = exit_.code  # type: ignore[assignment]
    assert code == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["optimize", D, "--seed", "1.5"],
            "memplan optimize: error: --seed 1.5: a seed is a whole",
        ),
        (["optimize", D, "--seed", "nan"], "memplan optimize: error: --seed nan: a seed is"),
        (["optimize", D, "--seed", ""], "memplan optimize: error: --seed '': a seed is"),
        (
            ["optimize", D, "--dtype-bytes", "1.5"],
            "--dtype-bytes must be a whole number, got '1.5'",
        ),
        (["optimize", D, "--scope", "weights"], "--scope must be one of 'activations', 'all'"),
        (["optimize", D, "--objective", "speed"], "--objective must be one of 'traffic'"),
        (["optimize", D, "--scratchpad", "-0.5*MP"], "join them with '=' (--scratchpad=-...)"),
        (["optimize", D, "--time-limit", "-inf"], "--time-limit needs a value"),
        (["optimize", D, "--time-limit=-inf"], "--time-limit must be a finite number of seconds"),
        (["validate", D, "p.json", "--per-kind", "-1"], "--per-kind: '-1' is not a number"),
        (["inspect", D, "--top", "nan"], "memplan inspect: error: --top must be a whole number"),
        (["inspect", D, "--exact-mp", "none"], "--exact-mp must be a number, got 'none'"),
        (["compare", D, "--time-limit", "none"], "'none' is for optimize"),
        (["bench", "--time-limit", "x"], "--time-limit must be a number of seconds, e.g. 60"),
        (["inspect", "X", "--scratchpad", "MR"], "memplan inspect: error: unrecognized arguments"),
        (["solvers", "foo"], "memplan solvers: error: unrecognized arguments: foo"),
        (["graphs", "export", "A", "B", "-o", "f"], "memplan graphs export: error: unrecognized"),
        (["nosuchcommand"], "memplan: error: COMMAND must be one of 'inspect'"),
        (["optimize"], "memplan optimize: error: the following arguments are required: model"),
    ],
)
def test_a_parse_error_is_one_line(capsys, argv, expected):
    """argparse printed a usage block of 9 to 13 lines before the error, and extra
    arguments of a sub-command were reported by the top-level parser."""
    err = _error_of(capsys, argv)
    assert expected in err, err
    assert err.count("\n") == 1 and "usage:" not in err


def test_the_one_line_points_to_the_sub_commands_help(capsys):
    err = _error_of(capsys, ["graphs", "export", "A", "B", "-o", "f"])
    assert err.rstrip().endswith("(memplan graphs export --help)")


def test_help_is_still_printed_whole(capsys):
    with pytest.raises(SystemExit) as info:
        main(["optimize", "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: memplan optimize")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["inspect", ""], "memplan inspect: error: empty path given for the model"),
        (["validate", D, ""], "memplan validate: error: empty path given for the plan file"),
        (["score", D, " "], "memplan score: error: empty path given for the plan file"),
        (["optimize", D, "--accelerator", ""], "empty path given for --accelerator"),
        (["validate", D, "p.json", "--accelerator", ""], "empty path given for --accelerator"),
        (["allocate", ""], "memplan allocate: error: empty path given for the buffers CSV"),
    ],
)
def test_an_empty_input_path_is_named(capsys, argv, expected):
    """An empty path was Path('') = '.', reported as '.: is a directory' or ': is a folder'."""
    err = _error_of(capsys, argv)
    assert expected in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["validate", D, "{fifo}"], "the plan file {fifo}: is a FIFO (named pipe)"),
        (["optimize", "{fifo}"], "the model {fifo}: is a FIFO (named pipe)"),
        (["inspect", D, "--accelerator", "{fifo}"], "--accelerator {fifo}: is a FIFO"),
        (["allocate", "{fifo}"], "the buffers CSV {fifo}: is a FIFO"),
        (["allocate", "/dev/zero"], "the buffers CSV /dev/zero: is a character device"),
    ],
)
def test_reading_a_fifo_or_device_is_refused(tmp_path, argv, expected):
    """Reading a FIFO blocked forever (optimize, validate); run in a process to time out."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "f.json"
    os.mkfifo(fifo)
    command = [sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"]
    done = subprocess.run(
        [*command, *(a.format(fifo=fifo) for a in argv)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert expected.format(fifo=fifo) in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["graphs", "export", "no-such-workload", "-o", "x.onnx"], "memplan graphs export: "),
        (["rl", "evaluate", "--suite", "no-such-suite"], "memplan rl evaluate: "),
    ],
)
def test_an_error_in_a_nested_command_names_it_whole(
    capsys: pytest.CaptureFixture[str], argv: list[str], prefix: str
) -> None:
    """Errors raised while a nested command ran began 'memplan rl: error:'."""
    err = _error_of(capsys, argv)
    assert err.startswith(prefix + "error: ") and err.count("\n") == 1, err


COMMAND_ARGS = {
    "inspect": [D],
    "graphs": ["list"],
    "optimize": [D],
    "validate": [D, "p.json"],
    "score": [D, "p.json"],
    "solvers": [],
    "bench": [],
    "compare": [D],
    "allocate": ["b.csv"],
    "rl": ["evaluate"],
}


def _ctrl_c_on_import(name: str) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", sorted(COMMAND_ARGS))
def test_ctrl_c_while_the_parser_is_built_is_one_line(capsys, monkeypatch, command):
    """A Ctrl-C in the first 0.3 s (the sub-commands' imports: numpy, rich) printed a
    27-39 line KeyboardInterrupt traceback, exit -2, for every command."""
    import types

    import memplan.cli as cli

    assert set(COMMAND_ARGS) == set(cli.COMMANDS)
    monkeypatch.setattr(cli, "importlib", types.SimpleNamespace(import_module=_ctrl_c_on_import))
    try:
        code = main([command, *COMMAND_ARGS[command]])
    except KeyboardInterrupt:  # would stop the pytest session, not fail the test
        pytest.fail("KeyboardInterrupt escaped main")
    assert code == EXIT_INTERRUPTED
    out, err = capsys.readouterr()
    assert out == "" and err == f"memplan {command}: interrupted\n"


def test_ctrl_c_while_the_parser_is_built_with_debug_shows_the_traceback(monkeypatch):
    import types

    import memplan.cli as cli

    monkeypatch.setattr(cli, "importlib", types.SimpleNamespace(import_module=_ctrl_c_on_import))
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "solvers"])


@pytest.mark.parametrize("debug", [False, True])
def test_a_real_early_ctrl_c_exits_130_in_one_line(debug):
    """The console-script entry, a real SIGINT while the sub-commands are imported."""
    import signal
    import subprocess
    import sys

    code = (
        "import importlib, os, signal, sys\n"
        "import memplan.cli as cli\n"
        "real = importlib.import_module\n"
        "def import_module(name, package=None):\n"
        "    if name == 'memplan.cli.allocate':  # while build_parser imports the commands\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(name, package)\n"
        "importlib.import_module = import_module\n"
        "sys.argv = ['memplan', *sys.argv[1:]]\n"
        "cli.entry_point()\n"
    )
    debug_flag = ["--debug"] if debug else []
    done = subprocess.run(
        [sys.executable, "-c", code, *debug_flag, "allocate", "b.csv", "--time-limit", "30"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if debug:  # the traceback, and death by SIGINT as Python does for an uncaught one
        assert done.returncode == -signal.SIGINT and "KeyboardInterrupt" in done.stderr
    else:
        assert done.returncode == EXIT_INTERRUPTED, done.stderr
        assert done.stderr == "memplan allocate: interrupted\n" and done.stdout == ""


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["bench", "--suite", "light", "--budgets", "MR", "--budgets", "MH"], "budgets", "MR,MH"),
        (
            ["bench", "--suite", "light", "--solvers", "greedy", "--solvers", "ilp[mode=fixed]"],
            "solvers",
            "greedy,ilp[mode=fixed]",
        ),
        (["compare", D, "--scratchpad", "MR", "--scratchpad", "0.5*MP"], "scratchpad", "MR,0.5*MP"),
        (["compare", D, "--solvers", "greedy", "--solvers", "dnc"], "solvers", "greedy,dnc"),
        (["rl", "evaluate", "--orders", "model", "--orders", "dfs"], "orders", "model,dfs"),
        (["rl", "evaluate", "--budgets", "MR", "--budgets", "MP"], "budgets", "MR,MP"),
        # the first occurrence replaces the default; an empty one adds nothing
        (["compare", D, "--scratchpad", "MP"], "scratchpad", "MP"),
        (["compare", D], "scratchpad", "MR,MH,MP"),
        (["rl", "evaluate", "--orders", "", "--orders", "dfs"], "orders", "dfs"),
    ],
)
def test_a_repeated_list_option_joins_its_lists(argv, field, expected):
    """argparse kept only the last of a repeated option: --budgets MR --budgets MH ran MH
    alone without a word. The lists join, as --budgets MR,MH."""
    from memplan.cli import build_parser

    args = build_parser().parse_args(argv)
    assert getattr(args, field) == expected
    assert not hasattr(args, "_memplan_lists_given")
