"""The solver protocol, results and the registry (ARCHITECTURE.md "Core types").

A solver is a frozen dataclass of options with a ``name`` and
``solve(problem, budget) -> SolveResult``. Options are validated in ``__post_init__``
(:mod:`memplan.options`); randomness comes only from the ``seed`` option. Solvers are
found lazily through :mod:`memplan.registry`, so ``import memplan`` pulls in no MILP/CP
library; the functions at the end of this module are the solver side of it.

Every result that carries a plan is built by :func:`make_result`, which runs the
validator and the cost model: no solver can report a plan that is not legal.

Bounds and statuses mean one thing for every solver (the rule :func:`make_result`
enforces; breaking it raises :class:`~memplan.errors.SolverContractError`, a solver bug):

- ``lower_bound_bytes`` bounds the non-compulsory bytes of **every** valid plan of the
  problem, or is None. It is never above the returned plan's value.
- OPTIMAL means proven over all plans: the solver passes ``lower_bound_bytes`` equal to
  the plan's non-compulsory bytes. Nothing is inferred from the status; an OPTIMAL
  result without that bound is rejected.
- An optimum relative to a restriction (a fixed order, a peak objective, a limit on
  loads, one part of a divide-and-conquer split) is FEASIBLE (TIMEOUT if time ran out)
  with ``stats["optimal_for_order"] = True`` (or another ``optimal_for_*`` key) and a
  message such as "optimal for the model order", never a bound.

Time: a solve given ``Budget(time_limit_s=T)`` returns within ``T +``
:data:`RETURN_GRACE_S` seconds of the budget's start, with its best valid plan so far.
Ctrl-C likewise: memplan's solvers are decorated with :func:`stops_on_ctrl_c`, so in a
script or a notebook the first Ctrl-C stops the solve (TIMEOUT, "interrupted", the best
plan so far) and only a second one raises KeyboardInterrupt, as on the command line.
"""

from __future__ import annotations

import enum
import functools
import math
import numbers
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from memplan.cost import Cost, evaluate
from memplan.errors import ConfigError, PluginResultError, SolverContractError
from memplan.options import option_values
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.registry import PluginKind, make_plugin, plugin_class
from memplan.registry import available as _available
from memplan.registry import required_extra as _required_extra
from memplan.units import brief_repr
from memplan.validate import check_plan

#: Entry-point group under which solvers register (see :mod:`memplan.registry`).
ENTRY_POINT_GROUP = PluginKind.SOLVER.value

#: Seconds a solve may run past its ``time_limit_s`` before it returns: the time to
#: notice the limit (a backend checks its clock every so often), stop its threads, and
#: validate and score the best plan in :func:`make_result`. The conformance suite
#: (:func:`memplan.testing.check_solver`) holds every solver to it.
RETURN_GRACE_S = 2.0


class Status(enum.Enum):
    """How a solve ended."""

    OPTIMAL = "optimal"  # proven optimal over all valid plans (bound == value)
    FEASIBLE = "feasible"  # a valid plan, not proven optimal over all plans
    INFEASIBLE = "infeasible"  # proven: no valid plan exists (e.g. capacity < M_R)
    TIMEOUT = "timeout"  # out of time (or interrupted); the best plan found, if any


# ------------------------------------------------------------------- progress seam
@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a running solve, for live displays (see :meth:`Budget.report_progress`).

    Bytes are non-compulsory bytes, the objective. ``bound_bytes`` follows the same rule
    as :attr:`SolveResult.lower_bound_bytes`: a bound over all valid plans, or None.
    """

    elapsed_s: float  # seconds since the budget started
    incumbent_bytes: int | None  # non-compulsory bytes of the best valid plan so far; None yet
    bound_bytes: int | None  # lower bound on non-compulsory bytes over all plans; None if none
    message: str = ""  # what the solver is doing now, a few words ("order search", ...)


#: A callable that receives progress snapshots; called from any thread, must return fast.
ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Budget:
    """How long a solver may run, a flag to stop it early (Ctrl-C), and where to report.

    ``on_progress`` is optional: a solver that finds plans or bounds over time calls
    :meth:`report_progress` whenever its incumbent or bound improves (or its phase
    changes); the command line shows it as a live line. Solvers never require it.
    """

    time_limit_s: float | None = None  # wall-clock seconds; None = no limit
    started_at_s: float = field(default_factory=time.monotonic)  # time.monotonic() at start
    stop_event: threading.Event = field(default_factory=threading.Event)  # set to stop early
    on_progress: ProgressCallback | None = None  # receives Progress snapshots; None = nobody

    def __post_init__(self) -> None:
        """Refuse values a solve would trip over later (a TypeError, a never-ending loop).

        ``time_limit_s`` is None or a real number (not a bool, not NaN: a NaN limit
        compares false with every clock reading). Zero or a negative limit is allowed: the
        solver returns at once with TIMEOUT and its first plan; ``inf`` means no limit.

        Raises:
            ConfigError: naming the field and what it accepts.
        """
        limit = self.time_limit_s
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, numbers.Real):
                raise ConfigError(
                    "Budget: time_limit_s must be a number of seconds or None (no limit), "
                    f"got {brief_repr(limit)}"
                )
            try:
                seconds = float(limit)  # a numpy scalar or Fraction becomes a float
            except OverflowError:
                seconds = math.inf  # an int beyond any float: no limit in practice
            if math.isnan(seconds):
                raise ConfigError(
                    "Budget: time_limit_s must be a number of seconds or None (no limit), got nan"
                )
            object.__setattr__(self, "time_limit_s", seconds)
        start = self.started_at_s
        if isinstance(start, bool) or not isinstance(start, numbers.Real) or not _finite(start):
            raise ConfigError(
                "Budget: started_at_s must be a finite time.monotonic() reading, "
                f"got {brief_repr(start)}"
            )
        if not callable(getattr(self.stop_event, "is_set", None)):
            raise ConfigError(
                "Budget: stop_event must be a threading.Event (or have is_set()), "
                f"got {type(self.stop_event).__name__}"
            )
        if self.on_progress is not None and not callable(self.on_progress):
            raise ConfigError(
                "Budget: on_progress must be a callable taking a Progress, or None, "
                f"got {type(self.on_progress).__name__}"
            )

    def report_progress(
        self,
        incumbent_bytes: int | None = None,
        bound_bytes: int | None = None,
        message: str = "",
    ) -> None:
        """Tell ``on_progress`` (if any) the current incumbent, bound and phase.

        Args:
            incumbent_bytes: non-compulsory bytes of the best valid plan found so far.
            bound_bytes: a lower bound over all valid plans (never an order-relative one).
            message: the phase, in a few words.
        """
        if self.on_progress is not None:
            self.on_progress(Progress(self.elapsed_s(), incumbent_bytes, bound_bytes, message))

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


def _finite(value: numbers.Real) -> bool:
    """``math.isfinite`` that answers False, not OverflowError, for a huge int."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def relative_gap(value_bytes: int, bound_bytes: int | None) -> float | None:
    """The one gap formula: ``(value - bound) / value``; 0.0 when they are equal.

    None without a bound: a missing bound is never shown as a gap of 0.

    Raises:
        ConfigError: a value or bound that is not a number of bytes (or is negative).
    """
    for name, value in (("value_bytes", value_bytes), ("bound_bytes", bound_bytes)):
        if value is None and name == "bound_bytes":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"relative_gap: {name} must be a number of bytes, got {value!r}")
    if value_bytes < 0 or (bound_bytes is not None and bound_bytes < 0):
        raise ConfigError(
            f"relative_gap: bytes are never negative, got value_bytes {value_bytes!r} and "
            f"bound_bytes {bound_bytes!r}"
        )
    if bound_bytes is None:
        return None
    if value_bytes <= bound_bytes:
        return 0.0
    return (value_bytes - bound_bytes) / value_bytes


@dataclass(frozen=True)
class SolveResult:
    """The outcome of one solve."""

    status: Status  # OPTIMAL, FEASIBLE, INFEASIBLE or TIMEOUT
    plan: Plan | None  # a validated plan, or None (INFEASIBLE, or TIMEOUT with nothing)
    cost: Cost | None  # the cost model's scores of `plan`
    lower_bound_bytes: int | None  # bound on non-compulsory bytes of every valid plan, or None
    wall_s: float  # wall-clock seconds the solve took
    solver: str  # solver name
    options: Mapping[str, Any] = field(default_factory=dict)  # solver options used
    stats: Mapping[str, Any] = field(default_factory=dict)  # solver-specific counters
    message: str = ""  # human explanation (why infeasible, what timed out, ...)

    @property
    def gap(self) -> float | None:
        """Relative gap of the plan's non-compulsory bytes to the bound (see relative_gap)."""
        if self.cost is None:
            return None
        return relative_gap(self.cost.non_compulsory_bytes, self.lower_bound_bytes)

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

    def __repr__(self) -> str:
        # Short, not the dataclass repr that prints the whole plan and stats.
        cost = self.cost
        traffic = "" if cost is None else f", non-compulsory {cost.non_compulsory_bytes} B"
        bound = "" if self.lower_bound_bytes is None else f", bound {self.lower_bound_bytes} B"
        plan = "" if self.plan is None else f", {self.plan}"
        return (
            f"SolveResult({self.solver}: {self.status.value}{traffic}{bound}{plan}, "
            f"{self.wall_s:.3g} s)"
        )


@runtime_checkable
class Solver(Protocol):
    """What every solver provides (a frozen dataclass of options)."""

    name: ClassVar[str]  # registry name, e.g. "greedy"
    seed: int  # the only source of randomness

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` within ``budget``; never raise for infeasible or timeouts."""
        ...


class CtrlCStops:
    """Context manager: the first Ctrl-C sets ``stop_event`` (a solve polling it returns
    its best plan so far), a second raises KeyboardInterrupt (an abort).

    It is installed in the main thread only (nowhere else can a signal handler be), and
    never where SIGINT is ignored (``nohup``, a background job). ``over_any_handler``
    False installs it only over Python's default handler: a solve called from a program
    (the command line's, a notebook's) with a handler of its own keeps that handler.
    """

    def __init__(
        self, stop_event: threading.Event, notice: str | None = None, *, over_any_handler: bool
    ) -> None:
        self.stop_event = stop_event  # the solve's Budget.stop_event
        self.notice = notice  # printed to stderr on the first Ctrl-C, if any
        self.over_any_handler = over_any_handler
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_event.is_set():
            raise KeyboardInterrupt
        self.stop_event.set()
        if self.notice:
            print(self.notice, file=sys.stderr, flush=True)

    def __enter__(self) -> CtrlCStops:
        if threading.current_thread() is not threading.main_thread():
            return self
        current = signal.getsignal(signal.SIGINT)
        if current is signal.SIG_IGN:
            return self
        if self.over_any_handler or current is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


_Solve = TypeVar("_Solve", bound=Callable[..., Any])


def stops_on_ctrl_c(solve: _Solve) -> _Solve:
    """Decorate a solver's ``solve(problem, budget)``: while it runs, the first Ctrl-C
    sets ``budget.stop_event`` rather than raising, so the solve ends with its best plan
    (TIMEOUT, "interrupted") as it does on the command line; a second Ctrl-C raises
    KeyboardInterrupt. A caller's own SIGINT handler is left alone (:class:`CtrlCStops`)."""

    @functools.wraps(solve)
    def guarded(self: Any, problem: Any, budget: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(budget, Budget):  # refused inside, with the solver's name
            return solve(self, problem, budget, *args, **kwargs)
        with CtrlCStops(budget.stop_event, over_any_handler=False):
            return solve(self, problem, budget, *args, **kwargs)

    return guarded  # type: ignore[return-value]


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
    """Validate ``plan``, score it, check the bound and status, and wrap it.

    Args:
        solver: the solver instance (its ``name`` and options are recorded).
        problem: the problem that was solved.
        status: how the solve ended.
        plan: the plan found, or None.
        budget: the solve's budget (the wall time is measured from its start).
        lower_bound_bytes: a bound on the non-compulsory bytes of every valid plan of
            ``problem``, or None; OPTIMAL requires it, equal to the plan's value.
        stats: solver-specific counters.
        message: a human explanation.

    Raises:
        InvalidPlanError: the plan breaks a validity rule (a solver bug).
        SolverContractError: the bound or status breaks the rules of the module
            docstring (a solver bug): a negative bound, a bound above the plan's
            value, OPTIMAL without a plan or without a bound equal to its value, or a
            plan with an INFEASIBLE status.
    """
    where = f"solver {solver.name!r} ({status.value})"
    if lower_bound_bytes is not None and lower_bound_bytes < 0:
        raise SolverContractError(f"{where}: negative lower bound {lower_bound_bytes} B")
    if status is Status.INFEASIBLE and plan is not None:
        raise SolverContractError(f"{where}: an INFEASIBLE result carries a plan")
    if status is Status.OPTIMAL and plan is None:
        raise SolverContractError(f"{where}: OPTIMAL without a plan")
    cost = None
    if plan is not None:
        check_plan(problem, plan, what=f"plan from solver {solver.name!r}")
        cost = evaluate(problem, plan)
        value = cost.non_compulsory_bytes
        if lower_bound_bytes is not None and lower_bound_bytes > value:
            raise SolverContractError(
                f"{where}: lower bound {lower_bound_bytes} B is above its own plan's "
                f"{value} non-compulsory bytes; a bound must hold for every valid plan"
            )
        if status is Status.OPTIMAL and lower_bound_bytes != value:
            raise SolverContractError(
                f"{where}: OPTIMAL needs a lower bound equal to the plan's {value} "
                f"non-compulsory bytes, got {lower_bound_bytes}; an optimum that is not "
                "proven over all plans is FEASIBLE with stats['optimal_for_...']"
            )
    if lower_bound_bytes and not problem.capacity_is_aligned:
        # The solvers' models and bounds use aligned sizes at this capacity, but a valid
        # plan may end its top tensor in the unaligned tail: their optimum may be beaten.
        lower_bound_bytes = None
        if status is Status.OPTIMAL:
            status = Status.FEASIBLE
        why = (
            f"no lower bound: scratchpad {problem.capacity_bytes} B is not a multiple of the "
            f"alignment {problem.alignment_bytes} B, and the bound holds only for plans that "
            "leave its unaligned tail empty"
        )
        message = f"{message}; {why}" if message else why
    return SolveResult(
        status=status,
        plan=plan,
        cost=cost,
        lower_bound_bytes=lower_bound_bytes,
        wall_s=budget.elapsed_s(),
        solver=solver.name,
        options=option_values(solver),
        stats=dict(stats or {}),
        message=message,
    )


def unbacked_claim(result: SolveResult, cost: Cost | None) -> str | None:
    """What a result claims that its plan does not back, or None.

    :func:`make_result` refuses such results, but a plug-in may build its
    :class:`SolveResult` itself: an OPTIMAL without a lower bound
    equal to its plan's traffic, a bound above its own plan (or not a number of bytes),
    or an INFEASIBLE with a plan would be counted as proofs and bounds.

    Args:
        result: the solver's result (its plan already validated).
        cost: the harness's cost of the plan; None when there is no plan.
    """
    bound = result.lower_bound_bytes
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 0):
        return f"its lower bound {brief_repr(bound)} is not a number of bytes"
    if result.status is Status.INFEASIBLE and result.plan is not None:
        return "it claims INFEASIBLE, yet returned a plan"
    if result.status is Status.OPTIMAL and cost is None:
        return "it claims OPTIMAL without a plan"
    if cost is None:
        return None
    value = cost.non_compulsory_bytes
    if bound is not None and bound > value:
        return f"its lower bound {bound} B is above its own plan's {value} non-compulsory bytes"
    if result.status is Status.OPTIMAL and bound != value:
        shown = "none" if bound is None else f"{bound} B"
        return (
            f"it claims OPTIMAL, but its lower bound is {shown}, not its plan's {value} "
            "non-compulsory bytes (an optimum is proven by a bound equal to it)"
        )
    return None


def checked_result(solver_name: str, problem: Problem, result: object) -> SolveResult:
    """``result`` of solver ``solver_name`` held to the contract that :func:`make_result`
    enforces for memplan's own solvers: a :class:`SolveResult` whose plan passes the
    validator, whose cost is the cost model's and whose claims the plan backs
    (:func:`unbacked_claim`). For a plug-in that builds its result itself, whose plan
    must not be written or reported unchecked.

    Raises:
        PluginResultError: the result breaks the contract (named, with the first faults).
    """
    from memplan.validate import validate

    where = f"solver {solver_name!r}"
    if not isinstance(result, SolveResult):
        raise PluginResultError(
            f"{where} returned {brief_repr(result)}, not a memplan.solver.SolveResult "
            "(build it with memplan.solver.make_result); nothing was written"
        )
    cost = None
    if result.plan is not None:
        if not isinstance(result.plan, Plan):
            raise PluginResultError(
                f"{where} returned a plan that is {brief_repr(result.plan)}, not a "
                "memplan.plan.Plan; nothing was written"
            )
        violations = validate(problem, result.plan)
        if violations:
            shown = "; ".join(str(v) for v in violations[:3])
            raise PluginResultError(
                f"{where} returned an invalid plan ({len(violations)} violations: {shown}); "
                "nothing was written (memplan validate lists every fault of a plan file)"
            )
        cost = evaluate(problem, result.plan)
    broken = unbacked_claim(result, cost)
    if broken is not None:
        raise PluginResultError(f"{where} broke the result contract: {broken}; nothing was written")
    if cost is not None and (result.cost is None or result.cost.to_dict() != cost.to_dict()):
        given = getattr(result.cost, "non_compulsory_bytes", None)
        raise PluginResultError(
            f"{where} reported a cost that is not the cost model's (non-compulsory "
            f"{brief_repr(given)} B, the cost model's {cost.non_compulsory_bytes} B); build "
            "the result with memplan.solver.make_result; nothing was written"
        )
    return result


def infeasible_below_mr(solver: Any, problem: Problem, budget: Budget) -> SolveResult | None:
    """The INFEASIBLE result every solver gives when the capacity is below M_R, else None.

    Every solver calls it first, so it also refuses arguments of the wrong type (a
    notebook's ``solver.solve(graph, 5)``) with a :class:`ConfigError` naming them.
    """
    name = getattr(solver, "name", type(solver).__name__)
    if not isinstance(problem, Problem):
        raise ConfigError(
            f"{name}.solve: problem must be a memplan Problem (Problem(graph, accelerator)), "
            f"got {type(problem).__name__}"
        )
    if not isinstance(budget, Budget):
        raise ConfigError(
            f"{name}.solve: budget must be a memplan Budget (e.g. Budget(time_limit_s=60)), "
            f"got {type(budget).__name__}"
        )
    if problem.capacity_bytes >= problem.min_resident_bytes:
        return None
    if problem.capacity_bytes >= problem.least_capacity_bytes:
        # Not a multiple of the alignment: a plan may end a tensor in the unaligned tail,
        # which the solvers (aligned sizes) never do; claiming INFEASIBLE would be false.
        raise ConfigError(
            f"{name}.solve: scratchpad {problem.capacity_bytes} B is below M_R = "
            f"{problem.min_resident_bytes} B and not a multiple of the alignment "
            f"{problem.alignment_bytes} B; memplan's solvers place tensors by their aligned "
            "sizes and need M_R. Give a capacity that is a multiple of the alignment "
            "(resolve_budget rounds budgets down to it)"
        )
    return make_result(
        solver, problem, Status.INFEASIBLE, None, budget, message=problem.describe_capacity_error()
    )


# ------------------------------------------------------------------- registry
def available_solvers() -> list[str]:
    """Names of every known solver (entry points and in-process registrations)."""
    return _available(PluginKind.SOLVER)


def required_extra(name: str) -> str | None:
    """The optional-dependency extra a solver needs (from its entry point), if any."""
    return _required_extra(PluginKind.SOLVER, name)


def solver_class(name: str) -> type:
    """Load a solver class by registry name or ``package.module:Class`` path."""
    return plugin_class(PluginKind.SOLVER, name)


def make_solver(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Instantiate a solver with options; strings are converted to the option's type."""
    return make_plugin(PluginKind.SOLVER, name, options)
