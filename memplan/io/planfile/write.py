"""Writing plan files (:func:`write_plan_file`, atomically) and their MiniMalloc CSV
export (:func:`write_plan_csv`). What is refused before anything is written: a result of
another problem, a result without a plan, an argument of the wrong type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan import __version__
from memplan.errors import ConfigError, InvalidPlanError
from memplan.io.files import OutputTarget, atomic_write_text
from memplan.io.loading import ImportOptions
from memplan.io.planfile.layout import PLAN_FILE_VERSION, PLAN_FORMAT, SHA256_HEX
from memplan.ir import Graph, graph_sha256
from memplan.plan import Plan, check_plan_fields
from memplan.problem import Problem, require_problem
from memplan.solver import SolveResult

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.dsa import Buffer


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
    if not isinstance(model_sha256, str) or not SHA256_HEX.fullmatch(model_sha256):
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
