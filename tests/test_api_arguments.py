"""The Python API refuses wrong arguments with the project's errors, naming them.

A notebook user's slip (a scope as a string, a LoadedModel for a Graph, options as a
list, a plan of another problem) gets a ConfigError or InvalidPlanError that says what
was expected, not an AttributeError or IndexError from deep inside.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import memplan
from memplan.accelerator import Accelerator
from memplan.dsa import Buffer, allocate, make_allocator
from memplan.errors import ConfigError, InvalidPlanError
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, Scope
from memplan.solver import Budget, make_solver
from memplan.testing import random_dag
from memplan.validate import validate


def _problem(seed: int = 1, n_ops: int = 20) -> Problem:
    problem = Problem(random_dag(seed, n_ops), Accelerator("t", 1, alignment_bytes=64))
    return problem.with_capacity(problem.min_resident_bytes * 2)


def test_a_scope_string_is_parsed_and_a_wrong_one_refused() -> None:
    graph = random_dag(2, 15)
    acc = Accelerator("t", 1 << 20, alignment_bytes=64)
    problem = Problem(graph, acc, "all")  # type: ignore[arg-type]
    assert problem.scope is Scope.ALL and all(problem.in_scope)
    assert problem == Problem(graph, acc, Scope.ALL)
    with pytest.raises(ConfigError, match="unknown scope 'weird'"):
        Problem(graph, acc, "weird")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scope must be"):
        Problem(graph, acc, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("graph", "accelerator", "fragment"),
    [
        (None, Accelerator("t", 1024), "graph must be a memplan Graph, got NoneType"),
        ("randwire_ws_tiny", Accelerator("t", 1024), "graph must be a memplan Graph, got str"),
        (random_dag(1, 5), "edge-npu", "accelerator must be an Accelerator"),
    ],
)
def test_problem_names_a_wrong_argument(graph: Any, accelerator: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Problem(graph, accelerator)


def test_a_loaded_model_for_a_graph_gets_a_hint() -> None:
    loaded = memplan.load_model("light_squeezenet")
    with pytest.raises(ConfigError, match=r"pass load_model\(\.\.\.\)\.graph"):
        Problem(loaded, Accelerator("t", 1024))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        (None, None, "solver name must be a string"),
        ("greedy", [1], "options must be a mapping"),
        ("greedy", "order=dfs", "options must be a mapping"),
        ("greedy", {"max_retries": 2.5}, "option max_retries=2.5 is not a valid int"),
        ("greedy", {"alloc_time_limit_s": float("nan")}, "is not a valid float"),
        ("greedy", {"order": 3}, "option order=3 is not a valid str"),
    ],
)
def test_make_solver_refuses_wrong_types(name: Any, options: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        make_solver(name, options)


def test_make_solver_takes_python_values_of_the_right_type() -> None:
    solver = make_solver("greedy", {"alloc_time_limit_s": 2, "max_retries": 3, "order": "dfs"})
    assert solver.alloc_time_limit_s == 2.0 and isinstance(solver.alloc_time_limit_s, float)
    assert solver.max_retries == 3 and solver.order == "dfs"


def test_scoring_a_plan_of_another_problem_is_an_invalid_plan_error() -> None:
    small, other = _problem(1, 20), _problem(2, 30)
    plan = make_solver("greedy").solve(small, Budget(time_limit_s=10)).plan
    assert plan is not None
    for score in (memplan.evaluate, memplan.simulate):
        with pytest.raises(InvalidPlanError, match="not a permutation of the 30 ops"):
            score(other, plan)
        with pytest.raises(InvalidPlanError, match="not a permutation"):
            score(small, Plan.make([], []))
        with pytest.raises(InvalidPlanError, match="expected a memplan Plan"):
            score(small, None)  # type: ignore[arg-type]
    broken = Plan(plan.order, (*plan.residencies[:-1], plan.residencies[-1].__class__(
        10_000, 0, 1, 0)))  # fmt: skip
    with pytest.raises(InvalidPlanError, match="does not fit graph"):
        memplan.evaluate(small, broken)
    assert memplan.evaluate(small, plan).non_compulsory_bytes >= 0  # a good plan still scores


def test_validate_and_plan_make_name_wrong_arguments() -> None:
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    with pytest.raises(InvalidPlanError, match="expected a Problem"):
        validate(None, plan)  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="expected a Plan, got dict"):
        validate(problem, {"order": []})  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="order must be a list of op ids"):
        Plan.make(None, [])  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="whole numbers"):
        Plan.make(["a"], [])  # type: ignore[list-item]
    with pytest.raises(InvalidPlanError, match="list of Residency"):
        Plan.make([0], [1])  # type: ignore[list-item]
    assert Plan.make(iter(plan.order), iter(plan.residencies)) == plan


def test_allocate_names_wrong_arguments() -> None:
    with pytest.raises(ConfigError, match="buffers must be a list"):
        allocate(None, 1024)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="capacity_bytes must be a whole number"):
        allocate([Buffer("a", 0, 1, 4)], "1MB")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["greedy", "dnc", "rl", "ilp"])
def test_solve_names_wrong_arguments(name: str) -> None:
    solver = make_solver(name)
    with pytest.raises(ConfigError, match=f"{name}.solve: problem must be a memplan Problem"):
        solver.solve(random_dag(1, 5), Budget(time_limit_s=1))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=f"{name}.solve: budget must be a memplan Budget"):
        solver.solve(_problem(), 5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda g, p: memplan.evaluate(g, p), "evaluate: problem must be a memplan Problem"),
        (lambda g, p: memplan.simulate(g, p), "simulate: problem must be a memplan Problem"),
        (lambda g, p: memplan.resolve_budget("MR", g), "resolve_budget: problem must be"),
        (lambda g, p: memplan.exact_min_peak(g), "exact_min_peak: problem must be"),
        (lambda g, p: memplan.spill_everything_plan(g, p.order), "spill_everything_plan: prob"),
    ],
)
def test_functions_taking_a_problem_refuse_a_graph(call: Any, fragment: str) -> None:
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    with pytest.raises(ConfigError, match=fragment) as error:
        call(problem.graph, plan)
    assert "wrap the graph, Problem(graph, load_accelerator('edge-npu'))" in str(error.value)


def test_spill_everything_plan_refuses_an_order_that_is_not_all_ops() -> None:
    problem = _problem(1, 12)
    with pytest.raises(ConfigError, match="order has 2 entries; it must list each of the 12"):
        memplan.spill_everything_plan(problem, [0, 0])
    with pytest.raises(ConfigError, match="order must be a sequence of op ids"):
        memplan.spill_everything_plan(problem, None)  # type: ignore[arg-type]
    plan = memplan.spill_everything_plan(problem, range(12))
    assert validate(problem, plan) == []


def test_load_accelerator_refuses_what_is_not_a_name_or_path() -> None:
    for value in (None, 3, Accelerator("t", 1024)):
        with pytest.raises(ConfigError, match="load_accelerator: pass a preset name"):
            memplan.load_accelerator(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ["64", 64.0, True, None])
def test_a_buffer_of_a_size_that_is_no_whole_number_is_refused(size: Any) -> None:
    with pytest.raises(memplan.MemplanError, match=r"size .*whole number"):
        Buffer("a", 0, 1, size)


def _build(**changes: Any) -> memplan.Graph:
    builder = memplan.GraphBuilder("g")
    x = builder.tensor("x", changes.get("size", 1024), changes.get("kind", "input"))
    y = builder.tensor("y", 1024, is_output=True)
    builder.op("relu", "Relu", changes.get("inputs", [x]), [y], changes.get("macs", 0))
    builder.mark_output(changes.get("output", y))
    return builder.build()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"size": "1KiB"}, "tensor 'x': size_bytes '1KiB' is not a whole number of bytes"),
        ({"size": 1000.7}, "tensor 'x': size_bytes 1000.7 is not a whole number"),
        ({"kind": "constant"}, "kind 'constant' is not a TensorKind; use one of activation"),
        ({"inputs": ["x"]}, r"op 'relu': inputs lists 'x', not a tensor id \(tensor_id\('x'\)"),
        ({"inputs": 0}, r"inputs must be a list of tensor ids, got 0 \(write \[0\] for one\)"),
        ({"macs": "5"}, "op 'relu': macs '5' is not a whole number"),
        ({"output": 7}, r"mark_output\(7\): not the id of a tensor added earlier"),
    ],
)
def test_graph_builder_names_wrong_arguments(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(memplan.GraphError, match=fragment):
        _build(**changes)


def test_graph_builder_parses_a_kind_given_as_a_string() -> None:
    graph = _build(kind="input")  # was kept as a str: neither an input nor in scope
    assert graph.tensors[0].kind is memplan.TensorKind.INPUT
    assert graph.tensors[0].size_bytes == 1024


def _bypassing(residency: Residency, **fields: Any) -> Residency:
    """A copy of ``residency`` with ``fields`` set past Residency's own checks."""
    copy = dataclasses.replace(residency)
    for name, value in fields.items():
        object.__setattr__(copy, name, value)
    return copy


def test_validate_refuses_residency_fields_of_the_wrong_type() -> None:
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    first = plan.residencies[0]
    cases = [
        ((first.tensor, first.start, first.end, first.offset), r"residencies\[0\] is a tuple"),
        (Residency(first.tensor, first.start, first.end, 0.5), r"\.offset is 0\.5"),
        (_bypassing(first, arrive="load"), "arrive='load'"),
    ]
    for residency, fragment in cases:
        broken = Plan(plan.order, (residency, *plan.residencies[1:]))  # type: ignore[arg-type]
        with pytest.raises(InvalidPlanError, match=fragment):
            validate(problem, broken)
    with pytest.raises(InvalidPlanError, match=r"order\[0\] is 'a'"):
        validate(problem, Plan(("a", *plan.order[1:]), plan.residencies))  # type: ignore[arg-type]
    assert validate(problem, plan) == []


def test_views_and_plots_name_wrong_arguments(tmp_path: Any) -> None:
    from memplan.viz.display import ResultView, compare
    from memplan.viz.explore import step_view
    from memplan.viz.plots import plot_plan

    problem = _problem()
    result = make_solver("greedy").solve(problem, Budget(time_limit_s=10))
    assert result.plan is not None
    with pytest.raises(ConfigError, match="plot_plan: plan must be a memplan Plan, got NoneType"):
        plot_plan(problem, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\(pass result\.plan\)"):
        plot_plan(problem, result)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\.txt is not a figure format"):
        plot_plan(problem, result.plan, tmp_path / "plan.txt")
    assert not (tmp_path / "plan.txt").exists()
    with pytest.raises(ConfigError, match="step_view: step 999 is not a step of the plan"):
        step_view(problem, result.plan, step=999)
    with pytest.raises(ConfigError, match="compare: pass a mapping of labels to SolveResults"):
        compare([result])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ResultView: result must be a SolveResult"):
        ResultView(problem, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ResultView: problem must be a memplan Problem"):
        ResultView(problem.graph, result)  # type: ignore[arg-type]


def test_allocate_and_relative_gap_name_wrong_arguments() -> None:
    with pytest.raises(ConfigError, match="allocate: budget must be a memplan Budget"):
        allocate([Buffer("a", 0, 1, 64)], 128, budget=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="relative_gap: value_bytes must be a number"):
        memplan.relative_gap("100", 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="relative_gap: bound_bytes must be a number"):
        memplan.relative_gap(100, "0")  # type: ignore[arg-type]
    assert memplan.relative_gap(100, 25) == 0.75 and memplan.relative_gap(100, None) is None


def test_plan_views_and_timeline_figures_name_wrong_arguments(tmp_path: Any) -> None:
    from memplan.viz.display import PlanView
    from memplan.viz.timeline import plot_schedule, plot_timeline

    problem = _problem()
    result = make_solver("greedy").solve(problem, Budget(time_limit_s=10))
    assert result.plan is not None
    with pytest.raises(ConfigError, match="PlanView: problem must be a memplan Problem"):
        PlanView(problem.graph, result.plan)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"PlanView: plan .*\(pass result\.plan\)"):
        PlanView(problem, result)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"timelines must be \(label, Timeline\) pairs"):
        plot_schedule(problem, result.plan, [1, 2])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="plot_timeline: plan must be a memplan Plan"):
        plot_timeline(problem, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\.jpg is not a figure format"):
        plot_timeline(problem, result.plan, path=tmp_path / "t.jpg")


def test_a_plan_built_from_lists_equals_the_same_plan_from_tuples_and_hashes() -> None:
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    listed = Plan(list(plan.order), list(plan.residencies))  # type: ignore[arg-type]
    assert listed == plan and hash(listed) == hash(plan)
    assert type(listed.order) is tuple and type(listed.residencies) is tuple
    assert Plan(range(3), iter([])).order == (0, 1, 2)  # type: ignore[arg-type]
    assert len({plan, listed}) == 1


@pytest.mark.parametrize(
    ("order", "residencies", "fragment"),
    [
        (None, (), "Plan: order must be a sequence of op ids, got NoneType"),
        ("abc", (), "Plan: order must be a sequence of op ids, got str"),
        ((0,), None, "Plan: residencies must be a sequence of Residency objects, got NoneType"),
        ((0,), 5, "residencies must be a sequence of Residency objects, got int"),
    ],
)
def test_a_plan_whose_order_or_residencies_is_no_sequence_is_refused(
    order: Any, residencies: Any, fragment: str
) -> None:
    with pytest.raises(InvalidPlanError, match=fragment):
        Plan(order, residencies)


def test_validate_of_a_plan_with_no_order_is_an_invalid_plan_error() -> None:
    """validate(problem, Plan(order=None, ...)) raised TypeError: 'NoneType' object is not
    iterable; the Plan itself now refuses it."""
    with pytest.raises(InvalidPlanError, match="order must be a sequence of op ids"):
        validate(_problem(), Plan(order=None, residencies=()))  # type: ignore[arg-type]


def test_residency_arrive_and_leave_are_checked_and_strings_parsed() -> None:
    stay = Residency(0, 0, 1, 0, "load", "store")  # type: ignore[arg-type]
    assert stay.arrive is Arrive.LOAD and stay.leave is Leave.STORE
    assert Residency(0, 0, 1, 0) == Residency(0, 0, 1, 0, Arrive.PRODUCE, Leave.DROP)
    with pytest.raises(InvalidPlanError, match=r"arrive='x' is not allowed; use one of Arr"):
        Residency(0, 0, 1, 0, "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match=r"leave=None is not allowed; .*Leave\.STORE"):
        Residency(0, 0, 1, 0, Arrive.LOAD, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match=r"arrive=<Leave\.DROP"):
        Residency(0, 0, 1, 0, Leave.DROP)  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match="leave=1"):
        dataclasses.replace(stay, leave=1)


@pytest.mark.parametrize("name", ["capacity_bytes", "graph", "not_an_attribute"])
def test_assigning_to_a_frozen_problem_plan_or_residency_is_a_frozen_instance_error(
    name: str,
) -> None:
    """problem.capacity_bytes = 5 (a property) raised TypeError: super(type, obj): obj
    must be an instance or subtype of type; only field names gave FrozenInstanceError."""
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    for value in (problem, plan, plan.residencies[0]):
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot assign to .*{name}"):
            setattr(value, name, 5)
        with pytest.raises(dataclasses.FrozenInstanceError, match="is frozen; make another"):
            delattr(value, name)
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"problem\.with_capacity"):
        problem.capacity_bytes = 5  # type: ignore[misc]
    assert problem.with_capacity(4096).capacity_bytes == 4096  # replacing still works


def test_every_public_frozen_value_refuses_assignment_with_a_frozen_instance_error() -> None:
    """graph.foo = 1 (and the same on an Accelerator, Tensor, Op, Cost, ...) raised
    TypeError: super(type, obj), as Problem did before; each now says it is frozen."""
    problem = _problem()
    plan = make_solver("greedy").solve(problem, Budget(time_limit_s=10)).plan
    assert plan is not None
    buffers = [Buffer("a", 0, 2, 64), Buffer("b", 1, 3, 64)]
    broken = Plan.make(plan.order[::-1], plan.residencies)
    values: list[object] = [
        problem.accelerator,
        problem.graph,
        problem.graph.tensors[0],
        problem.graph.ops[0],
        problem.graph.subgraph(range(3)),
        memplan.evaluate(problem, plan),
        memplan.simulate(problem, plan),
        validate(problem, broken)[0],
        memplan.budgets.heuristic_min_peak(problem),
        buffers[0],
        allocate(buffers, 1024),
        memplan.load_model("light_bvlc_alexnet"),
        memplan.budgets.resolve_budget("MR", problem),
    ]
    for value in values:
        noun = type(value).__name__
        first_field = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
        for name in ("not_an_attribute", first_field):
            article = "an" if noun[0] in "AEIOU" else "a"
            frozen = f"{noun}.{name}: {article} {noun} is frozen"
            with pytest.raises(dataclasses.FrozenInstanceError, match=frozen):
                setattr(value, name, 5)
            with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot delete {noun}"):
                delattr(value, name)


def test_make_solver_takes_numpy_numbers_for_int_and_float_options() -> None:
    """{"seed": np.int64(3)} was refused ('is not a valid int') though Budget and the
    other public functions take numpy integers."""
    solver = make_solver(
        "greedy",
        {"seed": np.int64(3), "max_retries": np.int32(2), "alloc_time_limit_s": np.float32(1.5)},
    )
    assert solver.seed == 3 and type(solver.seed) is int
    assert solver.max_retries == 2 and type(solver.max_retries) is int
    assert solver.alloc_time_limit_s == 1.5 and type(solver.alloc_time_limit_s) is float
    assert make_solver("greedy", {"seed": 3}) == solver.__class__(seed=3)
    problem = _problem()
    plans = [
        make_solver("greedy", {"seed": s}).solve(problem, Budget(10)).plan for s in (3, solver.seed)
    ]
    assert plans[0] == plans[1]
    with pytest.raises(ConfigError, match=r"max_retries=np\.float64\(2\.5\) is not a valid int"):
        make_solver("greedy", {"max_retries": np.float64(2.5)})
    with pytest.raises(ConfigError, match="seed=True is not a valid int"):
        make_solver("greedy", {"seed": True})


@pytest.mark.parametrize("name", ["greedy", "dnc", "ilp", "rl"])
def test_a_solver_class_called_directly_types_its_options_as_make_solver_does(
    name: str,
) -> None:
    """GreedySolver(seed=np.int64(3)) was refused (only make_solver converted numpy
    numbers), and GreedySolver(max_retries=2.0) was taken as it was."""
    cls = type(make_solver(name))
    direct = cls(seed=np.int64(3))
    assert type(direct.seed) is int and direct == make_solver(name, {"seed": np.int64(3)})
    with pytest.raises(ConfigError, match=rf"'{name}': option seed=2\.0 is not a valid int"):
        cls(seed=2.0)
    greedy = type(make_solver("greedy"))
    assert type(greedy(max_retries=np.int32(2)).max_retries) is int
    assert type(greedy(alloc_time_limit_s=np.float32(1.5)).alloc_time_limit_s) is float
    with pytest.raises(ConfigError, match=r"max_retries=2\.0 is not a valid int"):
        greedy(max_retries=2.0)
    allocator = type(make_allocator("exact"))
    assert type(allocator(seed=np.int64(5)).seed) is int
