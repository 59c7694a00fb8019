"""HTML views: graphs, costs, results, plans, comparisons."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest
from plan_fixtures import NaiveSolver, diamond_problem, naive_plan, spill_plan

from memplan.errors import InvalidPlanError
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Plan, Residency
from memplan.problem import Problem
from memplan.solver import Budget
from memplan.viz.display import (
    Html,
    PlanView,
    ResultView,
    compare,
    cost_html,
    graph_html,
    plan_html,
    result_html,
    show_plan,
    table,
)


def _rows(text: str) -> int:
    return text.count("<tr>")


def test_graph_html_lists_ops_and_truncates():
    problem = diamond_problem()
    text = graph_html(problem.graph)
    assert "conv_a" in text and "add_d" in text and "d* 3.00 KiB" in text
    assert problem.graph._repr_html_() == text
    b = GraphBuilder("chain<&>")
    t = b.tensor("t0", 64, TensorKind.INPUT)
    for i in range(100):
        nxt = b.tensor(f"t{i + 1}", 64, is_output=i == 99)
        b.op(f"op{i}", "Relu", [t], [nxt])
        t = nxt
    long = graph_html(b.build(), max_rows=10)
    assert "op9" in long and "op10<" not in long
    assert "90 more" in long
    assert "chain&lt;&amp;&gt;" in long  # names are escaped


def test_cost_and_result_html():
    problem = diamond_problem()
    result = NaiveSolver(spill=True).solve(problem, Budget())
    assert result.cost is not None
    text = cost_html(result.cost)
    assert f"{result.cost.non_compulsory_bytes:,} B" in text
    assert result.cost._repr_html_() == text
    plain = result._repr_html_()
    assert "feasible" in plain and "gap to the bound" in plain and "<img" not in plain
    with_plot = result_html(result, problem)
    assert "data:image/png;base64," in with_plot
    assert ResultView(problem, result)._repr_html_() == with_plot
    assert "<img" not in ResultView(problem, result, plot=False)._repr_html_()


def test_plan_view_shows_cost_figure_and_table():
    problem = diamond_problem()
    plan = spill_plan(problem)
    view = show_plan(problem, plan)
    assert isinstance(view, PlanView)
    text = view._repr_html_()
    assert "valid</td><td" in text and ">yes<" in text
    assert "data:image/png;base64," in text
    assert "[0, 1)" in text  # a residency interval, half-open
    assert "load" in text and "store" in text
    assert "memory map" in str(view)
    short = plan_html(plan, problem, plot=False, max_rows=2)
    assert f"{len(plan.residencies) - 2} more" in short


def test_plan_view_of_an_invalid_plan_lists_violations():
    problem = diamond_problem()
    good = naive_plan(problem)
    r0 = good.residencies[0]
    bad = Plan.make(
        good.order,
        [Residency(r0.tensor, r0.start, r0.end, 32, r0.arrive, r0.leave), *good.residencies[1:]],
    )
    text = plan_html(bad, problem)
    assert "no: " in text and "misaligned" in text and "<img" not in text


def test_compare_has_one_row_per_result():
    problem = diamond_problem()
    results = {
        "naive": NaiveSolver().solve(problem, Budget()),
        "spill": NaiveSolver(spill=True).solve(problem, Budget()),
        "tiny": NaiveSolver().solve(problem.with_capacity(1024), Budget()),
    }
    text = compare(results)
    assert isinstance(text, Html) and text._repr_html_() == str(text)
    assert _rows(text) == 3
    assert "infeasible" in text and "16.00 KiB" in text


def test_compare_and_cost_views_keep_small_latencies_readable():
    """The comparison showed latency as ``0.002`` (ms) and energy as ``0.0019`` (mJ) for
    a small model: two runs 1.5% apart looked equal. Now 4 significant digits in a unit."""
    problem = diamond_problem()
    result = NaiveSolver().solve(problem, Budget())
    assert result.cost is not None
    cost = dataclasses.replace(result.cost, latency_s=2.1642e-6, energy_j=1.8812e-6)
    shown = dataclasses.replace(result, cost=cost)
    text = compare({"a": shown})
    assert "2.164 us" in text and "1.881 uJ" in text
    assert "2.164 us" in cost_html(cost) and "1.881 uJ" in cost_html(cost)


def test_table_escapes_and_aligns():
    text = table(["a", "b"], [("<x>", 3)])
    assert html.escape("<x>") in text
    assert re.search(r"text-align:right\">3<", text)


def test_a_result_without_a_bound_shows_no_gap():
    """A missing bound is "–", never a gap of 0 %."""
    import dataclasses

    problem = diamond_problem()
    result = NaiveSolver(spill=True).solve(problem, Budget())
    assert result.gap == 1.0 and "100.0%" in result._repr_html_()
    unbounded = dataclasses.replace(result, lower_bound_bytes=None)
    text = unbounded._repr_html_()
    assert re.search(r"gap to the bound</td><td[^>]*>–<", text)
    assert "0.0%" not in text and "100.0%" not in text


def test_reprs_are_short_whatever_the_size_of_the_model():
    # A notebook cell ending in `problem` or `result.plan` (no HTML view) showed the
    # dataclass repr: every op, tensor and residency (280 KB for DenseNet).
    from memplan import Accelerator
    from memplan.io.loading import load_model
    from memplan.problem import Problem
    from memplan.solver import make_solver
    from memplan.testing import random_dag

    graph = random_dag(5, 400)
    problem = Problem(graph, Accelerator("t", 1 << 30))
    problem = problem.with_capacity(problem.min_resident_bytes * 2)
    result = make_solver("greedy").solve(problem, Budget(time_limit_s=30))
    assert result.plan is not None
    loaded = load_model("light_squeezenet")
    for value in (graph, problem, result.plan, result, loaded):
        assert len(repr(value)) < 300, type(value).__name__
    assert repr(graph) == f"Graph({graph.name!r}: 400 ops, {graph.num_tensors} tensors)"
    assert repr(result.plan) == f"Plan(400 steps, {len(result.plan.residencies)} residencies)"
    assert f"greedy: {result.status.value}" in repr(result)
    assert "squeezenet" in repr(loaded) and "capacity" in repr(problem)


def test_a_result_of_another_problem_is_refused_in_one_line():
    # ResultView(problem, other_result)._repr_html_() drew the other plan against this
    # graph: "IndexError: tuple index out of range" when the notebook cell was shown.
    problem = diamond_problem()
    result = NaiveSolver(spill=True).solve(problem, Budget())
    g = GraphBuilder("g")
    x = g.tensor("x", 100, TensorKind.INPUT)
    y = g.tensor("y", 100, is_output=True)
    g.op("a", "A", [x], [y])
    small = Problem(g.build(), problem.accelerator)
    message = r"the plan's order is not a permutation of the 1 ops of graph 'g' \(was the plan"
    with pytest.raises(InvalidPlanError, match=rf"^ResultView: {message}"):
        ResultView(small, result)
    with pytest.raises(InvalidPlanError, match=rf"^plot_plan: {message}"):
        result_html(result, small)  # through the figure, as the view's HTML draws it
    planless = dataclasses.replace(result, plan=None, cost=None)
    assert "<img" not in ResultView(small, planless)._repr_html_()  # nothing to check or draw
