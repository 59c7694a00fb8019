"""The solver protocol, results and the registry (ARCHITECTURE.md "Core types").

A solver is a frozen dataclass of options with a ``name`` and
``solve(problem, budget) -> SolveResult``. Options are validated in ``__post_init__``;
randomness comes only from the ``seed`` option. Solvers are found lazily through the
``memplan.solvers`` entry points (or a ``module:Class`` path), so ``import memplan``
pulls in no MILP/CP library.

Every result that carries a plan is built by :func:`make_result`, which runs the
validator and the cost model: no solver can report a plan that is not legal.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import threading
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

from memplan.cost import Cost, evaluate
from memplan.errors import ConfigError
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.validate import check_plan

ENTRY_POINT_GROUP = "memplan.solvers"


class Status(enum.Enum):
    """How a solve ended."""

    OPTIMAL = "optimal"  # the plan is proven optimal for the solver's objective
    FEASIBLE = "feasible"  # a valid plan, not proven optimal
    INFEASIBLE = "infeasible"  # proven: no valid plan exists (e.g. capacity < M_R)
    TIMEOUT = "timeout"  # out of time (or interrupted); the best plan found, if any


@dataclass(frozen=True)
class Budget:
    """How long a solver may run, and a flag to stop it early (Ctrl-C)."""

    time_limit_s: float | None = None  # wall-clock seconds; None = no limit
    started_at_s: float = field(default_factory=time.monotonic)  # time.monotonic() at start
    stop_event: threading.Event = field(default_factory=threading.Event)  # set to stop early

    def elapsed_s(self) -> float:
        """Seconds since the budget started."""
        return time.monotonic() - self.started_at_s

    def remaining_s(self) -> float:
        """Seconds left (infinity without a limit; 0 once stopped)."""
        if self.stop_event.is_set():
            return 0.0
        if self.time_limit_s is None:
            return float("inf")
        return max(0.0, self.time_limit_s - self.elapsed_s())

    def should_stop(self) -> bool:
        """True once the time is up or a stop was requested."""
        return self.remaining_s() <= 0.0

    def interrupted(self) -> bool:
        """True when a stop was requested (rather than time running out)."""
        return self.stop_event.is_set()


@dataclass(frozen=True)
class SolveResult:
    """The outcome of one solve."""

    status: Status  # OPTIMAL, FEASIBLE, INFEASIBLE or TIMEOUT
    plan: Plan | None  # a validated plan, or None (INFEASIBLE, or TIMEOUT with nothing)
    cost: Cost | None  # the cost model's scores of `plan`
    lower_bound_bytes: int | None  # best known lower bound on non-compulsory bytes
    wall_s: float  # wall-clock seconds the solve took
    solver: str  # solver name
    options: Mapping[str, Any] = field(default_factory=dict)  # solver options used
    stats: Mapping[str, Any] = field(default_factory=dict)  # solver-specific counters
    message: str = ""  # human explanation (why infeasible, what timed out, ...)

    @property
    def gap(self) -> float | None:
        """Relative gap between the plan's non-compulsory bytes and the bound (0 = proven)."""
        if self.cost is None or self.lower_bound_bytes is None:
            return None
        value = self.cost.non_compulsory_bytes
        if value == 0:
            return 0.0
        return max(0.0, (value - self.lower_bound_bytes) / value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the plan itself)."""
        return {
            "status": self.status.value,
            "solver": self.solver,
            "options": dict(self.options),
            "cost": self.cost.to_dict() if self.cost else None,
            "lower_bound_bytes": self.lower_bound_bytes,
            "gap": self.gap,
            "wall_s": self.wall_s,
            "stats": dict(self.stats),
            "message": self.message,
        }

    def _repr_html_(self) -> str:
        from memplan.views import html_of

        return html_of(self, "result")


@runtime_checkable
class Solver(Protocol):
    """What every solver provides (a frozen dataclass of options)."""

    name: ClassVar[str]  # registry name, e.g. "greedy"
    seed: int  # the only source of randomness

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` within ``budget``; never raise for infeasible or timeouts."""
        ...


def solver_options(solver: Any) -> dict[str, Any]:
    """The option values of a solver instance, JSON-ready."""
    values = {}
    for f in dataclasses.fields(solver):
        value = getattr(solver, f.name)
        values[f.name] = value.value if isinstance(value, enum.Enum) else value
    return values


def make_result(
    solver: Any,
    problem: Problem,
    status: Status,
    plan: Plan | None,
    budget: Budget,
    *,
    lower_bound_bytes: int | None = None,
    stats: Mapping[str, Any] | None = None,
    message: str = "",
) -> SolveResult:
    """Validate ``plan`` (a solver bug raises :class:`InvalidPlanError`), score it, wrap it."""
    cost = None
    if plan is not None:
        check_plan(problem, plan, what=f"plan from solver {solver.name!r}")
        cost = evaluate(problem, plan)
        if lower_bound_bytes is not None:
            lower_bound_bytes = min(lower_bound_bytes, cost.non_compulsory_bytes)
        if status is Status.OPTIMAL:
            lower_bound_bytes = cost.non_compulsory_bytes
    return SolveResult(
        status=status,
        plan=plan,
        cost=cost,
        lower_bound_bytes=lower_bound_bytes,
        wall_s=budget.elapsed_s(),
        solver=solver.name,
        options=solver_options(solver),
        stats=dict(stats or {}),
        message=message,
    )


def infeasible_below_mr(solver: Any, problem: Problem, budget: Budget) -> SolveResult | None:
    """The INFEASIBLE result every solver gives when the capacity is below M_R, else None."""
    if problem.capacity_bytes >= problem.min_resident_bytes:
        return None
    return make_result(
        solver, problem, Status.INFEASIBLE, None, budget, message=problem.describe_capacity_error()
    )


# ------------------------------------------------------------------- option checks
def check_choice(solver_name: str, option: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(
            f"solver {solver_name!r}: option {option}={value!r} is not allowed; "
            f"use one of {', '.join(allowed)}"
        )


def check_range(
    solver_name: str, option: str, value: float, low: float, high: float | None = None
) -> None:
    """Raise :class:`ConfigError` unless ``low <= value (<= high)``."""
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"solver {solver_name!r}: option {option}={value!r} must be {bound}")


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """One documented solver option."""

    name: str  # option name as given on the command line (--option name=value)
    type_name: str  # int, float, bool or str
    default: Any  # default value
    help: str  # meaning, unit and allowed values


def describe_options(solver_cls: type) -> list[OptionInfo]:
    """Options of a solver class, from its dataclass fields' ``metadata['help']``."""
    hints = typing.get_type_hints(solver_cls)
    infos = []
    for f in dataclasses.fields(solver_cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        infos.append(
            OptionInfo(f.name, _type_name(hints.get(f.name)), default, f.metadata.get("help", ""))
        )
    return infos


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


# ------------------------------------------------------------------- registry
_registered: dict[str, type] = {}


def register_solver(name: str, solver_cls: type) -> None:
    """Register a solver class in this process (entry points are the normal way)."""
    _registered[name] = solver_cls


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_solvers() -> list[str]:
    """Names of every known solver (entry points and in-process registrations)."""
    return sorted(set(_entry_points()) | set(_registered))


def required_extra(name: str) -> str | None:
    """The optional-dependency extra a solver needs (from its entry point), if any."""
    ep = _entry_points().get(name)
    if ep is None or not ep.extras:
        return None
    return ep.extras[0]


def solver_class(name: str) -> type:
    """Load a solver class by registry name or ``package.module:Class`` path."""
    if name in _registered:
        return _registered[name]
    ep = _entry_points().get(name)
    try:
        if ep is not None:
            return ep.load()
        if ":" in name:
            module_name, _, attr = name.partition(":")
            return getattr(importlib.import_module(module_name), attr)
    except ImportError as error:
        extra = required_extra(name)
        hint = f"; install it with: pip install 'memplan[{extra}]'" if extra else ""
        raise ConfigError(f"solver {name!r} cannot be loaded ({error}){hint}") from None
    except AttributeError:
        raise ConfigError(f"solver path {name!r} names no class") from None
    raise ConfigError(
        f"unknown solver {name!r}; available: {', '.join(available_solvers()) or 'none'}"
    )


def make_solver(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate a solver with options; strings are converted to the option's type."""
    cls = solver_class(name)
    infos = {o.name: o for o in describe_options(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in (options or {}).items():
        if key not in infos:
            raise ConfigError(
                f"solver {name!r} has no option {key!r}; its options: {', '.join(infos) or 'none'}"
            )
        kwargs[key] = _convert(name, infos[key], raw)
    return cls(**kwargs)


def _convert(solver_name: str, info: OptionInfo, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if info.type_name == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if info.type_name == "int":
            return int(raw)
        if info.type_name == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"solver {solver_name!r}: option {info.name}={raw!r} is not a valid {info.type_name}"
        ) from None
    return raw


def parse_option_pairs(pairs: list[str] | None) -> dict[str, str]:
    """Parse ``["order=dfs", "seed=3"]`` from ``--option`` flags."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"option {pair!r} must look like NAME=VALUE (e.g. order=dfs)")
        result[key.strip()] = value.strip()
    return result
