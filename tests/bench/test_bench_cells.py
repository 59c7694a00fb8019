"""Cells of `memplan bench`: resume keys, solver versions, solver specs and presets."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import onnx
import pytest
from cli_models import dynamic_model
from test_bench import KEEP, SPILL, write_suite

from memplan.accelerator import load_accelerator
from memplan.bench.cells import cell_key
from memplan.bench.harness import build_cells, load_workloads
from memplan.bench.specs import parse_spec, solver_options, split_solver_options, split_specs
from memplan.bench.versions import plugin_tree, plugin_version, tree_version
from memplan.budgets import PeakEstimate, heuristic_min_peak
from memplan.cli import main
from memplan.cli.bench import add_parser, bench_config
from memplan.errors import ConfigError
from memplan.problem import Problem, Scope

KEY_PARTS = {
    "workload": "w",
    "model_sha256": "sha",
    "scope": "activations",
    "budget": "MP",
    "capacity_bytes": 4096,
    "mp_proven": False,
    "solver": "greedy",
    "solver_version": "memplan 0.1.0+src.abc",
    "options": {"order": "dfs"},
    "time_limit_s": 60.0,
    "accelerator": load_accelerator("edge-npu").to_dict(),
    "dtype_bytes": None,
}


def test_cell_key_depends_on_every_part_of_the_cell() -> None:
    key = cell_key(**KEY_PARTS)
    assert key == cell_key(**{**KEY_PARTS, "time_limit_s": 60, "budget": " MP "})
    # the preset's own capacity does not matter: the budget decides it
    acc = KEY_PARTS["accelerator"]
    assert key == cell_key(**{**KEY_PARTS, "accelerator": {**acc, "capacity_bytes": 1}})
    changed = {
        "workload": "w2",
        "model_sha256": "sha2",
        "scope": "all",
        "budget": "MH",
        "capacity_bytes": 4032,
        "mp_proven": True,
        "solver": "ilp",
        "solver_version": "memplan 0.1.0+src.abd",
        "options": {"order": "bfs"},
        "time_limit_s": 30.0,
        "accelerator": {**acc, "alignment_bytes": 1},
        "dtype_bytes": 1,
    }
    assert set(changed) == set(KEY_PARTS)
    keys = {cell_key(**{**KEY_PARTS, name: value}) for name, value in changed.items()}
    assert len(keys) == len(changed) and key not in keys


def _unproven(problem: Problem) -> PeakEstimate:
    """The same M_P, not proven (as when the min-peak search stops at its node limit)."""
    return PeakEstimate(heuristic_min_peak(problem).value_bytes, False, "test heuristic")


def _proven(problem: Problem) -> PeakEstimate:
    """A "proven" M_P equal to the heuristic's value (as when the proof confirms it)."""
    return PeakEstimate(heuristic_min_peak(problem).value_bytes, True, "test proof")


def _smaller(problem: Problem) -> PeakEstimate:
    """A proven M_P below the heuristic's (as when the exact search finds a better order)."""
    return PeakEstimate(heuristic_min_peak(problem).value_bytes - 1024, True, "test proof")


def test_resume_key_holds_the_capacity_and_whether_mp_was_proven(tmp_path: Path) -> None:
    workloads, _ = load_workloads([str(write_suite(tmp_path / "g", 1))])
    common = {
        "scopes": [Scope.ACTIVATIONS],
        "budgets": ["MR", "MH", "MP", "4KiB"],
        "solvers": [SPILL],
        "options": {},
        "time_limit_s": 5,
        "accelerator": load_accelerator("edge-npu"),
    }
    heuristic = {c.budget: c for c in build_cells(workloads, **common, peak_provider=_unproven)}
    proven = {c.budget: c for c in build_cells(workloads, **common, peak_provider=_proven)}
    smaller = {c.budget: c for c in build_cells(workloads, **common, peak_provider=_smaller)}
    assert not heuristic["MP"].mp_proven and proven["MP"].mp_proven
    # same capacities, but M_P proven: the cells that use M_P are new, the others are not
    for budget in ("MR", "4KiB"):
        assert heuristic[budget].key == proven[budget].key == smaller[budget].key
    for budget in ("MH", "MP"):
        assert heuristic[budget].capacity_bytes == proven[budget].capacity_bytes
        assert heuristic[budget].key != proven[budget].key
        # a lower proven M_P changes the capacity, and with it the key
        assert smaller[budget].capacity_bytes < proven[budget].capacity_bytes
        assert smaller[budget].key != proven[budget].key
    row = heuristic["MP"].row_base()
    assert row["key"] == heuristic["MP"].key and row["mp_proven"] is False
    assert row["solver_version"] == plugin_version(
        importlib.import_module("fake_solvers").SpillAllSolver
    )
    assert row["solver_version"].startswith("fake_solvers (not installed)+src.")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_plugin_version_hashes_the_plugin_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    solver = (
        "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass S:\n    seed: int = 0\n"
    )
    _write(tmp_path / "acme" / "__init__.py", "")
    _write(tmp_path / "acme" / "core.py", "X = 1\n")
    _write(tmp_path / "acme" / "solvers" / "__init__.py", "")
    _write(tmp_path / "acme" / "solvers" / "one.py", solver)
    _write(tmp_path / "acme" / "solvers" / "two.py", "Y = 1\n")
    _write(tmp_path / "lone.py", solver)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("acme", "acme.core", "acme.solvers", "acme.solvers.one", "lone"):
        sys.modules.pop(name, None)
    one = importlib.import_module("acme.solvers.one").S
    lone = importlib.import_module("lone").S
    assert plugin_tree(one.__module__) == "acme.solvers"
    assert plugin_tree(lone.__module__) == "lone"
    assert plugin_tree("memplan.solvers.ilp") == "memplan.solvers"
    before, lone_before = plugin_version(one), plugin_version(lone)
    assert before.startswith("acme (not installed)+src.") and before == tree_version("acme.solvers")
    # a module the plug-in may reach through the registry changes: a new version
    _write(tmp_path / "acme" / "solvers" / "two.py", "Y = 2\n")
    after = plugin_version(one)
    assert after != before
    # outside the plug-in tree (the core of the package): covered by the package version only
    _write(tmp_path / "acme" / "core.py", "X = 2\n")
    assert plugin_version(one) == after
    _write(tmp_path / "lone.py", solver + "# edited\n")
    assert plugin_version(lone) != lone_before


# --------------------------------------------------------------------------- solver specs
def test_solver_specs_with_their_own_options() -> None:
    assert split_specs("greedy, ilp[mode=fixed,backend=milp],ilp") == (
        "greedy",
        "ilp[mode=fixed,backend=milp]",
        "ilp",
    )
    with pytest.raises(ConfigError, match="'greedy' is given twice"):  # it was merged
        split_specs("greedy, ilp,greedy")
    assert parse_spec("ilp[mode=fixed, backend=milp]") == (
        "ilp",
        {"mode": "fixed", "backend": "milp"},
    )
    assert parse_spec("pkg.mod:Cls") == ("pkg.mod:Cls", {})
    for bad in ("ilp[mode=fixed", "ilp]", " , "):
        with pytest.raises(ConfigError):
            split_specs(bad)
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_spec("ilp[fixed]")
    # a value holding a comma cannot go in brackets: the message says where it can
    with pytest.raises(ConfigError, match=r"as --option rl\.NAME=VALUE"):
        parse_spec("rl[network=/runs/a,b/agent.npz]")
    specs = ("ilp", "ilp[seed=4]")
    options = split_solver_options(["ilp.seed=2", "workers=1"], specs)
    # --option reaches every variant of the solver; a spec's own options win
    assert solver_options("ilp[seed=4]", options)[1]["seed"] == "4"
    assert solver_options("ilp", options) == ("ilp", {"seed": "2", "workers": "1"})


def test_solver_options_split_by_solver() -> None:
    solvers = (SPILL, KEEP)
    options = split_solver_options([f"{SPILL}.delay_s=0.5", "seed=3"], solvers)
    assert options == {SPILL: {"delay_s": "0.5", "seed": "3"}, KEEP: {"seed": "3"}}
    with pytest.raises(ConfigError, match="no solver"):
        split_solver_options(["nonsense=1"], solvers)
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        split_solver_options(["delay_s"], solvers)


def test_two_variants_of_one_solver_are_two_cells(tmp_path: Path) -> None:
    workloads, _ = load_workloads([str(write_suite(tmp_path / "g", 1))])
    cells = build_cells(
        workloads,
        scopes=[Scope.ACTIVATIONS],
        budgets=["MR"],
        solvers=[SPILL, f"{SPILL}[delay_s=0.1]", f"{SPILL}[delay_s=0]"],
        options={SPILL: {"delay_s": "0"}},
        time_limit_s=5,
        accelerator=load_accelerator("edge-npu"),
    )
    # SPILL with delay 0 given two ways is one cell
    assert sorted(dict(c.options).get("delay_s", "") for c in cells) == ["0", "0.1"]
    assert {c.solver for c in cells} == {SPILL}


# --------------------------------------------------------------------------- presets
@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench_config creates its output folders: "out" is made in tmp_path, not in the
    working copy (the preset tests left out/ and out/figures there)."""
    monkeypatch.chdir(tmp_path)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", *argv])
    args.output = args.output or "out"
    return args


def test_presets_fill_the_flags_that_are_not_given() -> None:
    config = bench_config(_parse(["--preset", "ilp"]))
    assert config.suite[0] == "light" and "darts_v2_cifar_small" in config.suite
    assert config.solvers == (
        "greedy",
        "ilp",
        "ilp[mode=fixed,order=min-peak]",
        "ilp[backend=milp,mode=fixed,order=min-peak]",
    )
    assert (config.exact_mp_s, config.time_limit_s, len(config.scopes)) == (30.0, 60.0, 2)
    greedy = bench_config(_parse(["--preset", "greedy", "--time-limit", "5", "--suite", "x"]))
    assert greedy.suite == ("x",) and greedy.time_limit_s == 5.0
    assert greedy.dtype_bytes == 1 and greedy.budgets == ("MR", "MH", "MP", "512KiB", "2MiB")
    plain = bench_config(_parse(["--suite", "x"]))
    assert (plain.solvers, plain.time_limit_s, plain.jobs, plain.exact_mp_s) == (
        ("greedy",),
        60.0,
        1,
        None,
    )
    with pytest.raises(ConfigError, match="--suite is required"):
        bench_config(_parse([]))


def test_dim_sizes_the_symbolic_dims_of_the_models_that_have_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A model exported with a dynamic batch could not be benchmarked at all: its load
    # failed with "give --dim batch=1", a flag memplan bench did not have.
    onnx.save(dynamic_model(), tmp_path / "dyn.onnx")
    fixed = write_suite(tmp_path / "g", 1) / "skip0.json"
    suite = [str(tmp_path / "dyn.onnx"), str(fixed)]
    workloads, failures = load_workloads(suite[:1])
    assert workloads == [] and "give the sizes you will run at" in failures[0].lower()
    dims = {"batch": 2, "height": 8, "width": 8}
    workloads, failures = load_workloads(suite, dims=dims)  # the JSON graph has none
    assert failures == [] and [w.name for w in workloads] == ["dyn", "skip0"]
    assert workloads[0].import_options is not None
    assert dict(workloads[0].import_options.dims) == dims
    with pytest.raises(ConfigError, match="--dim depth: no ONNX model of the suite"):
        load_workloads(suite, dims={**dims, "depth": 3})
    # the sizes are a setting of the results folder: other sizes need another folder
    out = str(tmp_path / "out")
    argv = ["bench", "--suite", suite[0], "--solvers", SPILL, "--budgets", "MR", "-q"]
    argv += ["--time-limit", "5", "--no-figures", "-o", out, "--dim", "batch=2"]
    assert main([*argv, "height=8", "width=8"]) == 0
    capsys.readouterr()
    assert main([*argv, "height=16", "width=8"]) == 2
    assert "--dim was batch=2 height=8 width=8, now batch=2 height=16" in capsys.readouterr().err


def test_bench_refuses_one_budget_spelt_twice(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--suite", "x", "--budgets", "MH,0.5*mp,mh"])
    args.output = str(tmp_path / "out")
    with pytest.raises(ConfigError, match="'mh' is the same budget as 'MH'"):
        bench_config(args)
