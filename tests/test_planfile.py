"""Plan files: round trip, model fingerprint checks, malformed input (in the reader and
through ``memplan validate`` / ``score``), recorded results that contradict, CSV export."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest
from cli_models import run_cli
from plan_fixtures import NaiveSolver, diamond_graph, diamond_problem

from memplan.budgets import ResolvedBudget
from memplan.cli import EXIT_BAD_INPUT, EXIT_OK
from memplan.dsa import validate_packing
from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.io.buffers_csv import parse_buffers_csv
from memplan.io.files import sha256_of_file
from memplan.io.loading import ImportOptions, load_model
from memplan.io.planfile import (
    BUDGET_FIELDS,
    COST_FIELDS,
    MODEL_FIELDS,
    PLAN_FILE_VERSION,
    SOLVER_FIELDS,
    TOP_FIELDS,
    parse_plan_file,
    plan_csv,
    read_plan_file,
    read_plan_header,
    write_plan_csv,
    write_plan_file,
)
from memplan.ir import GraphBuilder, TensorKind, graph_to_json
from memplan.plan import Plan, Residency
from memplan.problem import Problem, Scope
from memplan.solver import Budget, Status
from memplan.testing import random_dag
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
        (lambda d: d.update(version=2.0), "version 2.0 is not supported"),  # was read as 2
        (lambda d: d.pop("import"), "missing field 'import'"),
        (lambda d: d["model"].pop("graph_sha256"), "model.graph_sha256"),
        (lambda d: d.update({"import": {"aliases": "yes"}}), "import option aliases"),
        (lambda d: d.update({"import": {"colour": 1}}), "colour are not known"),
        (lambda d: d.update({"import": {"dims": {"n": -1}}}), "import option dims.n"),
        (  # 900 levels of lists were a RecursionError traceback
            lambda d: d.update(
                {"import": {"input_values": {"x": json.loads("[" * 500 + "]" * 500)}}}
            ),
            "import option input_values has a list inside a list",
        ),
        (lambda d: d.pop("model"), "missing field 'model'"),
        (lambda d: d.update(status="great"), "field 'status' must be one of .*, got 'great'"),
        (
            lambda d: d.update(scope="weights"),
            "'scope' must be one of activations, all, got 'weights'",
        ),
        (lambda d: d["accelerator"].update(speed=3), "unknown field"),
        (lambda d: d["plan"]["residencies"][0].update(tensor="ghost"), "tensor 'ghost'"),
        (lambda d: d["plan"]["order"].__setitem__(0, "nop"), "op 'nop'"),
        (lambda d: d["plan"]["residencies"][0].update(start="zero"), "'start' must be an integer"),
        (lambda d: d["plan"]["residencies"][0].update(leave="keep"), "must be one of drop, store"),
        (lambda d: d.pop("plan"), "missing field 'plan'"),
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


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["plan"]["residencies"][0].update(tensor="ghost"), "names tensor 'ghost'"),
        (lambda d: d["plan"]["order"].__setitem__(0, "nop"), "names op 'nop'"),
    ],
)
def test_a_name_the_fingerprinted_graph_lacks_is_an_edit(tmp_path, change, named):
    """It asked "was the plan made for another model?" though the graph fingerprint had
    just matched: the model is the right one, the name was edited."""
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    _edit(path, change)
    with pytest.raises(InputFormatError) as info:
        read_plan_file(path, problem.graph, expected_sha256=SHA)
    message = str(info.value)
    assert named in message and "another model" not in message
    assert message.endswith(
        "which model 'diamond' does not have; the graph has the plan's recorded "
        "model.graph_sha256, so the file was edited or is corrupt; correct the name, or "
        "re-plan the model with memplan optimize"
    )
    _edit(path, _as_version_1)  # no fingerprint: it may well be another model
    with pytest.raises(InputFormatError, match=r"was the plan made for another model\?$"):
        read_plan_file(path, problem.graph, expected_sha256=SHA)


@pytest.mark.parametrize("kept", ["import", "graph_sha256"])
def test_a_version_1_file_with_version_2_fields_is_refused(tmp_path, kept):
    """A version 1 file with 'import' (or a graph fingerprint) was read without them, and
    memplan said the file did not record how the model was imported."""
    problem, result = _solve()
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    data = json.loads(path.read_text())
    _as_version_1(data)
    if kept == "import":
        data["import"] = None
    else:
        data["model"]["graph_sha256"] = "00" * 32
    path.write_text(json.dumps(data))
    name = "'import'" if kept == "import" else "'model.graph_sha256'"
    with pytest.raises(InputFormatError) as info:
        read_plan_file(path, problem.graph, expected_sha256=SHA)
    assert str(info.value) == (
        f"{path}: a version 1 plan file has no {name} (version 2 added them), so they would "
        'be ignored; set "version" to 2 if the file records them all, or remove them'
    )


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


# ------------------------------------------------ every field checked for its type
def _set(*keys_and_value):
    """An edit setting ``data[k1][k2]... = value`` (the last argument is the value)."""
    *keys, value = keys_and_value

    def change(data):
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


def _drop(*keys):
    """An edit removing ``data[k1][k2]...``."""

    def change(data):
        for key in keys[:-1]:
            data = data[key]
        del data[keys[-1]]

    return change


def _residency(field, value=None, drop=False):
    """An edit of residency #1's ``field`` (removed when ``drop``)."""
    return (_drop if drop else _set)("plan", "residencies", 1, field, *(() if drop else (value,)))


# Variants of the tester's mangled plan files: each is refused in one line naming the file,
# the field and (in the plan) the residency's index. The old reader crashed with a
# traceback on the first six, accepted the next three, and named no missing field.
MANGLED = {
    "budget_str": (_set("budget", "MH"), "field 'budget' must be an object, got 'MH'"),
    "budget_list": (_set("budget", [1, 2]), "field 'budget' must be an object, got a list"),
    "stats_str": (_set("stats", "x"), "field 'stats' must be an object, got 'x'"),
    "order_int": (_set("plan", "order", 5), "field 'plan.order' must be a list of op names, got 5"),
    "order_null": (
        _set("plan", "order", None),
        "'plan.order' must be a list of op names, got null",
    ),
    "res_int": (
        _set("plan", "residencies", 5),
        "field 'plan.residencies' must be a list of residency objects, got 5",
    ),
    "order_dict": (
        lambda d: d["plan"].update(order=dict.fromkeys(d["plan"]["order"], 1)),
        "field 'plan.order' must be a list of op names, got an object",
    ),
    "res_dict": (
        _set("plan", "residencies", {}),
        "field 'plan.residencies' must be a list of residency objects, got an object",
    ),
    "budget_capacity_str": (
        _set("budget", "capacity_bytes", "x"),
        "field 'budget.capacity_bytes' must be an integer >= 0, got 'x'",
    ),
    "miss_leave": (
        _residency("leave", drop=True),
        "residency #1: missing field 'leave' (expected one of drop, store)",
    ),
    "miss_arrive": (
        _residency("arrive", drop=True),
        "residency #1: missing field 'arrive' (expected one of produce, load)",
    ),
    "miss_offset": (
        _residency("offset", drop=True),
        "residency #1: missing field 'offset' (expected an integer)",
    ),
    "miss_start": (
        _residency("start", drop=True),
        "residency #1: missing field 'start' (expected an integer)",
    ),
    "miss_end": (
        _residency("end", drop=True),
        "residency #1: missing field 'end' (expected an integer)",
    ),
    "miss_tensor": (
        _residency("tensor", drop=True),
        "residency #1: missing field 'tensor' (expected a string)",
    ),
    "tensor_int": (_residency("tensor", 7), "residency #1: field 'tensor' must be a string, got 7"),
    "offset_null": (
        _residency("offset", None),
        "residency #1: field 'offset' must be an integer, got null",
    ),
    "offset_bool": (
        _residency("offset", True),
        "residency #1: field 'offset' must be an integer, got true",
    ),
    "residency_str": (
        _set("plan", "residencies", 1, "x"),
        "residency #1 must be an object, got 'x'",
    ),
    "order_item_int": (
        _set("plan", "order", 2, 7),
        "field 'plan.order': item #2 must be a string, got 7 (expected a list of op names)",
    ),
    "order_str": (
        _set("plan", "order", "abc"),
        "'plan.order' must be a list of op names, got 'abc'",
    ),
    "plan_list": (_set("plan", []), "field 'plan' must be an object, got a list"),
    "message_list": (_set("message", ["x"]), "field 'message' must be a string, got a list"),
    "cost_str": (_set("cost", "cheap"), "field 'cost' must be an object, got 'cheap'"),
    "cost_field_str": (
        _set("cost", "non_compulsory_bytes", "x"),
        "field 'cost.non_compulsory_bytes' must be an integer >= 0, got 'x'",
    ),
    "cost_field_missing": (
        _drop("cost", "peak_bytes"),
        "missing field 'cost.peak_bytes' (expected an integer >= 0)",
    ),
    "bound_nan": (
        _set("lower_bound_bytes", float("nan")),
        "'lower_bound_bytes' must be an integer >= 0, got nan",
    ),
    "bound_negative": (
        _set("lower_bound_bytes", -1),
        "'lower_bound_bytes' must be an integer >= 0, got -1",
    ),
    "wall_inf": (
        _set("wall_s", float("inf")),
        "field 'wall_s' must be a finite number >= 0, got inf",
    ),
    "solver_str": (_set("solver", "dnc"), "field 'solver' must be an object, got 'dnc'"),
    "solver_options_list": (
        _set("solver", "options", [1]),
        "field 'solver.options' must be an object, got a list",
    ),
    "no_scope": (_drop("scope"), "missing field 'scope' (expected one of activations, all)"),
    "no_status": (_drop("status"), "missing field 'status' (expected one of optimal, "),
    "sha_int": (_set("model", "sha256", 5), "field 'model.sha256' must be a string, got 5"),
    # Compared as a hash: "made for model ... with sha256 abc".
    "sha_short": (
        _set("model", "sha256", "abc"),
        "field 'model.sha256' must be the model file's SHA-256, 64 hex digits, got 'abc'",
    ),
    "ops_str": (_set("model", "ops", "6"), "field 'model.ops' must be an integer >= 0, got '6'"),
    "import_list": (
        _set("import", [1]),
        "'import' must be an object (null for a memplan graph JSON model), got a list",
    ),
    # Fields the writer does not write were ignored: a misspelt one silently.
    "top_extra": (_set("extra", 1), "unknown field 'extra' (known: format, version, "),
    "model_extra": (_set("model", "opz", 6), "unknown field 'model.opz' (known: name, "),
    "budget_extra": (_set("budget", "capacity", 1), "unknown field 'budget.capacity' (known: "),
    "solver_extra": (_set("solver", "seed", 1), "unknown field 'solver.seed' (known: name, "),
    "cost_extra": (_set("cost", "latency", 1.0), "unknown field 'cost.latency' (known: "),
    "plan_extra": (_set("plan", "orders", []), "unknown field 'plan.orders' (known: order, "),
    "residency_typo": (
        _residency("ofset", 64),
        "residency #1: unknown field 'ofset' (known: tensor, start, end, offset, arrive, "
        "leave); remove it or correct its spelling",
    ),
    # A header that contradicts itself or the graph with its fingerprint was accepted.
    "gap_5": (_set("gap", 5), "field 'gap' must be a finite number from 0 to 1, got 5"),
    "ops_wrong": (
        _set("model", "ops", 5),
        "field 'model.ops' is 5, but the graph with the recorded model.graph_sha256 has 6 "
        "ops: the file was edited or is corrupt; set model.ops to 6",
    ),
    "tensors_wrong": (
        _set("model", "tensors", 10),
        "field 'model.tensors' is 10, but the graph with the recorded model.graph_sha256 has 9",
    ),
}


@pytest.mark.parametrize("name", sorted(MANGLED))
def test_mangled_fields_are_one_line_naming_the_field(tmp_path, name):
    change, expected = MANGLED[name]
    problem, result = _solve(spill=True)
    path = tmp_path / f"{name}.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    _edit(path, change)
    with pytest.raises(InputFormatError) as info:
        read_plan_file(path, problem.graph, expected_sha256=SHA)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    assert "\n" not in message


def test_the_reader_knows_every_field_the_writer_writes_and_stats_stay_free_form(tmp_path):
    """Unknown fields are refused, so the reader's lists must hold all the writer writes."""
    problem, result = _solve(spill=True)
    path = tmp_path / "plan.json"
    budget = ResolvedBudget("MH", problem.capacity_bytes, "note")
    write_plan_file(path, result, problem, model_sha256=SHA, budget=budget)
    data = json.loads(path.read_text())
    assert list(data) == list(TOP_FIELDS) and list(data["model"]) == list(MODEL_FIELDS)
    assert list(data["budget"]) == list(BUDGET_FIELDS)
    assert list(data["solver"]) == list(SOLVER_FIELDS) and set(data["cost"]) <= set(COST_FIELDS)
    # A solver's own options and counters are its business: any name loads.
    _edit(path, lambda d: (d["stats"].update(anything=1), d["solver"]["options"].update(x=2)))
    loaded = read_plan_file(path, problem.graph, expected_sha256=SHA)
    assert loaded.stats["anything"] == 1 and loaded.options["x"] == 2
    _edit(path, _as_version_1)
    assert read_plan_file(path, problem.graph, expected_sha256=SHA).version == 1


def test_the_writer_writes_every_residency_field(tmp_path):
    """Which is why a plan file of either version without one is refused, not defaulted."""
    problem, result = _solve(spill=True)
    path = tmp_path / "plan.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    for item in json.loads(path.read_text())["plan"]["residencies"]:
        assert set(item) == {"tensor", "start", "end", "offset", "arrive", "leave"}
    _edit(path, _as_version_1)
    _edit(path, _residency("leave", drop=True))
    with pytest.raises(InputFormatError, match="residency #1: missing field 'leave'"):
        read_plan_file(path, problem.graph, expected_sha256=SHA)


# ----------------------------------------------- the same, through validate and score
@pytest.fixture
def graph_plan(tmp_path):
    """A graph JSON model and a plan file written for it (with a bound of 0)."""
    problem, result = _solve(spill=True)
    model = tmp_path / "diamond.json"
    model.write_text(graph_to_json(problem.graph))
    result = dataclasses.replace(result, lower_bound_bytes=0)
    plan = tmp_path / "plan.json"
    write_plan_file(plan, result, problem, model_sha256=sha256_of_file(model))
    return model, plan, result


@pytest.mark.parametrize("command", ["validate", "score"])
@pytest.mark.parametrize(
    "name", ["budget_str", "stats_str", "order_int", "order_dict", "res_dict", "miss_leave"]
)
def test_cli_gives_one_line_and_exit_2(graph_plan, capsys, command, name):
    model, plan, _ = graph_plan
    change, expected = MANGLED[name]
    _edit(plan, change)
    code, out, err = run_cli(capsys, command, model, plan)
    assert code == EXIT_BAD_INPUT and out == ""
    assert err.startswith(f"memplan {command}: error: {plan}: ") and expected in err
    assert err.count("\n") == 1


def _repeat_first_offset(text):
    """The first residency's ``offset`` given twice: the reader kept the last one."""
    return text.replace('"offset": ', '"offset": 4096, "offset": ', 1)


# Plan file text that the JSON reader got wrong: a traceback (exit 1) for nesting too
# deep or an integer too long to convert, a repeated key read silently as its last value.
RAW_TEXT = {
    "deep_lists": (lambda text: "[" * 100_000 + "]" * 100_000, "nested too deeply to read"),
    "deep_objects": (
        lambda text: '{"a": ' * 100_000 + "1" + "}" * 100_000,
        "nested too deeply to read",
    ),
    "long_integer": (
        lambda text: text.replace('"wall_s": ', '"wall_s": ' + "9" * 5000 + ', "x": ', 1),
        "an integer of more than 4,300 digits",
    ),
    "repeated_offset": (
        _repeat_first_offset,
        "field 'offset' is given more than once in one JSON object",
    ),
    "repeated_capacity": (
        lambda text: text.replace(
            '"capacity_bytes": ', '"capacity_bytes": 1, "capacity_bytes": ', 1
        ),
        "field 'capacity_bytes' is given more than once in one JSON object",
    ),
}


@pytest.mark.parametrize("command", ["validate", "score"])
@pytest.mark.parametrize("name", sorted(RAW_TEXT))
def test_json_the_reader_got_wrong_is_one_line_and_exit_2(graph_plan, capsys, command, name):
    model, plan, _ = graph_plan
    change, expected = RAW_TEXT[name]
    plan.write_text(change(plan.read_text()))
    code, out, err = run_cli(capsys, command, model, plan)
    assert code == EXIT_BAD_INPUT and out == ""
    assert err.startswith(f"memplan {command}: error: {plan}: ") and expected in err, err
    assert err.count("\n") == 1


def test_a_model_given_as_the_plan_is_named_as_one(graph_plan, capsys):
    """Arguments swapped: the graph file was 'not a memplan plan file', nothing more."""
    model, plan, _ = graph_plan
    code, out, err = run_cli(capsys, "validate", plan, model)
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err == (
        f"memplan validate: error: {model}: is a memplan graph file (a model), not a plan "
        "file; the model comes first, then the plan (memplan validate MODEL PLAN)\n"
    )


def test_a_byte_order_mark_is_skipped(graph_plan, capsys):
    """Editors on Windows save UTF-8 with a BOM: the plan was refused as invalid JSON."""
    model, plan, _ = graph_plan
    plan.write_bytes(b"\xef\xbb\xbf" + plan.read_bytes().replace(b"\n", b"\r\n"))
    code, out, err = run_cli(capsys, "validate", model, plan)
    assert (code, err) == (EXIT_OK, "") and out.startswith(f"{plan}: valid (")


def test_an_upper_case_sha256_is_the_same_hash(graph_plan, capsys):
    """It was "made for model ... with sha256 770B0F...", the model's own hash."""
    model, plan, _ = graph_plan
    _edit(plan, lambda d: d["model"].update(sha256=d["model"]["sha256"].upper()))
    code, out, err = run_cli(capsys, "validate", model, plan)
    assert (code, err) == (EXIT_OK, "") and out.startswith(f"{plan}: valid (")


def test_a_plan_on_standard_input_is_refused_by_name(graph_plan, capsys, monkeypatch):
    """'-' was "-: no such plan file", as if a file named '-' were missing."""
    model, plan, _ = graph_plan
    monkeypatch.chdir(plan.parent)
    code, out, err = run_cli(capsys, "validate", model, "-")
    assert code == EXIT_BAD_INPUT and out == ""
    assert err == (
        "memplan validate: error: -: a plan file is read from a file, not from standard "
        "input; save it first (memplan optimize MODEL -o plan.json) and pass its name\n"
    )


def _bound_above_cost(data):
    data["lower_bound_bytes"] = data["cost"]["non_compulsory_bytes"] + 64


def _optimal_without_bound(data):
    data.update(status="optimal", lower_bound_bytes=None)


def _budget_not_the_capacity(data):
    capacity = data["accelerator"]["capacity_bytes"]
    data.update(budget={"spec": "MR", "capacity_bytes": capacity // 2, "note": ""})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_bound_above_cost, "is above the plan's own recorded cost"),
        (_optimal_without_bound, "status 'optimal' needs lower_bound_bytes equal"),
        # A budget that is not the capacity planned for passed without a word.
        (_budget_not_the_capacity, "differs from accelerator.capacity_bytes"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "score"])
def test_a_bound_the_cost_contradicts_is_a_warning(graph_plan, capsys, command, change, expected):
    model, plan, _ = graph_plan
    code, _, err = run_cli(capsys, command, model, plan)
    assert code == EXIT_OK and err == ""  # as written: consistent
    _edit(plan, change)
    code, out, err = run_cli(capsys, command, model, plan)
    assert code == EXIT_OK and "valid" in out  # the plan itself is still checked and valid
    assert err.startswith(f"memplan {command}: warning: {plan}: ") and expected in err
    assert err.count("\n") == 1
    code, out, _ = run_cli(capsys, command, model, plan, "--json")
    [warning] = json.loads(out)["warnings"]
    assert expected in warning


def test_score_warns_of_a_bound_above_the_cost_it_computes(graph_plan, capsys):
    """Without a recorded cost, the bound is checked against the cost computed now."""
    model, plan, result = graph_plan
    bound = result.cost.non_compulsory_bytes + 64
    _edit(plan, lambda d: d.update(cost=None, lower_bound_bytes=bound))
    code, _, err = run_cli(capsys, "score", model, plan)
    assert code == EXIT_OK and err.count("\n") == 1
    assert f"lower_bound_bytes {bound} is above this plan's non-compulsory cost" in err


def test_score_says_why_the_recorded_cost_differs(graph_plan, capsys):
    model, plan, result = graph_plan
    code, out, _ = run_cli(capsys, "score", model, plan)
    assert code == EXIT_OK and "recorded cost: matches" in out
    # An edited cost: no override explains it (the bound of 0 stays consistent).
    _edit(plan, lambda d: d["cost"].update(peak_bytes=d["cost"]["peak_bytes"] + 64))
    code, out, _ = run_cli(capsys, "score", model, plan)
    peak = result.cost.peak_bytes
    assert code == EXIT_OK
    assert f"differs in peak_bytes (recorded {peak + 64}, computed {peak}), which no " in out
    assert "the file was edited" in out and "the model, accelerator or scope changed" not in out
    code, out, _ = run_cli(capsys, "score", model, plan, "--json")
    assert json.loads(out)["recorded_differs_in"] == ["peak_bytes"]


def test_score_blames_an_accelerator_override_only_for_what_it_changes(
    graph_plan, capsys, tmp_path
):
    model, plan, _ = graph_plan
    slower = tmp_path / "slow.json"  # the same scratchpad, half the DRAM bandwidth
    spec = json.loads(plan.read_text())["accelerator"]
    slower.write_text(json.dumps({**spec, "dram_bytes_per_s": spec["dram_bytes_per_s"] / 2}))
    code, out, _ = run_cli(capsys, "score", model, plan, "--accelerator", slower)
    assert code == EXIT_OK
    assert "recorded cost: differs in latency_s" in out and "overrides --accelerator" in out
    assert "edited" not in out
    # Traffic does not depend on the accelerator: an edited byte count is still said.
    _edit(plan, lambda d: d["cost"].update(stored_bytes=d["cost"]["stored_bytes"] + 64))
    code, out, _ = run_cli(capsys, "score", model, plan, "--accelerator", slower)
    assert code == EXIT_OK
    assert "differs in stored_bytes" in out and "which no override explains" in out


@pytest.mark.parametrize("sha", [None, "xyz", "ab" * 31, "g" * 64, 5, "ab" * 32 + "\n"])
def test_write_plan_file_refuses_a_model_sha256_the_reader_would_refuse(tmp_path, sha):
    """None was written as null (the reader then refused the file: 'model.sha256 must be
    a string, got null'), and 'xyz' as a hash no model has."""
    problem, result = _solve()
    path = tmp_path / "p.json"
    with pytest.raises(ConfigError, match="model_sha256 must be the model file's SHA-256, 64 hex"):
        write_plan_file(path, result, problem, model_sha256=sha)
    assert list(tmp_path.iterdir()) == []


def test_write_plan_file_records_an_upper_case_sha256_as_the_reader_compares_it(tmp_path):
    problem, result = _solve()
    path = tmp_path / "p.json"
    write_plan_file(path, result, problem, model_sha256=SHA.upper())
    assert read_plan_file(path, problem.graph, expected_sha256=SHA).plan == result.plan


def test_write_plan_file_refuses_a_result_of_another_problem(tmp_path):
    """The file recorded the problem's model (nasnet, 115 ops) but held the other
    model's order (darts, 75 ops), named with nasnet's op names."""
    problem, result = _solve()
    other = Problem(random_dag(3, 12), problem.accelerator)
    path = tmp_path / "p.json"
    with pytest.raises(InvalidPlanError, match=r"order has 6 entries, not a permutation of the 12"):
        write_plan_file(path, result, other, model_sha256=SHA)
    assert result.plan is not None
    stays = (*result.plan.residencies, Residency(500, 0, 1, 0))
    stray = dataclasses.replace(result, plan=Plan(result.plan.order, stays))
    with pytest.raises(InvalidPlanError, match=r"residencies\[\d+\] names tensor 500, but graph"):
        write_plan_file(path, stray, problem, model_sha256=SHA)
    names = ("a", *result.plan.order[1:])
    named = dataclasses.replace(result, plan=Plan(names, result.plan.residencies))  # type: ignore[arg-type]
    with pytest.raises(InvalidPlanError, match=r"write_plan_file: order\[0\] is 'a'"):
        write_plan_file(path, named, problem, model_sha256=SHA)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"result": None}, "result must be a SolveResult .*got NoneType"),
        ({"problem": "graph"}, "write_plan_file: problem must be a memplan Problem, got Graph"),
        ({"model_file": 5}, "model_file must be the model's path"),
        ({"budget": "MH"}, r"budget must be a ResolvedBudget \(resolve_budget"),
        ({"import_options": {}}, "import_options must be an ImportOptions"),
    ],
)
def test_write_plan_file_names_a_wrong_argument(tmp_path, change, fragment):
    """write_plan_file(path, None, ...) raised AttributeError: 'NoneType' object has no
    attribute 'plan'."""
    problem, result = _solve()
    arguments = {"result": result, "problem": problem, "model_sha256": SHA, **change}
    if arguments["problem"] == "graph":
        arguments["problem"] = problem.graph
    with pytest.raises(ConfigError, match=fragment):
        write_plan_file(tmp_path / "p.json", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_reading_with_a_loaded_model_for_the_graph_says_to_pass_its_graph(tmp_path):
    """read_plan_file(path, load_model(...)) raised AttributeError: 'LoadedModel' object
    has no attribute 'name'."""
    problem, result = _solve()
    path = tmp_path / "p.json"
    write_plan_file(path, result, problem, model_sha256=SHA)
    (tmp_path / "diamond.json").write_text(graph_to_json(problem.graph))
    loaded = load_model(tmp_path / "diamond.json")
    with pytest.raises(ConfigError, match=r"read_plan_file: graph must be a memplan Graph, got Lo"):
        read_plan_file(path, loaded)
    with pytest.raises(ConfigError, match=r"got LoadedModel \(pass load_model\(\.\.\.\)\.graph\)"):
        parse_plan_file(path.read_text(), loaded)
    with pytest.raises(ConfigError, match="graph must be a memplan Graph, got NoneType"):
        read_plan_file(tmp_path / "missing.json", None)
    with pytest.raises(ConfigError, match="expected_sha256 must be the model's hex SHA-256"):
        read_plan_file(path, problem.graph, expected_sha256=5)
    assert read_plan_file(path, loaded.graph).plan == result.plan
