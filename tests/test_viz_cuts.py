"""The figure of a dnc result: cut lines over the live-bytes curve, and the CLI's --plot."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import random_graph

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.cli import EXIT_OK, main
from memplan.cut import crossing_bytes
from memplan.errors import ConfigError
from memplan.ir import graph_to_json
from memplan.problem import Problem
from memplan.solver import Budget, make_solver
from memplan.viz.cuts import (
    GID_CROSSING,
    GID_CUT,
    GID_RESIDENT,
    cuts_of,
    plot_cuts,
    plot_result,
)
from memplan.viz.plots import GID_RESIDENCIES, live_bytes_of_plan


def _by_gid(fig, gid):
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def greedy_result():
    base = Problem(random_graph(3, 30), Accelerator("t", 0, 64))
    problem = base.with_capacity(resolve_budget("MR", base).capacity_bytes)
    return problem, make_solver("greedy").solve(problem, Budget(time_limit_s=30))


def test_cut_lines_resident_curve_and_crossing_bytes():
    problem, result = greedy_result()
    cuts = [7, 15, 22]
    fig = plot_cuts(problem, result.plan, cuts)
    lines = _by_gid(fig, GID_CUT)
    assert sorted({line.get_xdata()[0] for line in lines}) == cuts
    assert len(lines) == 3 * len(cuts)  # every panel
    # the memory map above them, as every --plot figure has (the dnc one had none)
    assert len(_by_gid(fig, GID_RESIDENCIES)) == 1
    [resident] = _by_gid(fig, GID_RESIDENT)
    expected = live_bytes_of_plan(problem, result.plan)
    assert np.array_equal(resident.get_ydata()[:-1], expected)
    [crossing] = _by_gid(fig, GID_CROSSING)
    assert np.array_equal(crossing.get_ydata(), crossing_bytes(problem, result.plan.order))


def test_plot_result_draws_cuts_only_for_results_that_have_them(tmp_path):
    problem, result = greedy_result()
    assert cuts_of(result) is None
    assert _by_gid(plot_result(problem, result), GID_RESIDENCIES)  # the plain plan figure
    with_cuts = dataclasses.replace(result, stats={**result.stats, "cuts": [10, 20]})
    assert cuts_of(with_cuts) == [10, 20]
    path = tmp_path / "cuts.png"
    fig = plot_result(problem, with_cuts, path)
    assert _by_gid(fig, GID_CUT) and path.read_bytes().startswith(b"\x89PNG")


def test_optimize_plot_for_dnc_draws_its_cuts(tmp_path, capsys):
    pytest.importorskip("ortools")
    model = tmp_path / "model.json"
    model.write_text(graph_to_json(random_graph(5, 60)))
    plot, plan = tmp_path / "cuts.svg", tmp_path / "plan.json"
    code = main(
        ["optimize", str(model), "--solver", "dnc", "--option", "part_ops=12", "--scratchpad",
         "MR", "--time-limit", "20", "--plot", str(plot), "-o", str(plan), "--json"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == EXIT_OK
    summary = json.loads(out)
    cuts = summary.get("stats", {}).get("cuts") or json.loads(plan.read_text())["stats"]["cuts"]
    svg = plot.read_text()
    assert svg.count('id="cut') >= 2 * len(cuts) > 0


def test_plot_result_of_a_result_without_a_plan_is_a_config_error():
    problem, result = greedy_result()
    empty = dataclasses.replace(result, plan=None)
    with pytest.raises(ConfigError, match="plot_result: plan must be a memplan Plan, got NoneType"):
        plot_result(problem, empty)


@pytest.mark.parametrize(
    "cuts, fragment",
    [
        (
            [99],
            r"cut 99 is not a step strictly inside the plan's 30 steps; give steps in 1 \.\. 29",
        ),
        ([-1], r"cut -1 is not a step strictly inside"),
        ([0], r"cut 0 is not a step strictly inside"),  # splits nothing off
        ([10, 30], r"cut 30 is not a step strictly inside"),
        ([2.5], r"cut 2\.5 is not a step"),
        ([True], r"cut True is not a step"),
        ("ab", r"cuts must be a list of step numbers, e\.g\. \[10, 20\], got str"),
        (7, r"cuts must be a list of step numbers, e\.g\. \[10, 20\], got int"),
    ],
    ids=["99", "-1", "0", "n", "2.5", "True", "str", "int"],
)
def test_cuts_outside_the_plan_are_refused(cuts, fragment):
    # [99], [-1] and "ab" were drawn silently (lines outside the plan, or at "a", "b").
    problem, result = greedy_result()
    with pytest.raises(ConfigError, match=rf"^plot_cuts: {fragment}"):
        plot_cuts(problem, result.plan, cuts)


def test_valid_cuts_of_any_integer_sequence_are_drawn():
    problem, result = greedy_result()
    for cuts in ([], (1, 29), np.array([7, 15]), range(5, 30, 10)):
        fig = plot_cuts(problem, result.plan, cuts)
        drawn = sorted({line.get_xdata()[0] for line in _by_gid(fig, GID_CUT)})
        assert drawn == sorted(int(c) for c in cuts)
