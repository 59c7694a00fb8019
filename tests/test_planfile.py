"""Plan files: round trip, model fingerprint checks, malformed input, CSV export."""

from __future__ import annotations

import csv
import io
import json

import pytest
from plan_fixtures import NaiveSolver, diamond_graph, diamond_problem

from memplan.budgets import ResolvedBudget
from memplan.dsa import validate_packing
from memplan.errors import InputFormatError, InvalidPlanError
from memplan.io.buffers_csv import parse_buffers_csv
from memplan.io.planfile import (
    PLAN_FILE_VERSION,
    plan_csv,
    read_plan_file,
    write_plan_csv,
    write_plan_file,
)
from memplan.ir import GraphBuilder, TensorKind
from memplan.problem import Scope
from memplan.solver import Budget, Status
from memplan.validate import ViolationKind, validate

SHA = "ab" * 32
OTHER_SHA = "cd" * 32


def _solve(spill: bool = False, scope: Scope = Scope.ACTIVATIONS):
    problem = diamond_problem(scope)
    result = NaiveSolver(spill=spill).solve(problem, Budget())
    assert result.plan is not None
    return problem, result


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("spill", [False, True])
def test_round_trip(tmp_path, spill, scope):
    problem, result = _solve(spill, scope)
    budget = ResolvedBudget("MH", problem.capacity_bytes, "test note")
    path = tmp_path / "out" / "plan.json"
    write_plan_file(
        path, result, problem, model_sha256=SHA, model_file="/x/diamond.onnx", budget=budget
    )
    loaded = read_plan_file(path, problem.graph, expected_sha256=SHA)
    assert loaded.plan == result.plan
    assert loaded.accelerator == problem.accelerator
    assert loaded.scope is scope
    assert loaded.problem(problem.graph) == problem
    assert loaded.cost == result.cost
    assert loaded.status is Status.FEASIBLE
    assert loaded.solver == "naive-test"
    assert loaded.options == {"spill": spill, "seed": 0}
    assert loaded.model_file == "diamond.onnx"
    assert loaded.model_name == "diamond"
    assert loaded.budget == {
        "spec": "MH",
        "capacity_bytes": problem.capacity_bytes,
        "note": "test note",
    }
    assert loaded.stats == {"rules": 1}
    assert loaded.lower_bound_bytes == result.lower_bound_bytes
    assert loaded.gap == result.gap
    assert validate(loaded.problem(problem.graph), loaded.plan) == []
    # Nothing but the plan file in the folder: the write went through a renamed temp file.
    assert [p.name for p in path.parent.iterdir()] == ["plan.json"]


def test_no_plan_is_not_written(tmp_path):
    problem = diamond_problem().with_capacity(1024)
    result = NaiveSolver().solve(problem, Budget())
    assert result.status is Status.INFEASIBLE
    with pytest.raises(InvalidPlanError, match="no plan"):
        write_plan_file(tmp_path / "p.json", result, problem, model_sha256=SHA)
    assert not (tmp_path / "p.json").exists()


def test_sha_mismatch_names_both_hashes_and_the_model(tmp_path):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA, model_file="diamond.onnx")
    with pytest.raises(InvalidPlanError) as info:
        read_plan_file(path, problem.graph, expected_sha256=OTHER_SHA)
    message = str(info.value)
    assert SHA in message and OTHER_SHA in message
    assert "made for model 'diamond (diamond.onnx)'" in message
    # Without an expected hash the file is accepted.
    assert read_plan_file(path, problem.graph).plan == result.plan


def test_malformed_json_names_the_line(tmp_path):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    lines = path.read_text().splitlines()
    lines[5] = lines[5] + " oops"
    path.write_text("\n".join(lines))
    with pytest.raises(InputFormatError, match=r"plan.json: line 6, column \d+: invalid JSON"):
        read_plan_file(path, problem.graph)


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda d: d.update(format="something"), "not a memplan plan file"),
        (lambda d: d.update(version=PLAN_FILE_VERSION + 1), "version 2 is not supported"),
        (lambda d: d.pop("model"), "field 'model' is missing"),
        (lambda d: d.update(status="great"), "status 'great' is not one of"),
        (lambda d: d.update(scope="weights"), "unknown scope 'weights'"),
        (lambda d: d["accelerator"].update(speed=3), "unknown field"),
        (lambda d: d["plan"]["residencies"][0].update(tensor="ghost"), "tensor 'ghost'"),
        (lambda d: d["plan"]["order"].__setitem__(0, "nop"), "op 'nop'"),
        (lambda d: d["plan"]["residencies"][0].update(start="zero"), "'start' must be an integer"),
        (lambda d: d["plan"]["residencies"][0].update(leave="keep"), "leave is drop|store"),
        (lambda d: d.pop("plan"), "needs the fields 'order' and 'residencies'"),
    ],
)
def test_bad_content_is_reported(tmp_path, change, pattern):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    _edit(path, change)
    with pytest.raises(InputFormatError, match=pattern) as info:
        read_plan_file(path, problem.graph, expected_sha256=SHA)
    assert str(path) in str(info.value)


def test_unknown_tensor_of_another_graph(tmp_path):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    b = GraphBuilder("other")
    x = b.tensor("x", 64, TensorKind.INPUT)
    y = b.tensor("y", 64, is_output=True)
    b.op("conv_a", "Relu", [x], [y])
    with pytest.raises(InputFormatError, match="was the plan made for another model"):
        read_plan_file(path, b.build())


def test_missing_file(tmp_path):
    with pytest.raises(InputFormatError, match="no such plan file"):
        read_plan_file(tmp_path / "nope.json", diamond_graph())


@pytest.mark.parametrize(
    ("offset", "kind"),
    [(-64, ViolationKind.OUT_OF_BOUNDS), (32, ViolationKind.MISALIGNED)],
)
def test_bad_offsets_load_and_are_left_to_the_validator(tmp_path, offset, kind):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    _edit(path, lambda d: d["plan"]["residencies"][0].update(offset=offset))
    loaded = read_plan_file(path, problem.graph, expected_sha256=SHA)
    kinds = {v.kind for v in validate(loaded.problem(problem.graph), loaded.plan)}
    assert kind in kinds


def test_csv_export_has_one_row_per_stay(tmp_path):
    problem, result = _solve(spill=True)
    plan = result.plan
    text = plan_csv(problem.graph, plan)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["id", "lower", "upper", "size", "offset"]
    assert len(rows) == len(plan.residencies)
    ids = [r["id"] for r in rows]
    assert "a#0" in ids and "a#1" in ids and "x#0" in ids
    by_id = {r["id"]: r for r in rows}
    graph = problem.graph
    stays = plan.residencies_of(graph.tensor_by_name("a").id)
    assert int(by_id["a#1"]["lower"]) == stays[1].start
    assert int(by_id["a#1"]["upper"]) == stays[1].end
    assert int(by_id["a#1"]["size"]) == graph.tensor_by_name("a").size_bytes
    # The CSV is a valid MiniMalloc solution: it reads back and packs without overlap.
    path = tmp_path / "buffers.csv"
    write_plan_csv(path, graph, plan)
    buffers = parse_buffers_csv(path.read_text(), str(path))
    offsets = [int(r["offset"]) for r in rows]
    assert validate_packing(buffers, offsets, problem.capacity_bytes) == []
