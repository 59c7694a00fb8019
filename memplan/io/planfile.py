"""Plan files: the versioned JSON form of one solve, and its MiniMalloc CSV export.

A plan file records everything needed to check and score a plan again later::

    {
      "format": "memplan.plan", "version": 1, "created_by": "memplan 0.1.0",
      "model": {"name": "squeezenet", "file": "squeezenet.onnx", "sha256": "9f2c..."},
      "accelerator": {"name": "edge-npu", "capacity_bytes": 524288, ...},
      "scope": "activations",
      "budget": {"spec": "MH", "capacity_bytes": 524288, "note": "MH = (MR + MP) / 2, ..."},
      "solver": {"name": "greedy", "options": {"seed": 0, ...}},
      "status": "feasible", "message": "",
      "cost": {"non_compulsory_bytes": 12288, ...},
      "lower_bound_bytes": 0, "gap": 1.0, "wall_s": 0.31, "stats": {...},
      "plan": {"order": ["conv1", ...], "residencies": [{"tensor": "x", "start": 0, ...}]}
    }

Reading a plan file checks the format and version, and that the model it was made for
has the same SHA-256 as the model it is used with (a plan for another model is
rejected). Tensors and ops are referred to by name, so a plan survives re-import of the
same model. The plan's legality (offsets, alignment, coverage...) is *not* checked
here: that is the validator's job (``memplan validate`` lists every violation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan import __version__
from memplan.accelerator import Accelerator
from memplan.cost import Cost
from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.io.files import atomic_write_text
from memplan.ir import Graph
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.solver import SolveResult, Status

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.dsa import Buffer

#: The ``format`` field of every plan file.
PLAN_FORMAT = "memplan.plan"
#: Version of the plan file layout; bump when it changes.
PLAN_FILE_VERSION = 1


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
    lower_bound_bytes: int | None  # best known lower bound on non-compulsory bytes
    gap: float | None  # relative gap of the cost to that bound
    wall_s: float  # wall-clock seconds of the solve
    plan: Plan  # the plan, with ids of the graph it was read against
    budget: Mapping[str, Any] = field(default_factory=dict)  # spec, capacity_bytes, note
    stats: Mapping[str, Any] = field(default_factory=dict)  # solver-specific counters
    message: str = ""  # the solver's explanation, if any
    created_by: str = ""  # memplan version that wrote the file

    def problem(self, graph: Graph) -> Problem:
        """The problem the plan was made for, on ``graph``."""
        return Problem(graph, self.accelerator, self.scope)


def plan_file_dict(
    result: SolveResult,
    problem: Problem,
    *,
    model_sha256: str,
    model_file: str | os.PathLike[str] | None = None,
    budget: ResolvedBudget | None = None,
) -> dict[str, Any]:
    """The JSON-ready plan file content for ``result`` (which must carry a plan)."""
    if result.plan is None:
        raise InvalidPlanError(
            f"solver {result.solver!r} returned no plan (status {result.status.value}); "
            "there is nothing to write"
        )
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_FILE_VERSION,
        "created_by": f"memplan {__version__}",
        "model": {
            "name": problem.graph.name,
            "file": Path(model_file).name if model_file is not None else None,
            "sha256": model_sha256,
        },
        "accelerator": problem.accelerator.to_dict(),
        "scope": problem.scope.value,
        "budget": (
            {"spec": budget.spec, "capacity_bytes": budget.capacity_bytes, "note": budget.note}
            if budget is not None
            else {}
        ),
        "solver": {"name": result.solver, "options": _jsonable(dict(result.options))},
        "status": result.status.value,
        "message": result.message,
        "cost": result.cost.to_dict() if result.cost is not None else None,
        "lower_bound_bytes": result.lower_bound_bytes,
        "gap": result.gap,
        "wall_s": result.wall_s,
        "stats": _jsonable(dict(result.stats)),
        "plan": result.plan.to_dict(problem.graph),
    }


def write_plan_file(
    path: str | os.PathLike[str],
    result: SolveResult,
    problem: Problem,
    *,
    model_sha256: str,
    model_file: str | os.PathLike[str] | None = None,
    budget: ResolvedBudget | None = None,
) -> None:
    """Write ``result``'s plan file to ``path`` atomically (never a half-written file).

    Args:
        path: where to write (parent folders are created).
        result: a solve result that carries a plan.
        problem: the problem it solves (graph, accelerator with the planned capacity, scope).
        model_sha256: SHA-256 of the model file (:attr:`memplan.io.loading.LoadedModel.sha256`).
        model_file: the model's path, recorded by file name only.
        budget: how the capacity was chosen, recorded for the reader.

    Raises:
        InvalidPlanError: ``result`` has no plan.
    """
    data = plan_file_dict(
        result, problem, model_sha256=model_sha256, model_file=model_file, budget=budget
    )
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


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
        InvalidPlanError: the plan was made for another model.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFormatError(f"{source}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputFormatError(f"{source}: cannot read the plan file ({error})") from None
    return parse_plan_file(text, graph, expected_sha256, source)


def parse_plan_file(
    text: str, graph: Graph, expected_sha256: str | None = None, source: str = "<plan>"
) -> PlanFile:
    """Parse plan file text; see :func:`read_plan_file`."""
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
    if version != PLAN_FILE_VERSION:
        raise InputFormatError(
            f"{source}: plan file version {version!r} is not supported (this memplan "
            f"{__version__} reads version {PLAN_FILE_VERSION}); re-run memplan optimize"
        )
    model = _section(data, "model", source)
    model_name = str(model.get("name", ""))
    model_sha = model.get("sha256")
    if not isinstance(model_sha, str):
        raise InputFormatError(f"{source}: field model.sha256 must be a hex string")
    if expected_sha256 is not None and model_sha != expected_sha256:
        made_for = model_name + (f" ({model['file']})" if model.get("file") else "")
        raise InvalidPlanError(
            f"{source} was made for model {made_for!r} with sha256 {model_sha}, but the "
            f"model given ({graph.name!r}) has sha256 {expected_sha256} (a converted or "
            "re-exported copy has another hash); plan this model with memplan optimize, or "
            "pass the model file the plan was made for"
        )
    try:
        accelerator = Accelerator.from_dict(
            dict(_section(data, "accelerator", source)), f"{source}: accelerator"
        )
        scope = Scope.parse(str(data.get("scope", Scope.ACTIVATIONS.value)))
    except ConfigError as error:
        raise InputFormatError(
            str(error) if source in str(error) else f"{source}: {error}"
        ) from None
    solver = _section(data, "solver", source)
    try:
        status = Status(data.get("status"))
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise InputFormatError(
            f"{source}: status {data.get('status')!r} is not one of {allowed}"
        ) from None
    cost = None
    if data.get("cost") is not None:
        try:
            cost = Cost.from_dict(dict(data["cost"]))
        except (TypeError, ValueError) as error:
            raise InputFormatError(f"{source}: malformed cost ({error})") from None
    plan = Plan.from_dict(data.get("plan"), graph, source)
    return PlanFile(
        model_name=model_name,
        model_sha256=model_sha,
        model_file=model.get("file"),
        accelerator=accelerator,
        scope=scope,
        solver=str(solver.get("name", "")),
        options=dict(solver.get("options", {})),
        status=status,
        cost=cost,
        lower_bound_bytes=_opt_int(data, "lower_bound_bytes", source),
        gap=_opt_float(data, "gap", source),
        wall_s=_opt_float(data, "wall_s", source) or 0.0,
        plan=plan,
        budget=dict(data.get("budget") or {}),
        stats=dict(data.get("stats") or {}),
        message=str(data.get("message", "")),
        created_by=str(data.get("created_by", "")),
    )


def _section(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise InputFormatError(f"{source}: field {key!r} is missing or not an object")
    return value


def _opt_int(data: Mapping[str, Any], key: str, source: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputFormatError(f"{source}: field {key!r} must be an integer, got {value!r}")
    return value


def _opt_float(data: Mapping[str, Any], key: str, source: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputFormatError(f"{source}: field {key!r} must be a number, got {value!r}")
    return float(value)


def _jsonable(value: Any) -> Any:
    """Make solver options and stats JSON-safe (enums, tuples, numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    enum_value = getattr(value, "value", None)
    if isinstance(enum_value, (str, int, float)):
        return enum_value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _jsonable(item())
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


def write_plan_csv(path: str | os.PathLike[str], graph: Graph, plan: Plan) -> None:
    """Write :func:`plan_csv` to ``path`` atomically."""
    atomic_write_text(path, plan_csv(graph, plan))
