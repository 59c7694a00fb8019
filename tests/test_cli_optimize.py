"""End-to-end tests of memplan optimize / validate / score / solvers."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import onnx
import pytest
from cli_models import small_model

import memplan.registry
from memplan.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_NO_PLAN, EXIT_OK, main
from memplan.dsa import validate_packing
from memplan.io.buffers_csv import parse_buffers_csv
from memplan.io.files import sha256_of_file
from memplan.io.loading import load_model
from memplan.io.planfile import read_plan_file
from memplan.problem import Problem
from memplan.registry import PluginKind
from memplan.solver import Budget, Status, make_result
from memplan.validate import validate

LIGHT = Path(onnx.__file__).parent / "backend/test/data/light"
MEMPLAN = str(Path(sys.executable).with_name("memplan"))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "small.onnx"
    onnx.save(small_model(), path)
    return path


@pytest.fixture(scope="module")
def other_model_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "other.onnx"
    onnx.save(small_model(channels=4), path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_optimize_writes_valid_plan_csv_and_plot(tmp_path, model_path, capsys):
    plan, buffers, figure = tmp_path / "plan.json", tmp_path / "b.csv", tmp_path / "p.png"
    code, out, err = run(
        capsys,
        "optimize",
        model_path,
        "--scratchpad",
        "MR",
        "-o",
        plan,
        "--csv",
        buffers,
        "--plot",
        figure,
    )
    assert code == EXIT_OK, err
    assert "status       feasible" in out
    assert "non-compulsory traffic  16.00 KiB (16,384 B)" in out  # A is spilled once
    assert "scratchpad   32.00 KiB (32,768 B) = MR\n" in out
    loaded = load_model(model_path)
    planfile = read_plan_file(plan, loaded.graph, expected_sha256=sha256_of_file(model_path))
    problem = planfile.problem(loaded.graph)
    assert problem.capacity_bytes == problem.min_resident_bytes == 32 * 1024
    assert validate(problem, planfile.plan) == []
    assert planfile.budget["spec"] == "MR"
    rows = list(csv.DictReader(buffers.open()))
    assert len(rows) == len(planfile.plan.residencies)
    assert {"A#0", "A#1"} <= {r["id"] for r in rows}
    packed = parse_buffers_csv(buffers.read_text(), str(buffers))
    offsets = [int(r["offset"]) for r in rows]
    assert validate_packing(packed, offsets, problem.capacity_bytes) == []
    assert figure.read_bytes().startswith(b"\x89PNG")
    # Nothing but the three outputs: every write went through a renamed temp file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.csv", "p.png", "plan.json"]

    code, out, _ = run(capsys, "validate", model_path, plan)
    assert code == EXIT_OK and ": valid (7 steps" in out
    code, out, _ = run(capsys, "score", model_path, plan)
    assert code == EXIT_OK
    assert "non-compulsory traffic 16.00 KiB" in out and "recorded cost: matches" in out
    code, out, _ = run(capsys, "score", model_path, plan, "--json")
    scored = json.loads(out)
    assert scored["cost"]["non_compulsory_bytes"] == 16384 and scored["matches_recorded"]


def test_optimize_json_summary_and_map(model_path, capsys):
    code, out, _ = run(capsys, "optimize", model_path, "--scratchpad", "MP", "--json")
    assert code == EXIT_OK
    summary = json.loads(out)
    assert summary["status"] == "optimal"
    assert summary["cost"]["non_compulsory_bytes"] == 0
    assert summary["budget"]["spec"] == "MP" and summary["budget"]["capacity_bytes"] == 40960
    assert summary["min_resident_bytes"] == 32768
    assert summary["model"]["sha256"] == sha256_of_file(model_path)
    code, out, _ = run(capsys, "optimize", model_path, "--scratchpad", "MR", "--map")
    assert code == EXIT_OK and "memory map: 7 steps x 32768 B" in out


def test_optimize_prints_the_import_warnings(tmp_path, model_path, capsys):
    """What the importer left out is said by the command that plans, one line each, with
    --json too (only inspect showed it: an unused input vanished without a word)."""
    model = small_model()
    model.graph.input.append(onnx.helper.make_tensor_value_info("mask", 1, [1, 4]))
    path = tmp_path / "unused_input.onnx"
    onnx.save(model, path)
    for extra in ((), ("--json",)):
        code, _, err = run(capsys, "optimize", path, "--scratchpad", "MR", *extra)
        assert code == EXIT_OK
        assert [line for line in err.splitlines() if "warning" in line] == [
            "memplan optimize: warning: graph input 'mask' is read by no op; it is left out"
        ]
    code, _, err = run(capsys, "optimize", model_path, "--scratchpad", "MR")
    assert code == EXIT_OK and "warning" not in err


def test_default_budget_is_mh(model_path, capsys):
    code, out, _ = run(capsys, "optimize", model_path, "--json")
    summary = json.loads(out)
    assert code == EXIT_OK
    assert summary["budget"]["spec"] == "MH"
    assert summary["budget"]["capacity_bytes"] == (32768 + 40960) // 2


def test_validate_reports_every_violation_and_overrides(tmp_path, model_path, capsys):
    plan = tmp_path / "plan.json"
    assert run(capsys, "optimize", model_path, "--scratchpad", "MP", "-o", plan)[0] == EXIT_OK
    data = json.loads(plan.read_text())
    data["plan"]["residencies"][0]["offset"] = 32  # misaligned
    data["plan"]["residencies"][1]["offset"] = -64  # out of bounds
    plan.write_text(json.dumps(data))
    code, out, _ = run(capsys, "validate", model_path, plan)
    assert code == EXIT_NO_PLAN
    assert "INVALID" in out and "[misaligned]" in out and "[out-of-bounds]" in out
    code, out, _ = run(capsys, "validate", model_path, plan, "--json")
    kinds = {v["kind"] for v in json.loads(out)["violations"]}
    assert {"misaligned", "out-of-bounds"} <= kinds
    code, _, err = run(capsys, "score", model_path, plan)
    assert code == EXIT_NO_PLAN and "run memplan validate" in err
    # --json prints a document on an invalid plan too (stdout was empty)
    code, out, err = run(capsys, "score", model_path, plan, "--json")
    scored = json.loads(out)
    assert code == EXIT_NO_PLAN and "run memplan validate" in err
    assert scored["valid"] is False and scored["cost"] is None
    assert {"misaligned", "out-of-bounds"} <= {v["kind"] for v in scored["violations"]}
    # A smaller scratchpad given on the command line overrides the recorded one.
    good = tmp_path / "good.json"
    run(capsys, "optimize", model_path, "--scratchpad", "MP", "-o", good)
    code, out, _ = run(capsys, "validate", model_path, good, "--scratchpad", "MR")
    assert code == EXIT_NO_PLAN and "overridden: --scratchpad" in out
    code, out, _ = run(capsys, "validate", model_path, good, "--accelerator", "unaligned")
    # The preset's own capacity (1 MiB, alignment 1) holds the plan.
    assert code == EXIT_OK and "overridden: --accelerator" in out and "1.00 MiB" in out
    # Flags that repeat what the plan records override nothing, and say nothing.
    code, out, _ = run(
        capsys, "validate", model_path, good, "--scope", "activations", "--scratchpad", "MP"
    )
    assert code == EXIT_OK and "overridden" not in out


def test_plan_for_another_model_is_rejected(tmp_path, model_path, other_model_path, capsys):
    plan = tmp_path / "plan.json"
    run(capsys, "optimize", model_path, "--scratchpad", "MP", "-o", plan)
    for command in ("validate", "score"):
        code, _out, err = run(capsys, command, other_model_path, plan)
        assert code == EXIT_BAD_INPUT
        assert "made for model 'small (small.onnx)'" in err
        assert sha256_of_file(model_path) in err and sha256_of_file(other_model_path) in err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_plan_file(tmp_path, model_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text('{"format": "memplan.plan",\n "version": 1,\n oops}\n')
    code, _, err = run(capsys, "validate", model_path, plan)
    assert code == EXIT_BAD_INPUT
    assert "line 3" in err and "invalid JSON" in err and err.count("\n") == 1


def test_below_mr_exits_1_with_mr_and_writes_nothing(tmp_path, model_path, capsys):
    plan, buffers = tmp_path / "plan.json", tmp_path / "b.csv"
    plan.write_text("old")
    code, out, err = run(
        capsys, "optimize", model_path, "--scratchpad", "16KiB", "-o", plan, "--csv", buffers
    )
    assert code == EXIT_NO_PLAN
    assert "infeasible" in err and "M_R = 32768 B" in err and "relu1" in err
    assert "status       infeasible" in out
    assert plan.read_text() == "old" and not buffers.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--solver", "nope"], "unknown solver 'nope'; available: "),
        (["--option", "order=zigzag"], "use one of auto, model, min-peak, dfs, bfs"),
        (["--option", "colour=red"], "has no option 'colour'; its options: order,"),
        (
            ["--option", "greedy.order=dfs"],
            "'greedy.order' (give it as order=..., without greedy.)",
        ),
        (["--option", "max_retries=many"], "max_retries='many' is not a valid int"),
        (["--option", "alloc_time_limit_s=nan"], "'nan' is not a valid float (a finite"),
        (["--option", "alloc_time_limit_s=inf"], "'inf' is not a valid float (a finite"),
        (["--option", "order"], "must look like NAME=VALUE"),
        (["--scratchpad", "lots"], "use MR, MH, MP"),
        (["--time-limit", "-1"], "--time-limit must be a finite number of seconds > 0"),
        (["--time-limit", "inf"], "--time-limit must be a finite number of seconds > 0"),
        (["--time-limit", "1e300"], "--time-limit 1e+300: at most 31536000 seconds (a year)"),
        (["--seed", "1", "--option", "seed=2"], "disagree"),
        # It said "--seed -1: a seed is ..." for what was given as an option.
        (["--option", "seed=-1"], "--option seed=-1: a seed is a whole number from 0 to"),
        (["--plot", "x.gif"], "use a .png, .svg or .pdf"),
        (["--accelerator", "tpu9"], "neither a preset"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, model_path, capsys, args, expected):
    code, _, err = run(capsys, "optimize", model_path, *args, "-o", tmp_path / "p.json")
    assert code == EXIT_BAD_INPUT
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


def test_scratchpad_accelerator_and_a_bad_budget_name_every_form_once(tmp_path, model_path, capsys):
    """The CLI added " (or 'accelerator')" to the budget error, which lists it already."""
    code, out, _ = run(capsys, "optimize", model_path, "--scratchpad", " Accelerator ")
    assert code == EXIT_OK
    assert "= Accelerator (capacity of accelerator 'edge-npu')" in " ".join(out.split())
    code, _, err = run(capsys, "optimize", model_path, "--scratchpad", "foo", "-o", tmp_path / "p")
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and "Traceback" not in err
    assert "--scratchpad: scratchpad 'foo' is not a budget; use MR, MH, MP, " in err
    for form in ("'0.5*MP'", "'512KiB'", "'accelerator'"):
        assert err.count(form) == 1, (form, err)
    assert not (tmp_path / "p").exists()


def test_missing_model_and_unknown_workload(capsys):
    code, _, err = run(capsys, "optimize", "no/such/model.onnx")
    assert code == EXIT_BAD_INPUT and "no such file" in err
    code, _, err = run(capsys, "optimize", "light_squeez")
    assert code == EXIT_BAD_INPUT and "did you mean 'light_squeezenet'" in err


def test_solvers_lists_greedy_with_options(capsys):
    code, out, _ = run(capsys, "solvers", "--json")
    assert code == EXIT_OK
    entries = {e["name"]: e for e in json.loads(out)}
    greedy = entries["greedy"]
    assert greedy["importable"] and greedy["extra"] is None
    names = {o["name"] for o in greedy["options"]}
    assert {"order", "seed"} <= names
    assert all(o["help"] for o in greedy["options"])
    # Each summary is a whole sentence, even where the docstring's first line wraps.
    assert all(e["doc"].endswith(".") for e in entries.values() if e["importable"])
    code, out, _ = run(capsys, "solvers")
    assert "greedy: available" in out and "--option order=<str>" in out


def test_help_documents_units(capsys):
    with pytest.raises(SystemExit):
        main(["optimize", "--help"])
    out = capsys.readouterr().out
    for words in ("SECONDS", "KiB", "bytes", "MR", "0.5*MP", "NAME=VALUE", "id,lower,upper"):
        assert words in out


# ---------------------------------------------------------------- Ctrl-C
@dataclass(frozen=True)
class WaitingSolver:
    """Polls its budget until stopped, then returns the greedy's plan as a TIMEOUT."""

    name: ClassVar[str] = "waiting-test"
    seed: int = field(default=0, metadata={"help": "unused"})

    def solve(self, problem: Problem, budget: Budget):
        from memplan.solver import make_solver

        plan = make_solver("greedy").solve(problem, Budget()).plan
        while not budget.should_stop():
            time.sleep(0.01)
        return make_result(self, problem, Status.TIMEOUT, plan, budget, message="stopped")


def _interrupt_after(seconds: float, times: int = 1) -> threading.Thread:
    def fire():
        for _ in range(times):
            time.sleep(seconds)
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


def _register(monkeypatch, cls) -> None:
    """Register a test solver for this test only (other tests iterate the registry)."""
    monkeypatch.setitem(memplan.registry._registered[PluginKind.SOLVER], cls.name, cls)


def test_ctrl_c_keeps_the_best_plan(tmp_path, model_path, capsys, monkeypatch):
    _register(monkeypatch, WaitingSolver)
    plan = tmp_path / "plan.json"
    thread = _interrupt_after(0.5)
    code, out, err = run(
        capsys, "optimize", model_path, "--solver", "waiting-test", "--scratchpad", "MR", "-o", plan
    )
    thread.join()
    assert code == EXIT_OK
    assert "stopping, keeping the best plan" in err
    assert "status       timeout (interrupted by Ctrl-C)" in out
    graph = load_model(model_path).graph
    planfile = read_plan_file(plan, graph, expected_sha256=sha256_of_file(model_path))
    assert validate(planfile.problem(graph), planfile.plan) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_ctrl_c_aborts_without_output(tmp_path, model_path, capsys, monkeypatch):
    @dataclass(frozen=True)
    class Stubborn:
        name: ClassVar[str] = "stubborn-test"
        seed: int = 0

        def solve(self, problem, budget):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # ignores the stop request
                time.sleep(0.01)
            raise AssertionError("not interrupted")

    _register(monkeypatch, Stubborn)
    plan = tmp_path / "plan.json"
    thread = _interrupt_after(0.3, times=2)
    code, _, err = run(capsys, "optimize", model_path, "--solver", "stubborn-test", "-o", plan)
    thread.join()
    assert code == EXIT_INTERRUPTED
    assert "interrupted" in err
    assert not plan.exists()


def test_a_second_ctrl_c_while_the_files_are_made_aborts_without_output(
    tmp_path, model_path, capsys, monkeypatch
):
    """The solver returns on the first Ctrl-C; a second one while the figure is drawn
    aborted nothing: SIGINT was ignored from the solver's return on, and the files were
    written with exit 0."""
    import memplan.cli.optimize as optimize_cli

    _register(monkeypatch, WaitingSolver)
    real_plot = optimize_cli._plot_bytes

    def slow_plot(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(3.0)  # a large plan's figure; the second Ctrl-C comes 0.5 s in
        return real_plot(*args, **kwargs)

    monkeypatch.setattr(optimize_cli, "_plot_bytes", slow_plot)
    plan, figure = tmp_path / "plan.json", tmp_path / "plan.png"
    thread = _interrupt_after(0.5, times=2)
    code, _, err = run(
        capsys, "optimize", model_path, "--solver", "waiting-test", "-o", plan, "--plot", figure
    )
    thread.join()
    assert code == EXIT_INTERRUPTED
    assert "stopping, keeping the best plan" in err
    assert not plan.exists() and not figure.exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- real entry point
def test_console_script_light_model_spills_at_mr(tmp_path):
    model = LIGHT / "light_shufflenet.onnx"
    plan = tmp_path / "plan.json"
    done = subprocess.run(
        [MEMPLAN, "optimize", str(model), "--scratchpad", "MR", "-o", str(plan), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == EXIT_OK, done.stderr
    summary = json.loads(done.stdout)
    assert summary["cost"]["non_compulsory_bytes"] > 0
    assert summary["budget"]["capacity_bytes"] == summary["min_resident_bytes"]
    done = subprocess.run(
        [MEMPLAN, "validate", str(model), str(plan)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    # Bad input through the real entry point: one line, no traceback; --debug shows it.
    bad = [MEMPLAN, "optimize", str(model), "--solver", "nope"]
    done = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    done = subprocess.run(
        [MEMPLAN, "--debug", *bad[1:]], capture_output=True, text=True, timeout=300
    )
    assert "Traceback" in done.stderr


def test_readme_first_command_runs(tmp_path):
    """The README's first line installs memplan and plans a model; run its memplan part."""
    import shlex

    readme = Path(__file__).parent.parent / "README.md"
    first = readme.read_text().splitlines()[0]
    install, sep, command = first.partition(" && ")
    assert sep and install.startswith("pip install") and command.startswith("memplan optimize")
    argv = shlex.split(command)
    done = subprocess.run(
        [MEMPLAN, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "status" in done.stdout and "Traceback" not in done.stderr
    if "--plot" in argv:
        assert (tmp_path / argv[argv.index("--plot") + 1]).read_bytes().startswith(b"\x89PNG")


def test_ctrl_c_stops_the_ilp_search_and_says_interrupted(tmp_path):
    """CP-SAT must not swallow SIGINT: the run stops early, keeps its plan and says why."""
    out = tmp_path / "plan.json"
    command = [
        *(sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"),
        *("optimize", "amoebanet_a_cifar_small", "--solver", "ilp", "--scope", "all"),
        *("--scratchpad", "MR", "--time-limit", "120", "-o", str(out)),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # past the incumbents, inside the free-order search (unproven in 60 s)
    process.send_signal(signal.SIGINT)
    start = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert time.monotonic() - start < 30, "the search did not stop on Ctrl-C"
    assert process.returncode == EXIT_OK, stderr
    assert "interrupted" in stdout
    assert out.exists()


def test_sigterm_stops_the_search_and_writes_the_best_plan(tmp_path):
    """SIGTERM (timeout, kill, a job scheduler) killed optimize with nothing written; now
    it stops the solver as Ctrl-C does and the best plan is written and reported."""
    out = tmp_path / "plan.json"
    command = [
        *(sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"),
        *("optimize", "amoebanet_a_cifar_small", "--solver", "ilp", "--scope", "all"),
        *("--scratchpad", "MR", "--time-limit", "120", "-o", str(out), "--json"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # inside the free-order search
    process.send_signal(signal.SIGTERM)
    start = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert time.monotonic() - start < 30, "the search did not stop on SIGTERM"
    assert process.returncode == EXIT_OK, stderr
    assert "SIGTERM: stopping" in stderr and "Traceback" not in stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] is True and summary["interrupted_by"] == "SIGTERM"
    assert summary["status"] == "timeout" and summary["written"]["plan"] == str(out)
    assert json.loads(out.read_text())["status"] == "timeout"


def test_a_second_ctrl_c_during_the_ilp_search_aborts_cleanly(tmp_path):
    """Two Ctrl-C 10 ms apart inside CP-SAT: exit 130, nothing written, no traceback, and
    CP-SAT's threads stopped before exit (a process leaving them running dies of
    std::terminate: exit -6)."""
    out = tmp_path / "plan.json"
    command = [
        *(sys.executable, "-c", "from memplan.cli import entry_point; entry_point()"),
        *("optimize", "amoebanet_a_cifar_small", "--solver", "ilp", "--scope", "all"),
        *("--scratchpad", "MR", "--time-limit", "120", "-o", str(out)),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # inside the free-order search
    process.send_signal(signal.SIGINT)
    time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not out.exists()


def test_ctrl_c_is_ignored_while_the_outputs_are_written():
    """After the solve, optimize writes and reports inside sigint_ignored: a late Ctrl-C
    can no longer leave some outputs written and exit 130."""
    from memplan.cli.plancommon import sigint_ignored

    with sigint_ignored():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the signal is delivered (and ignored) by now
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_output_that_is_the_model_file_is_refused(tmp_path, model_path, capsys):
    """-o (or --csv) naming the model itself, directly or through a symlink, would
    replace the model with the plan: refused before any work, the model untouched."""
    model = tmp_path / "model.onnx"
    model.write_bytes(Path(model_path).read_bytes())
    link = tmp_path / "plan.json"
    link.symlink_to(model)
    before = model.read_bytes()
    for flag, target in (("-o", model), ("--csv", link)):
        code, _, err = run(capsys, "optimize", model, "--scratchpad", "MR", flag, target)
        assert code == EXIT_BAD_INPUT
        assert "is the model file being planned" in err and len(err.strip().splitlines()) == 1
    assert model.read_bytes() == before


def test_an_output_that_is_a_file_an_option_names_is_refused(tmp_path, model_path, capsys):
    """``--solver rl -O network=agent.npz -o agent.npz`` replaced the trained network
    with the plan JSON (and -o npu.toml its --accelerator spec): a file an --option or
    --accelerator names is refused as an output, like the model."""
    from memplan.solvers.rl.network import SHIPPED_CHECKPOINT

    checkpoint = tmp_path / "agent.npz"
    checkpoint.write_bytes(SHIPPED_CHECKPOINT.read_bytes())
    code, _, err = run(capsys, "optimize", model_path, "--scratchpad", "MR", "--solver", "rl",
                       "-O", f"network={checkpoint}", "-o", checkpoint)  # fmt: skip
    assert code == EXIT_BAD_INPUT and len(err.strip().splitlines()) == 1
    assert "is the file of --option network" in err
    assert checkpoint.read_bytes() == SHIPPED_CHECKPOINT.read_bytes()
    spec = tmp_path / "npu.toml"  # the --accelerator spec file, likewise
    spec.write_text('name = "npu"\ncapacity_bytes = 1000000\nalignment_bytes = 64\n')
    before = spec.read_text()
    code, _, err = run(capsys, "optimize", model_path, "--scratchpad", "MR",
                       "--accelerator", spec, "-o", spec)  # fmt: skip
    assert code == EXIT_BAD_INPUT and "is the --accelerator spec file" in err
    assert spec.read_text() == before


def test_validate_lists_a_few_of_each_kind_and_counts_the_rest(tmp_path, model_path, capsys):
    """A plan with 300 copies of one stay printed 45,000 overlap lines (2,000 copies: 2
    million lines in 7 s, and --json 470 MB in 59 s). The first of each kind are listed,
    with the count of the others; --per-kind all lists every one."""
    plan = tmp_path / "plan.json"
    assert run(capsys, "optimize", model_path, "--scratchpad", "MP", "-o", plan)[0] == EXIT_OK
    data = json.loads(plan.read_text())
    stay = max(data["plan"]["residencies"], key=lambda r: r["end"] - r["start"])
    data["plan"]["residencies"] += [dict(stay) for _ in range(299)]
    plan.write_text(json.dumps(data))
    pairs = 300 * 299 // 2
    code, out, _ = run(capsys, "validate", model_path, plan, "--per-kind", "3")
    lines = out.splitlines()
    assert code == EXIT_NO_PLAN
    assert (
        f"INVALID: {pairs + 299 + 1:,} violation(s): 1 produce-count, 299 time-overlap, "
        in lines[0]
    )
    assert f"{pairs:,} address-overlap" in lines[0]
    assert sum("] at step" in line for line in lines) == 3 and len(lines) == 1 + 1 + 3 + 3 + 2
    assert lines[-1] == (
        f"  [address-overlap] ... and {pairs - 3:,} more not listed "
        "(--per-kind N or all lists more)"
    )
    code, out, _ = run(capsys, "validate", model_path, plan, "--json")
    document = json.loads(out)
    assert document["violation_count"] == pairs + 300 and document["violations_per_kind"] == 20
    assert document["violation_counts"] == {
        "produce-count": 1,
        "time-overlap": 299,
        "address-overlap": pairs,
    }
    assert len(document["violations"]) == 1 + 20 + 20
    code, out, _ = run(capsys, "validate", model_path, plan, "--json", "--per-kind", "all")
    assert len(json.loads(out)["violations"]) == pairs + 300
    code, out, _ = run(capsys, "score", model_path, plan, "--json")
    assert code == EXIT_NO_PLAN and json.loads(out)["violation_count"] == pairs + 300
    assert len(json.loads(out)["violations"]) == 41
    with pytest.raises(SystemExit):
        main(["validate", str(model_path), str(plan), "--per-kind", "some"])
    assert "--per-kind: 'some' is not a number of violations" in capsys.readouterr().err


def test_a_solver_giving_up_early_is_not_said_to_reach_the_time_limit():
    """memplan optimize bert1000.json --solver ilp --time-limit 60 (30,008 ops) returned
    after 8.6 s (the CP-SAT model would take 217 s to build) and said 'timeout (time
    limit 60 s reached)'."""
    from memplan.cli.optimize_text import _status_text

    summary = {"status": "timeout", "interrupted": False, "time_limit_s": 60.0}
    early = _status_text({**summary, "wall_s": 8.625})
    assert early == "timeout (gave up after 8.62 s of the 60 s limit: see message)"
    assert _status_text({**summary, "wall_s": 54.0}) == "timeout (time limit 60 s reached)"
    assert _status_text({**summary, "wall_s": 60.4}) == "timeout (time limit 60 s reached)"
    stopped = {**summary, "wall_s": 3.0, "interrupted": True}
    assert _status_text(stopped) == "timeout (interrupted by Ctrl-C)"
