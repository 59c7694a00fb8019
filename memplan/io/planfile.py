"""Plan files: the versioned JSON form of one solve, and its MiniMalloc CSV export.

A plan file records everything needed to check and score a plan again later::

    {
      "format": "memplan.plan", "version": 2, "created_by": "memplan 0.1.0",
      "model": {"name": "squeezenet", "file": "squeezenet.onnx", "sha256": "9f2c...",
                "graph_sha256": "41ab...", "ops": 65, "tensors": 118},
      "import": {"input_shapes": {"data_0": [1, 3, 224, 224]}, "dims": {},
                 "input_values": {}, "dtype_bytes": null, "aliases": true},
      "accelerator": {"name": "edge-npu", "capacity_bytes": 524288, ...},
      "scope": "activations",
      "budget": {"spec": "MH", "capacity_bytes": 524288, "note": "MH = (MR + MP) / 2, ..."},
      "solver": {"name": "greedy", "options": {"seed": 0, ...}},
      "status": "feasible", "message": "",
      "cost": {"non_compulsory_bytes": 12288, ...},
      "lower_bound_bytes": null, "gap": null, "wall_s": 0.31, "stats": {...},
      "plan": {"order": ["conv1", ...], "residencies": [{"tensor": "x", "start": 0, ...}]}
    }

``import`` holds the ONNX import options the model was read with (``null`` for a
memplan graph JSON model), so ``memplan validate`` and ``score`` import the model the
same way; ``model.graph_sha256`` fingerprints the graph that import produced.

Reading happens in two steps, because the import options are needed before the
model can be loaded: :func:`read_plan_header` checks the format and version and
returns what the file says about its model; :func:`plan_from_header` then checks
that the model given has the recorded SHA-256 (a plan for another model is
rejected) and imports to the recorded graph, and rebuilds the plan against it.
:func:`read_plan_file` does both. Version 1 files (before the import options were
recorded) are still read; they carry no import options and no graph fingerprint.
Tensors and ops are referred to by name, so a plan survives re-import of the same
model. Every field is read with its type (:class:`memplan.jsonfields.JsonObject`): a
missing or mistyped one is an :class:`InputFormatError` of one line that names the
file, the field and, in the plan, the residency's index. Every field the writer writes
is required, except the informative ones (``created_by``, ``model.name``, ``budget``,
``message``, ``cost``, ``lower_bound_bytes``, ``gap``, ``wall_s``, ``stats``,
``solver.options``), which are typed when present; both versions write every residency
field. A field the writer does not write is refused, in every object but the free-form
``stats`` and ``solver.options``: a misspelt one would be ignored without a word. The
header must agree with itself and with the model: ``model.ops`` and ``model.tensors``
are those of the graph that has ``model.graph_sha256``, and ``gap`` is a fraction from 0
to 1. The plan's legality (offsets, alignment, coverage...) is *not* checked here:
that is the validator's job (``memplan validate`` lists every violation). Recorded
results that cannot all be true (a lower bound above the plan's own cost) are listed
by :meth:`PlanFile.inconsistencies` for the commands to warn about.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan import __version__
from memplan.accelerator import Accelerator
from memplan.cost import Cost
from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.io.files import OutputTarget, atomic_write_text
from memplan.io.loading import ImportOptions
from memplan.ir import Graph, graph_sha256
from memplan.jsonfields import JsonObject
from memplan.plan import Plan, check_plan_fields
from memplan.problem import Problem, Scope, require_problem
from memplan.solver import SolveResult, Status
from memplan.timing import TIMING_MODELS

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.dsa import Buffer

#: The ``format`` field of every plan file.
PLAN_FORMAT = "memplan.plan"
#: Version of the plan file layout written; bump when it changes.
PLAN_FILE_VERSION = 2
#: Versions this memplan reads (1: without import options and graph fingerprint).
READABLE_VERSIONS = (1, 2)

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")  # a hex SHA-256 digest

#: The fields of a plan file, of its objects (what the writer writes); any other is refused.
TOP_FIELDS = (
    "format", "version", "created_by", "model", "import", "accelerator", "scope", "budget",
    "solver", "status", "message", "cost", "lower_bound_bytes", "gap", "wall_s", "stats", "plan",
)  # fmt: skip
MODEL_FIELDS = ("name", "file", "sha256", "graph_sha256", "ops", "tensors")
BUDGET_FIELDS = ("spec", "capacity_bytes", "note")
SOLVER_FIELDS = ("name", "options")  # options: the solver's own, free-form like stats
COST_FIELDS = tuple(item.name for item in dataclasses.fields(Cost))


@dataclass(frozen=True, slots=True)
class PlanHeader:
    """What a plan file says about the model it was made for, read before the model."""

    source: str  # the file name (or "<plan>"), for messages
    version: int  # the file's format version (one of READABLE_VERSIONS)
    model_name: str  # name of the graph the plan was made for
    model_sha256: str  # hex SHA-256 of that model's file
    model_file: str | None  # file name of the model when it was planned (informative)
    graph_sha256: str | None  # fingerprint of the imported graph; None in version 1
    graph_size: tuple[int, int] | None  # (ops, tensors) of that graph; None in version 1
    import_options: ImportOptions | None  # ONNX import options; None: v1 or graph JSON
    created_by: str  # memplan version that wrote the file
    data: Mapping[str, Any]  # the whole parsed document

    def made_for(self) -> str:
        """The model the plan was made for, for messages: ``'name (file)'``."""
        return self.model_name + (f" ({self.model_file})" if self.model_file else "")


@dataclass(frozen=True, slots=True)
class PlanFile:
    """The content of a plan file, with the plan rebuilt against a graph."""

    model_name: str  # name of the graph the plan was made for
    model_sha256: str  # hex SHA-256 of that model's file
    model_file: str | None  # file name of the model when it was planned (informative)
    accelerator: Accelerator  # the accelerator, capacity = the budget planned for
    scope: Scope  # which tensors compete for the scratchpad
    solver: str  # solver name
    options: Mapping[str, Any]  # solver options used
    status: Status  # how the solve ended
    cost: Cost | None  # the scores recorded when the plan was written
    lower_bound_bytes: int | None  # lower bound on non-compulsory bytes over all plans
    gap: float | None  # relative gap of the cost to that bound; None without a bound
    wall_s: float  # wall-clock seconds of the solve
    plan: Plan  # the plan, with ids of the graph it was read against
    budget: Mapping[str, Any] = field(default_factory=dict)  # spec, capacity_bytes, note
    stats: Mapping[str, Any] = field(default_factory=dict)  # solver-specific counters
    message: str = ""  # the solver's explanation, if any
    created_by: str = ""  # memplan version that wrote the file
    import_options: ImportOptions | None = None  # ONNX import options; None: v1 or JSON
    version: int = PLAN_FILE_VERSION  # format version of the file read

    def problem(self, graph: Graph) -> Problem:
        """The problem the plan was made for, on ``graph``."""
        return Problem(graph, self.accelerator, self.scope)

    def inconsistencies(self) -> list[str]:
        """What the file records that cannot all be true: a lower bound above the plan's
        own recorded cost, status ``optimal`` without a bound equal to it, or a
        ``budget.capacity_bytes`` other than the accelerator's (the capacity planned for).

        A writer never records these (:func:`memplan.solver.make_result` refuses them),
        so the file was edited or is corrupt. They concern what the file says about the
        solve, not the plan's validity, so readers report them as warnings.
        """
        lines = []
        budget = self.budget.get("capacity_bytes")
        if budget is not None and budget != self.accelerator.capacity_bytes:
            lines.append(
                f"recorded budget.capacity_bytes {budget} differs from "
                f"accelerator.capacity_bytes {self.accelerator.capacity_bytes}, the capacity "
                "the plan was made for and is checked against: the file was edited or is "
                "corrupt, so its budget is not to be trusted"
            )
        bound, cost = self.lower_bound_bytes, self.cost
        if cost is None:
            return lines
        value = cost.non_compulsory_bytes
        if bound is not None and bound > value:
            lines.append(
                f"recorded lower_bound_bytes {bound} is above the plan's own recorded cost "
                f"(cost.non_compulsory_bytes {value}), which a bound on every valid plan "
                "cannot be: the file was edited or is corrupt, so its bound and gap are "
                "not to be trusted"
            )
        elif self.status is Status.OPTIMAL and bound != value:
            lines.append(
                f"recorded status 'optimal' needs lower_bound_bytes equal to the plan's "
                f"cost.non_compulsory_bytes {value}, but it is {bound}: the file was edited "
                "or is corrupt, so its status and bound are not to be trusted"
            )
        return lines


def plan_file_dict(
    result: SolveResult,
    problem: Problem,
    *,
    model_sha256: str,
    model_file: str | os.PathLike[str] | None = None,
    budget: ResolvedBudget | None = None,
    import_options: ImportOptions | None = None,
) -> dict[str, Any]:
    """The JSON-ready plan file content for ``result`` (which must carry a plan).

    Raises:
        ConfigError: an argument of the wrong type, or ``model_sha256`` that is not 64
            hex digits.
        InvalidPlanError: ``result`` has no plan, or a plan that does not fit
            ``problem`` (made for another one).
    """
    _check_write_arguments(result, problem, model_sha256, model_file, budget, import_options)
    if result.plan is None:
        raise InvalidPlanError(
            f"solver {result.solver!r} returned no plan (status {result.status.value}); "
            "there is nothing to write"
        )
    _check_plan_fits(result.plan, problem)
    graph = problem.graph
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_FILE_VERSION,
        "created_by": f"memplan {__version__}",
        "model": {
            "name": graph.name,
            "file": Path(model_file).name if model_file is not None else None,
            "sha256": model_sha256.lower(),
            "graph_sha256": graph_sha256(graph),
            "ops": graph.num_ops,
            "tensors": graph.num_tensors,
        },
        "import": import_options.to_dict() if import_options is not None else None,
        "accelerator": problem.accelerator.to_dict(),
        "scope": problem.scope.value,
        "budget": (
            {"spec": budget.spec, "capacity_bytes": budget.capacity_bytes, "note": budget.note}
            if budget is not None
            else {}
        ),
        "solver": {"name": result.solver, "options": jsonable(dict(result.options))},
        "status": result.status.value,
        "message": result.message,
        "cost": result.cost.to_dict() if result.cost is not None else None,
        "lower_bound_bytes": result.lower_bound_bytes,
        "gap": result.gap,
        "wall_s": result.wall_s,
        "stats": jsonable(dict(result.stats)),
        "plan": result.plan.to_dict(graph),
    }


def _check_write_arguments(
    result: object,
    problem: object,
    model_sha256: object,
    model_file: object,
    budget: object,
    import_options: object,
) -> None:
    """Refuse, before anything is written, what would make a wrong or unreadable file."""
    from memplan.budgets import ResolvedBudget

    where = "write_plan_file"
    if not isinstance(result, SolveResult):
        raise ConfigError(
            f"{where}: result must be a SolveResult (what solver.solve(problem, budget) "
            f"returns), got {type(result).__name__}"
        )
    require_problem(problem, where)
    if not isinstance(model_sha256, str) or not _SHA256.fullmatch(model_sha256):
        raise ConfigError(
            f"{where}: model_sha256 must be the model file's SHA-256, 64 hex digits "
            f"(load_model(...).sha256, or memplan.io.files.sha256_of_file(path)), got "
            f"{model_sha256!r:.80}"
        )
    if model_file is not None and not isinstance(model_file, str | os.PathLike):
        raise ConfigError(
            f"{where}: model_file must be the model's path (a str or Path) or None, "
            f"got {type(model_file).__name__}"
        )
    if budget is not None and not isinstance(budget, ResolvedBudget):
        raise ConfigError(
            f"{where}: budget must be a ResolvedBudget (resolve_budget('MH', problem)) or "
            f"None, got {type(budget).__name__}"
        )
    if import_options is not None and not isinstance(import_options, ImportOptions):
        raise ConfigError(
            f"{where}: import_options must be an ImportOptions "
            f"(load_model(...).import_options) or None, got {type(import_options).__name__}"
        )


def _check_plan_fits(plan: Plan, problem: Problem) -> None:
    """Refuse a plan that is not shaped like a plan of ``problem``: its order must list
    each op of the graph once and its residencies name the graph's tensors. (Whether it
    is valid is the validator's job; the reader checks only this much too.)"""
    where = "write_plan_file"
    if not isinstance(plan, Plan):
        raise InvalidPlanError(f"{where}: result.plan is a {type(plan).__name__}, not a Plan")
    check_plan_fields(plan, where)
    graph = problem.graph
    n, tensors = graph.num_ops, graph.num_tensors
    hint = "was the result solved for another problem? Pass the problem given to solver.solve"
    if sorted(plan.order) != list(range(n)):
        raise InvalidPlanError(
            f"{where}: the result's plan does not fit the problem: its order has "
            f"{len(plan.order)} entries, not a permutation of the {n} ops of graph "
            f"{graph.name!r}; {hint}"
        )
    for k, r in enumerate(plan.residencies):
        if not 0 <= r.tensor < tensors:
            raise InvalidPlanError(
                f"{where}: the result's plan does not fit the problem: residencies[{k}] "
                f"names tensor {r.tensor}, but graph {graph.name!r} has {tensors} tensors; "
                f"{hint}"
            )


def plan_json(data: Mapping[str, Any]) -> str:
    """A plan file dictionary (:func:`plan_file_dict`) as the text written to disk."""
    return json.dumps(data, indent=1) + "\n"


def write_plan_file(
    path: str | os.PathLike[str] | OutputTarget,
    result: SolveResult,
    problem: Problem,
    *,
    model_sha256: str,
    model_file: str | os.PathLike[str] | None = None,
    budget: ResolvedBudget | None = None,
    import_options: ImportOptions | None = None,
) -> None:
    """Write ``result``'s plan file to ``path`` atomically (never a half-written file).

    Args:
        path: where to write (see :mod:`memplan.io.files` for the rules; the folder
            must exist).
        result: a solve result that carries a plan.
        problem: the problem it solves (graph, accelerator with the planned capacity, scope).
        model_sha256: SHA-256 of the model file (:attr:`memplan.io.loading.LoadedModel.sha256`).
        model_file: the model's path, recorded by file name only.
        budget: how the capacity was chosen, recorded for the reader.
        import_options: how the ONNX model was imported
            (:attr:`memplan.io.loading.LoadedModel.import_options`); None for graph JSON.

    Raises:
        ConfigError: an argument of the wrong type (``result`` None, say), or a
            ``model_sha256`` that is not 64 hex digits (the reader would refuse the file).
        InvalidPlanError: ``result`` has no plan, or one that does not fit ``problem``
            (its order is not a permutation of the problem's ops, or a residency names a
            tensor the graph lacks: a result of another problem).
        OutputFileError: ``path`` may not be written.
    """
    data = plan_file_dict(
        result,
        problem,
        model_sha256=model_sha256,
        model_file=model_file,
        budget=budget,
        import_options=import_options,
    )
    atomic_write_text(path, plan_json(data), what="plan file")


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
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
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
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputFormatError(
            f"{source}: line {error.lineno}, column {error.colno}: invalid JSON ({error.msg})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise InputFormatError(
            f'{source}: not a memplan plan file (expected "format": "{PLAN_FORMAT}"); '
            "write one with: memplan optimize MODEL -o plan.json"
        )
    version = data.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
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
    return PlanHeader(
        source=source,
        version=version,
        model_name=model.text("name", default=""),
        model_sha256=model.text("sha256"),
        model_file=model.optional_text("file"),
        graph_sha256=graph_sha,
        graph_size=graph_size,
        import_options=import_options,
        created_by=fields.text("created_by", default=""),
        data=data,
    )


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
    plan = Plan.from_dict(fields.object("plan").data, graph, source, "plan", aliases)
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


def jsonable(value: Any) -> Any:
    """Make a value JSON-safe: enums, tuples, numpy scalars, paths (as text).

    Also the ``default=`` hook of ``json.dumps`` for the bench's result rows.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, (str, int, float)):
        return enum_value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return jsonable(item())
    return str(value)


# ------------------------------------------------------------------- CSV export
def plan_buffers(graph: Graph, plan: Plan) -> tuple[list[Buffer], list[int]]:
    """The residencies as MiniMalloc buffers, and their offsets.

    A buffer's id is the tensor's name and ``#k`` for its k-th stay (from 0, by start
    step); ``[lower, upper)`` is the residency's step interval and ``size`` the tensor's
    size in bytes.
    """
    from memplan.dsa import Buffer

    buffers, offsets = [], []
    stay: dict[int, int] = {}
    for r in sorted(plan.residencies, key=lambda r: (r.tensor, r.start)):
        k = stay.get(r.tensor, 0)
        stay[r.tensor] = k + 1
        tensor = graph.tensors[r.tensor]
        buffers.append(Buffer(f"{tensor.name}#{k}", r.start, r.end, tensor.size_bytes))
        offsets.append(r.offset)
    return buffers, offsets


def plan_csv(graph: Graph, plan: Plan) -> str:
    """MiniMalloc CSV text (``id,lower,upper,size,offset``) of the plan's residencies."""
    from memplan.io.buffers_csv import format_buffers_csv

    buffers, offsets = plan_buffers(graph, plan)
    return format_buffers_csv(buffers, offsets)


def write_plan_csv(path: str | os.PathLike[str] | OutputTarget, graph: Graph, plan: Plan) -> None:
    """Write :func:`plan_csv` to ``path`` atomically (see :mod:`memplan.io.files`)."""
    atomic_write_text(path, plan_csv(graph, plan), what="CSV file")
