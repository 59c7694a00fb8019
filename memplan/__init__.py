"""memplan: scratchpad memory planning for neural-network accelerators.

The public API, loaded on first use (PEP 562) so that ``import memplan`` imports none
of memplan's modules, numpy or any optional library until a name is asked for::

    import memplan

    graph = memplan.load_model("model.onnx").graph
    problem = memplan.Problem(graph, memplan.load_accelerator("edge-npu"))
    problem = problem.with_capacity(memplan.resolve_budget("MH", problem).capacity_bytes)
    result = memplan.make_solver("greedy").solve(problem, memplan.Budget(time_limit_s=60))
    assert memplan.validate(problem, result.plan) == []

Everything in :data:`__all__` is stable; submodules hold the rest. ``memplan.validate``
is the validator *function*, although a submodule has the same name: reach the module
with ``from memplan.validate import ...`` (``import memplan.validate as m`` and dotted
paths such as ``"memplan.validate.check_plan"`` resolve to the function).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # IR
    "Graph": "memplan.ir",
    "GraphBuilder": "memplan.ir",
    "Op": "memplan.ir",
    "Tensor": "memplan.ir",
    "TensorKind": "memplan.ir",
    # problem, accelerator, budgets
    "Problem": "memplan.problem",
    "Scope": "memplan.problem",
    "Accelerator": "memplan.accelerator",
    "load_accelerator": "memplan.accelerator",
    "resolve_budget": "memplan.budgets",
    "PeakEstimate": "memplan.budgets",
    "exact_min_peak": "memplan.min_peak",
    # plans: validity and cost
    "Plan": "memplan.plan",
    "Residency": "memplan.plan",
    "Arrive": "memplan.plan",
    "Leave": "memplan.plan",
    "validate": "memplan.validate",
    "Violation": "memplan.validate",
    "evaluate": "memplan.cost",
    "Cost": "memplan.cost",
    "spill_everything_plan": "memplan.fallback",
    # timing (latency models)
    "simulate": "memplan.timing",
    "Timeline": "memplan.timing",
    # solvers
    "Budget": "memplan.solver",
    "Status": "memplan.solver",
    "SolveResult": "memplan.solver",
    "Solver": "memplan.solver",
    "make_solver": "memplan.solver",
    "available_solvers": "memplan.solver",
    "relative_gap": "memplan.solver",
    # allocation (dynamic storage allocation)
    "Buffer": "memplan.dsa",
    "AllocationResult": "memplan.dsa",
    "allocate": "memplan.dsa",
    # models and plan files
    "load_model": "memplan.io.loading",
    "write_plan_file": "memplan.io.planfile",
    "read_plan_file": "memplan.io.planfile",
    # errors
    "MemplanError": "memplan.errors",
    "GraphError": "memplan.errors",
    "OnnxImportError": "memplan.errors",
    "ConfigError": "memplan.errors",
    "InvalidPlanError": "memplan.errors",
    "InputFormatError": "memplan.errors",
    "SolverContractError": "memplan.errors",
}

#: The curated public API (every name resolves lazily through :data:`_EXPORTS`).
__all__ = [
    "Accelerator",
    "AllocationResult",
    "Arrive",
    "Budget",
    "Buffer",
    "ConfigError",
    "Cost",
    "Graph",
    "GraphBuilder",
    "GraphError",
    "InputFormatError",
    "InvalidPlanError",
    "Leave",
    "MemplanError",
    "OnnxImportError",
    "Op",
    "PeakEstimate",
    "Plan",
    "Problem",
    "Residency",
    "Scope",
    "SolveResult",
    "Solver",
    "SolverContractError",
    "Status",
    "Tensor",
    "TensorKind",
    "Timeline",
    "Violation",
    "__version__",
    "allocate",
    "available_solvers",
    "evaluate",
    "exact_min_peak",
    "load_accelerator",
    "load_model",
    "make_solver",
    "read_plan_file",
    "relative_gap",
    "resolve_budget",
    "simulate",
    "spill_everything_plan",
    "validate",
    "write_plan_file",
]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'memplan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


#: Names this file imports for itself: not part of the API, so not offered by dir() (a
#: notebook's tab completion listed ``memplan.sys`` and ``memplan.Any`` beside the API).
_OWN_IMPORTS = frozenset({"annotations", "importlib", "sys", "types", "TYPE_CHECKING", "Any"})


def __dir__() -> list[str]:
    return sorted((set(globals()) - _OWN_IMPORTS) | set(_EXPORTS))


class _Package(types.ModuleType):
    """The ``memplan`` module's class: ``memplan.validate`` stays the function.

    Importing the submodule ``memplan.validate`` makes Python set the package attribute
    ``validate`` to that module, which would hide the function depending on import
    order. This property wins over that attribute; the module stays reachable through
    ``sys.modules`` (every ``import memplan.validate`` form).
    """

    @property
    def validate(self) -> Any:
        """:func:`memplan.validate.validate`."""
        return importlib.import_module("memplan.validate").validate

    @validate.setter
    def validate(self, value: Any) -> None:
        """Ignore the import system recording the submodule here."""


sys.modules[__name__].__class__ = _Package

if TYPE_CHECKING:  # what type checkers and editors see
    from memplan.accelerator import Accelerator, load_accelerator
    from memplan.budgets import PeakEstimate, resolve_budget
    from memplan.cost import Cost, evaluate
    from memplan.dsa import AllocationResult, Buffer, allocate
    from memplan.errors import (
        ConfigError,
        GraphError,
        InputFormatError,
        InvalidPlanError,
        MemplanError,
        OnnxImportError,
        SolverContractError,
    )
    from memplan.fallback import spill_everything_plan
    from memplan.io.loading import load_model
    from memplan.io.planfile import read_plan_file, write_plan_file
    from memplan.ir import Graph, GraphBuilder, Op, Tensor, TensorKind
    from memplan.min_peak import exact_min_peak
    from memplan.plan import Arrive, Leave, Plan, Residency
    from memplan.problem import Problem, Scope
    from memplan.solver import (
        Budget,
        Solver,
        SolveResult,
        Status,
        available_solvers,
        make_solver,
        relative_gap,
    )
    from memplan.timing import Timeline, simulate
    from memplan.validate import Violation, validate
