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
from memplan.io.loading import ImportOptions
from memplan.io.planfile import (
    PLAN_FILE_VERSION,
    plan_csv,
    read_plan_file,
    read_plan_header,
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
    path.parent.mkdir()
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
    assert loaded.version == PLAN_FILE_VERSION == 2
    assert loaded.import_options is None  # a graph, not an ONNX import
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
        (lambda d: d.update(version=PLAN_FILE_VERSION + 1), "version 3 is not supported"),
        (lambda d: d.update(version=True), "version True is not supported"),
        (lambda d: d.pop("import"), "field 'import' is missing"),
        (lambda d: d["model"].pop("graph_sha256"), "model.graph_sha256"),
        (lambda d: d.update({"import": {"aliases": "yes"}}), "import option aliases"),
        (lambda d: d.update({"import": {"colour": 1}}), "colour are not known"),
        (lambda d: d.update({"import": {"dims": {"n": -1}}}), "import option dims.n"),
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


def _other_graph():
    b = GraphBuilder("other")
    x = b.tensor("x", 64, TensorKind.INPUT)
    y = b.tensor("y", 64, is_output=True)
    b.op("conv_a", "Relu", [x], [y])
    return b.build()


def test_another_graph_is_rejected_by_its_fingerprint(tmp_path):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    with pytest.raises(InvalidPlanError) as info:
        read_plan_file(path, _other_graph())
    message = str(info.value)
    assert "imported as 6 ops and 9 tensors" in message
    assert "the graph given has 1 ops and 2 tensors" in message


def test_same_counts_other_sizes_are_rejected(tmp_path):
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    data = json.loads(path.read_text())
    data["model"]["graph_sha256"] = "00" * 32
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidPlanError, match="same counts but other tensor sizes"):
        read_plan_file(path, problem.graph)


def _as_version_1(data):
    """The same plan as memplan 0.1 wrote it: no import options, no graph fingerprint."""
    data["version"] = 1
    data.pop("import")
    for key in ("graph_sha256", "ops", "tensors"):
        data["model"].pop(key)


def test_version_1_files_are_still_read(tmp_path):
    problem, result = _solve(spill=True)
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    _edit(path, _as_version_1)
    loaded = read_plan_file(path, problem.graph, expected_sha256=SHA)
    assert loaded.version == 1 and loaded.import_options is None
    assert loaded.plan == result.plan and loaded.cost == result.cost
    # Without a fingerprint, another graph fails on the names it lacks.
    with pytest.raises(InputFormatError, match="was the plan made for another model"):
        read_plan_file(path, _other_graph())


def test_import_options_round_trip(tmp_path):
    problem, result = _solve()
    options = ImportOptions.create(
        input_shapes={"x": (1, 3, 640, 640), "a": ()},
        dims={"batch": 2},
        dtype_bytes=1,
        aliases=False,
    )
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA, import_options=options)
    data = json.loads(path.read_text())
    assert data["import"] == {
        "input_shapes": {"a": [], "x": [1, 3, 640, 640]},
        "dims": {"batch": 2},
        "input_values": {},
        "dtype_bytes": 1,
        "aliases": False,
    }
    header = read_plan_header(path)
    assert header.import_options == options
    assert header.graph_size == (problem.graph.num_ops, problem.graph.num_tensors)
    assert read_plan_file(path, problem.graph).import_options == options
    assert options.flags() == [
        "--input-shape a:",
        "--input-shape x:1,3,640,640",
        "--dim batch=2",
        "--dtype-bytes 1",
        "--no-aliases",
    ]
    assert ImportOptions().flags() == [] and ImportOptions().flags(["dims"]) == ["no --dim"]


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
