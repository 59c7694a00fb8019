"""Reading plan files in two steps (:func:`read_plan_header`, then
:func:`plan_from_header` against the loaded model; :func:`read_plan_file` does both),
every field checked with its type; see :mod:`memplan.io.planfile` for the rules.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan import __version__
from memplan.accelerator import Accelerator
from memplan.cost import Cost
from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.io.loading import ImportOptions
from memplan.io.planfile.layout import (
    BUDGET_FIELDS,
    COST_FIELDS,
    MODEL_FIELDS,
    PLAN_FORMAT,
    READABLE_VERSIONS,
    SHA256_HEX,
    SOLVER_FIELDS,
    TOP_FIELDS,
    PlanFile,
    PlanHeader,
)
from memplan.ir import Graph, graph_sha256
from memplan.jsonfields import JsonObject, parse_json
from memplan.plan import Plan
from memplan.problem import Scope
from memplan.solver import Status
from memplan.timing import TIMING_MODELS

if TYPE_CHECKING:
    pass


def read_plan_file(
    path: str | os.PathLike[str], graph: Graph, expected_sha256: str | None = None
) -> PlanFile:
    """Read a plan file and rebuild its plan against ``graph``.

    Args:
        path: the plan file.
        graph: the model the plan is used with.
        expected_sha256: that model's SHA-256; when given, a plan made for a model with
            another hash is rejected.

    Raises:
        InputFormatError: unreadable file, malformed JSON (with the line), wrong format or
            version, missing or mistyped fields, an op or tensor the graph does not have.
        InvalidPlanError: the plan was made for another model, or for another import
            of it (other input shapes, element size or aliasing).
        ConfigError: ``graph`` is not a Graph (a LoadedModel: pass its ``.graph``), or
            ``expected_sha256`` is not a string.
    """
    _check_read_arguments(graph, expected_sha256, "read_plan_file")
    return plan_from_header(read_plan_header(path), graph, expected_sha256)


def parse_plan_file(
    text: str, graph: Graph, expected_sha256: str | None = None, source: str = "<plan>"
) -> PlanFile:
    """Parse plan file text; see :func:`read_plan_file`."""
    _check_read_arguments(graph, expected_sha256, "parse_plan_file")
    return plan_from_header(parse_plan_header(text, source), graph, expected_sha256)


def _check_read_arguments(graph: object, expected_sha256: object, where: str) -> None:
    """Refuse a graph that is not one (a LoadedModel, say) before the file is read."""
    if not isinstance(graph, Graph):
        hint = " (pass load_model(...).graph)" if hasattr(graph, "graph") else ""
        raise ConfigError(
            f"{where}: graph must be a memplan Graph, got {type(graph).__name__}{hint}"
        )
    if expected_sha256 is not None and not isinstance(expected_sha256, str):
        raise ConfigError(
            f"{where}: expected_sha256 must be the model's hex SHA-256 (a str) or None, "
            f"got {type(expected_sha256).__name__}"
        )


def read_plan_header(path: str | os.PathLike[str]) -> PlanHeader:
    """Read a plan file's format, version and what it says about its model.

    Raises:
        InputFormatError: unreadable file, malformed JSON, wrong format or version, a
            missing or mistyped model or import field.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte order mark is skipped
    except FileNotFoundError:
        if source == "-":
            raise InputFormatError(
                "-: a plan file is read from a file, not from standard input; save it "
                "first (memplan optimize MODEL -o plan.json) and pass its name"
            ) from None
        raise InputFormatError(f"{source}: no such plan file") from None
    except IsADirectoryError:
        raise InputFormatError(f"{source}: is a folder, not a plan file") from None
    except UnicodeDecodeError:
        raise InputFormatError(
            f"{source}: not UTF-8 text, so not a plan file; "
            "write one with: memplan optimize MODEL -o plan.json"
        ) from None
    except OSError as error:
        raise InputFormatError(
            f"{source}: cannot read the plan file ({error.strerror or error})"
        ) from None
    return parse_plan_header(text, source)


def parse_plan_header(text: str, source: str = "<plan>") -> PlanHeader:
    """Parse plan file text up to what it says about its model; see :func:`read_plan_header`."""
    try:
        data = parse_json(text, source)
    except json.JSONDecodeError as error:
        raise InputFormatError(
            f"{source}: line {error.lineno}, column {error.colno}: invalid JSON ({error.msg})"
        ) from None
    if isinstance(data, dict) and data.get("format") == "memplan.graph":
        raise InputFormatError(
            f"{source}: is a memplan graph file (a model), not a plan file; the model "
            "comes first, then the plan (memplan validate MODEL PLAN)"
        )
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise InputFormatError(
            f'{source}: not a memplan plan file (expected "format": "{PLAN_FORMAT}"); '
            "write one with: memplan optimize MODEL -o plan.json"
        )
    version = data.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # 2.0 and true too
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise InputFormatError(
            f"{source}: plan file version {version!r} is not supported (this memplan "
            f"{__version__} reads versions {readable}); re-run memplan optimize"
        )
    fields = JsonObject(data, source)
    fields.refuse_unknown(TOP_FIELDS)
    model = fields.object("model")
    model.refuse_unknown(MODEL_FIELDS)
    graph_sha, graph_size, import_options = None, None, None
    if version >= 2:
        graph_sha = model.text("graph_sha256")
        graph_size = (model.integer("ops", minimum=0), model.integer("tensors", minimum=0))
        if not fields.has("import"):
            raise fields.error("import", "an object, or null for a memplan graph JSON model")
        if data["import"] is not None:
            import_options = ImportOptions.from_dict(data["import"], source)
    else:  # version 1 had none of these: they would be ignored without a word
        present = [f"'{key}'" for key in ("import",) if fields.has(key)] + [
            f"'model.{key}'" for key in ("graph_sha256", "ops", "tensors") if model.has(key)
        ]
        if present:
            raise InputFormatError(
                f"{source}: a version 1 plan file has no {', '.join(present)} (version 2 "
                'added them), so they would be ignored; set "version" to 2 if the file '
                "records them all, or remove them"
            )
    return PlanHeader(
        source=source,
        version=version,
        model_name=model.text("name", default=""),
        model_sha256=_sha256_field(model),
        model_file=model.optional_text("file"),
        graph_sha256=graph_sha,
        graph_size=graph_size,
        import_options=import_options,
        created_by=fields.text("created_by", default=""),
        data=data,
    )


def _sha256_field(model: JsonObject) -> str:
    """``model.sha256``: 64 hex digits, compared in lower case as hashlib writes them (an
    upper-case copy was "made for another model", and ``"abc"`` was compared as a hash)."""
    digest = model.text("sha256")
    if not SHA256_HEX.fullmatch(digest):
        raise model.error("sha256", "the model file's SHA-256, 64 hex digits")
    return digest.lower()


def wrong_model_error(header: PlanHeader, given: str, given_sha256: str) -> InvalidPlanError:
    """The error for a plan file used with a model file of another SHA-256."""
    return InvalidPlanError(
        f"{header.source} was made for model {header.made_for()!r} with sha256 "
        f"{header.model_sha256}, but the model given ({given}) has sha256 {given_sha256} "
        "(a converted or re-exported copy has another hash); plan this model with memplan "
        "optimize, or pass the model file the plan was made for"
    )


def plan_from_header(
    header: PlanHeader,
    graph: Graph,
    expected_sha256: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> PlanFile:
    """Check ``graph`` (and its model's SHA-256) against the header; rebuild the plan.

    ``aliases`` (the import's view tensor -> buffer tensor) turns a plan naming a view's
    output into an error that names the buffer to use (see :meth:`Plan.from_dict`).

    Raises:
        InvalidPlanError: the plan was made for another model or another import of it.
        InputFormatError: missing or mistyped fields, an op or tensor ``graph`` lacks.
    """
    _check_read_arguments(graph, expected_sha256, "plan_from_header")
    source, data = header.source, header.data
    if expected_sha256 is not None and header.model_sha256 != expected_sha256:
        raise wrong_model_error(header, repr(graph.name), expected_sha256)
    if header.graph_sha256 is not None and graph_sha256(graph) != header.graph_sha256:
        ops, tensors = header.graph_size or (0, 0)
        how = header.import_options.describe() if header.import_options else "graph JSON"
        given = (
            "has the same counts but other tensor sizes or shapes"
            if (ops, tensors) == (graph.num_ops, graph.num_tensors)
            else f"has {graph.num_ops} ops and {graph.num_tensors} tensors"
        )
        raise InvalidPlanError(
            f"{source} was made for model {header.made_for()!r} imported as {ops} ops and "
            f"{tensors} tensors (with {how}), but the graph given {given}; import the model "
            "with the plan's options, or re-plan it with memplan optimize"
        )
    if header.graph_size is not None:
        _check_graph_size(header, graph)
    fields = JsonObject(data, source)
    try:
        accelerator = Accelerator.from_dict(
            dict(fields.object("accelerator").data), f"{source}: accelerator"
        )
    except ConfigError as error:
        raise InputFormatError(
            str(error) if source in str(error) else f"{source}: {error}"
        ) from None
    scope = Scope(fields.text("scope", choices=[s.value for s in Scope]))
    solver = fields.object("solver")
    solver.refuse_unknown(SOLVER_FIELDS)
    options = solver.optional_object("options")
    status = Status(fields.text("status", choices=[s.value for s in Status]))
    recorded_cost = fields.optional_object("cost")
    budget = fields.optional_object("budget")
    if budget is not None:  # informative, but typed as written
        budget.refuse_unknown(BUDGET_FIELDS)
        budget.optional_text("spec")
        budget.optional_integer("capacity_bytes", minimum=0)
        budget.optional_text("note")
    stats = fields.optional_object("stats")
    # With a fingerprint, the graph is the one the plan was made for: a name it lacks
    # was edited in (it was asked whether the plan was made for another model).
    hint = (
        "the graph has the plan's recorded model.graph_sha256, so the file was edited or "
        "is corrupt; correct the name, or re-plan the model with memplan optimize"
        if header.graph_sha256 is not None
        else "was the plan made for another model?"
    )
    plan = Plan.from_dict(fields.object("plan").data, graph, source, "plan", aliases, hint)
    return PlanFile(
        model_name=header.model_name,
        model_sha256=header.model_sha256,
        model_file=header.model_file,
        accelerator=accelerator,
        scope=scope,
        solver=solver.text("name"),
        options=dict(options.data) if options is not None else {},
        status=status,
        cost=_read_cost(recorded_cost) if recorded_cost is not None else None,
        lower_bound_bytes=fields.optional_integer("lower_bound_bytes", minimum=0),
        gap=fields.optional_number("gap", minimum=0, maximum=1),
        wall_s=fields.number("wall_s", minimum=0, default=0.0),
        plan=plan,
        budget=dict(budget.data) if budget is not None else {},
        stats=dict(stats.data) if stats is not None else {},
        message=fields.text("message", default=""),
        created_by=header.created_by,
        import_options=header.import_options,
        version=header.version,
    )


def _check_graph_size(header: PlanHeader, graph: Graph) -> None:
    """Refuse ``model.ops`` or ``model.tensors`` that the graph with the recorded
    fingerprint does not have: the header contradicts itself (an edited file)."""
    assert header.graph_size is not None
    for key, recorded, actual in zip(
        ("ops", "tensors"), header.graph_size, (graph.num_ops, graph.num_tensors), strict=True
    ):
        if recorded != actual:
            raise InputFormatError(
                f"{header.source}: field 'model.{key}' is {recorded}, but the graph with the "
                f"recorded model.graph_sha256 has {actual} {key}: the file was edited or is "
                f"corrupt; set model.{key} to {actual}, or re-plan the model with memplan "
                "optimize"
            )


def check_import_kind(header: PlanHeader, import_options: ImportOptions | None, model: str) -> None:
    """Refuse a version 2 plan whose ``import`` says another kind of model than ``model``:
    ``null`` (a memplan graph JSON model) for an ONNX model, or ONNX import options for a
    graph JSON model.

    Args:
        header: the plan file's header.
        import_options: how ``model`` was loaded (None: a graph JSON model).
        model: the model as given, for the message.

    Raises:
        InputFormatError: the header contradicts the model the plan was made for.
    """
    if header.version < 2 or (header.import_options is None) == (import_options is None):
        return
    if header.import_options is None:
        raise InputFormatError(
            f"{header.source}: field 'import' is null, which marks a plan for a memplan graph "
            f"JSON model, but {model} is an ONNX model: the file was edited or is corrupt; "
            "set 'import' to the ONNX import options it was planned with (an object, see "
            "docs/files.md), or re-plan the model with memplan optimize -o"
        )
    raise InputFormatError(
        f"{header.source}: field 'import' holds ONNX import options, but {model} is a memplan "
        "graph JSON model, whose sizes are fixed: the file was edited or is corrupt; set "
        "'import' to null, or re-plan the model with memplan optimize -o"
    )


def _read_cost(cost: JsonObject) -> Cost:
    """A recorded :class:`Cost`, every field checked: byte counts are integers >= 0,
    latencies and energy finite numbers >= 0; ``timing_model`` and the per-model
    latencies may be missing (a cost written before they were recorded)."""
    cost.refuse_unknown(COST_FIELDS)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(Cost):
        key = item.name
        if key == "timing_model":
            if cost.has(key):
                values[key] = cost.text(key, choices=TIMING_MODELS)
        elif key.endswith("_bytes"):
            values[key] = cost.integer(key, minimum=0)
        elif item.default is dataclasses.MISSING:
            values[key] = cost.number(key, minimum=0)
        elif cost.has(key):
            values[key] = cost.optional_number(key, minimum=0)
    return Cost.from_dict(values)
