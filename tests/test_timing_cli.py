"""``memplan optimize --objective latency`` and ``--timeline``; ``memplan solvers``."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import ClassVar

import pytest
from timing_examples import section7_problem

import memplan.registry
from memplan.cli import EXIT_BAD_INPUT, EXIT_OK, main
from memplan.ir import graph_to_json
from memplan.registry import PluginKind
from memplan.solver import Budget, Status, make_result


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "section7.json"
    path.write_text(graph_to_json(section7_problem().graph))
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _png_height(path) -> int:
    with open(path, "rb") as f:
        header = f.read(24)
    return struct.unpack(">II", header[16:24])[1]


def test_objective_latency_runs_the_prefetch_pass(model, capsys, tmp_path) -> None:
    # 64 KiB leave room to load x early; greedy loads it at its use.
    common = (model, "--scratchpad", "64KiB", "--json")
    code, out, _ = _run(capsys, "optimize", *common)
    assert code == EXIT_OK
    plain = json.loads(out)
    code, out, _ = _run(capsys, "optimize", *common, "--objective", "latency")
    assert code == EXIT_OK
    fast = json.loads(out)
    assert fast["options"]["objective"] == "latency"
    assert fast["cost"]["timing_model"] == "overlap"  # the edge-npu preset's model
    assert fast["cost"]["traffic_bytes"] == plain["cost"]["traffic_bytes"]
    assert fast["cost"]["latency_s"] < plain["cost"]["latency_s"]
    assert fast["stats"]["prefetch_moved_loads"] == 1
    code, out, _ = _run(capsys, "optimize", model, "--scratchpad", "64KiB")
    assert "(overlap; serial" in out  # both latencies in the text summary


@pytest.mark.parametrize("solver", ["ilp", "dnc", "rl"])
def test_every_solver_plans_for_latency_through_the_prefetch_pass(solver, model, capsys) -> None:
    """ilp, dnc and rl refused --objective latency; now they plan for traffic, then run
    the prefetch pass: the same traffic and bound, a lower overlap latency, and never
    OPTIMAL (the latency is not proven)."""
    pytest.importorskip("ortools")
    common = (model, "--solver", solver, "--scratchpad", "64KiB", "--json", "--time-limit", "20")
    code, out, _ = _run(capsys, "optimize", *common)
    assert code == EXIT_OK
    plain = json.loads(out)
    code, out, err = _run(capsys, "optimize", *common, "--objective", "latency")
    assert code == EXIT_OK, err
    fast = json.loads(out)
    assert fast["options"]["objective"] == "latency"
    assert fast["cost"]["traffic_bytes"] == plain["cost"]["traffic_bytes"]
    assert fast["lower_bound_bytes"] == plain["lower_bound_bytes"]
    assert fast["cost"]["latency_s"] < plain["cost"]["latency_s"]
    assert fast["stats"]["prefetch_moved_loads"] == 1
    assert fast["stats"]["prefetch_latency_after_s"] == pytest.approx(fast["cost"]["latency_s"])
    assert fast["status"] in ("feasible", "timeout")
    if plain["status"] == "optimal":
        assert "non-compulsory traffic proven optimal" in fast["message"]


def test_objective_latency_on_a_serial_accelerator_says_which_figure_moves(model, capsys) -> None:
    """On the 'unaligned' preset (serial timing) --objective latency lowered only the
    overlap figure printed second; the serial latency printed first stayed the same
    with no word why."""
    common = (model, "--scratchpad", "64KiB", "--json", "--objective", "latency")
    code, out, err = _run(capsys, "optimize", *common, "--accelerator", "unaligned")
    assert code == EXIT_OK
    assert json.loads(out)["cost"]["timing_model"] == "serial"
    assert err.startswith("memplan optimize: note: --objective latency lowers the overlap ")
    assert "accelerator 'unaligned' has timing_model = 'serial'" in err
    code, out, err = _run(capsys, "optimize", *common)  # edge-npu: overlap, no note
    assert code == EXIT_OK and "note:" not in err
    code, out, err = _run(capsys, "optimize", model, "--accelerator", "unaligned", "--json")
    assert code == EXIT_OK and "note:" not in err
    # --option objective=latency is the same request as --objective latency
    option = (model, "--scratchpad", "64KiB", "--json", "--option", "objective=latency")
    code, out, err = _run(capsys, "optimize", *option, "--accelerator", "unaligned")
    assert code == EXIT_OK and json.loads(out)["options"]["objective"] == "latency"
    assert "memplan optimize: note: --objective latency lowers the overlap" in err


def test_plot_adds_the_timeline_for_latency_or_on_request(model, capsys, tmp_path) -> None:
    heights = {}
    for name, extra in (
        ("map", ()),
        ("latency", ("--objective", "latency")),
        ("timeline", ("--timeline",)),
        ("option", ("--option", "objective=latency")),  # had no timeline
    ):
        path = tmp_path / f"{name}.png"
        code, _, _ = _run(capsys, "optimize", model, "--plot", path, *extra)
        assert code == EXIT_OK
        heights[name] = _png_height(path)
    assert heights["latency"] == heights["timeline"] == heights["option"] > heights["map"]


@dataclass(frozen=True)
class TrafficOnly:
    """A solver without the objective_latency capability."""

    name: ClassVar[str] = "traffic-only"
    seed: int = 0

    def solve(self, problem, budget: Budget):
        from memplan.fallback import spill_everything_plan

        plan = spill_everything_plan(problem, tuple(range(problem.graph.num_ops)))
        return make_result(self, problem, Status.FEASIBLE, plan, budget)


def test_a_solver_without_the_capability_is_refused(model, capsys, monkeypatch) -> None:
    registered = memplan.registry._registered[PluginKind.SOLVER]
    monkeypatch.setitem(registered, "traffic-only", TrafficOnly)
    code, _, err = _run(
        capsys, "optimize", model, "--solver", "traffic-only", "--objective", "latency"
    )
    assert code == EXIT_BAD_INPUT
    assert "solver 'traffic-only' does not support --objective latency" in err
    assert "solvers that do: dnc, greedy, ilp, rl" in err
    for given, option in (("latency", "traffic"), ("traffic", "latency")):
        # An explicit --objective traffic was overridden by --option objective=latency.
        code, _, err = _run(
            capsys, "optimize", model, "--objective", given, "--option", f"objective={option}"
        )
        assert code == EXIT_BAD_INPUT
        assert f"--objective {given} and --option objective={option} disagree" in err


def test_solvers_lists_who_supports_objective_latency(capsys) -> None:
    code, out, _ = _run(capsys, "solvers")
    assert code == EXIT_OK
    greedy = out.split("greedy:")[1].split("\n\n")[0]
    assert "supports memplan optimize --objective latency" in greedy.splitlines()[1]
    code, out, _ = _run(capsys, "solvers", "--json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert "objective_latency" in entries["greedy"]["capabilities"]
    with pytest.raises(SystemExit):
        main(["optimize", "--help"])
    assert "--objective {traffic,latency}" in capsys.readouterr().out
