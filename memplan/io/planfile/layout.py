"""The plan file's layout: its format name, versions and fields, and what a read gives
(:class:`PlanHeader`, before the model is loaded; :class:`PlanFile`, the plan rebuilt
against a graph). The layout itself is described in :mod:`memplan.io.planfile`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memplan.accelerator import Accelerator
from memplan.cost import Cost
from memplan.io.loading import ImportOptions
from memplan.ir import Graph
from memplan.plan import Plan
from memplan.problem import Problem, Scope
from memplan.solver import Status

if TYPE_CHECKING:
    pass


#: The ``format`` field of every plan file.
PLAN_FORMAT = "memplan.plan"
#: Version of the plan file layout written; bump when it changes.
PLAN_FILE_VERSION = 2
#: Versions this memplan reads (1: without import options and graph fingerprint).
READABLE_VERSIONS = (1, 2)

SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")  # a hex SHA-256 digest

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
