"""The searches of ``dnc``: solve the parts between cuts, then improve windows (LNS).

Both re-solve a run of steps of the best plan with CP-SAT, the plan outside it fixed:
the state entering the run and the state the rest of the plan requires at its end are
the run's boundaries (PROBLEM.md section 8, :mod:`memplan.cut`). A run plan that moves
fewer bytes replaces the old one, and the joined plan is validated as one plan::

    incumbent  ──────[   run   ]────────────    boundaries: the states at both cuts
    re-solved  ──────[ CP-SAT  ]────────────    fewer bytes moved? keep it

*Parts* are the runs between the cuts at narrow places (few live bytes cross them, so
their fixed boundaries constrain little); a part that moves no byte is skipped. The
*windows* are runs centred on the steps that still load or store, of a size that grows
when no window of the current size helps; they straddle the cuts, so decisions at the
cuts can change too. When every window of the largest size has been tried since the
last improvement, the search has converged (a local optimum of that neighbourhood).
A window inside a part or window that CP-SAT proved optimal (with no change to the
plan since) is not solved: it fixes more of the plan, so it cannot do better.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from memplan.cut import (
    PART_SOLVER,
    PartOutcome,
    PartSpec,
    join,
    part_traffic,
    required_state,
    restrict,
)
from memplan.errors import ConfigError, InvalidPlanError
from memplan.ir import OpId
from memplan.plan import Arrive, Leave, Plan
from memplan.problem import Problem
from memplan.registry import PluginKind, plugin_class, providers
from memplan.solver import Budget

#: Window sizes, in halves of the ``window_ops`` option: 1x, 1.5x, 2x, 3x, 4x.
WINDOW_GROWTH = (2, 3, 4, 6, 8)

#: A callback for progress: (bytes the incumbent moves, the phase in a few words).
Report = Callable[[int, str], None]


@dataclass(slots=True)
class SearchStats:
    """Counters of one dnc run (reported in the result's stats), updated as it goes."""

    parts: int = 0  # parts between the cuts
    parts_solved: int = 0  # parts with traffic that CP-SAT re-solved
    parts_improved: int = 0  # parts whose new plan replaced the incumbent's
    parts_optimal: int = 0  # parts proven optimal for their boundaries
    windows_tried: int = 0  # windows re-solved
    windows_improved: int = 0  # windows that replaced the incumbent's
    windows_optimal: int = 0  # windows proven optimal for their boundaries
    rejected: int = 0  # run plans the validator refused (a bug if ever > 0)
    converged: bool = False  # every window was tried since the last improvement
    stalled: bool = False  # the windows stopped after ``stall_s`` without an improvement
    whole_bound_bytes: int | None = None  # a bound on the bytes of every plan (a whole-graph run)
    whole_optimal: bool = False  # a whole-graph run with placement proved the plan optimal
    window_ops_reached: int = 0  # largest window size tried
    history: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes moved)


@dataclass
class WindowProgress:
    """Where :func:`improve_windows` is in its sweep of one plan, so a later call on the
    same plan goes on from there (the windows tried at the current size, the size, the
    whole-graph run done or not, the random order of the windows)."""

    rng: random.Random
    level: int = 0
    tried: set[tuple[int, int]] = field(default_factory=set)
    whole_first: bool = True
    #: Whether the whole graph is still to be tried once when the windows converge.
    whole_last: bool = True
    #: Runs of steps proven optimal for the plan as it is (parts or windows CP-SAT solved
    #: to optimality without finding better): a window inside one of them cannot improve
    #: the plan (it fixes more of it), so it is not solved.
    proven: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def fresh(cls, seed: int) -> WindowProgress:
        """A sweep from the start."""
        return cls(random.Random(seed))

    def covered(self, window: tuple[int, int]) -> bool:
        """Whether ``window`` lies inside a run proven optimal."""
        return any(low <= window[0] and window[1] <= high for low, high in self.proven)

    def changed(self, window: tuple[int, int]) -> None:
        """The plan changed inside ``window``: the windows that overlap it may help now,
        and no proof holds any more (what a run must leave at its end depends on the
        whole rest of the plan)."""
        self.tried = {w for w in self.tried if w[1] <= window[0] or w[0] >= window[1]}
        self.proven = []


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How each run is solved."""

    part_solver: Any  # a solver class with the part_solver capability (memplan.cut)
    fixed_order: bool  # keep the run's order (replacement and placement only)
    work_s: float  # CP-SAT deterministic work per run
    workers: int  # CP-SAT threads
    seed: int  # CP-SAT seed
    placement: bool = True  # choose offsets (else: interval plans, packed afterwards)


def traffic_bytes(problem: Problem, plan: Plan) -> int:
    """Bytes loaded and stored by ``plan`` (non-compulsory plus :func:`constant_bytes`)."""
    return part_traffic(problem, plan.residencies)


def constant_bytes(problem: Problem) -> int:
    """Compulsory bytes that are loads or stores (:func:`traffic_bytes` minus the
    non-compulsory bytes, the same for every plan)."""
    return problem.compulsory_bytes() - sum(
        problem.streamed_weight_bytes(OpId(o)) for o in range(problem.graph.num_ops)
    )


def _moving_steps(plan: Plan) -> list[int]:
    """Steps where the plan loads (a residency starts) or stores (one ends), sorted."""
    steps = set()
    for r in plan.residencies:
        if r.arrive is Arrive.LOAD:
            steps.add(r.start)
        if r.leave is Leave.STORE:
            steps.add(r.end - 1)
    return sorted(steps)


def without_offsets(plan: Plan) -> Plan:
    """The plan as an *interval plan*: every offset 0 (for the searches without
    placement; not a valid plan until :func:`pack` gives it offsets)."""
    return Plan(plan.order, tuple(dataclasses.replace(r, offset=0) for r in plan.residencies))


def resolve_run(
    problem: Problem,
    plan: Plan,
    start: int,
    end: int,
    settings: RunSettings,
    budget: Budget,
    time_s: float | None = None,
) -> tuple[Plan | None, int, PartOutcome]:
    """Re-solve the steps ``[start, end)`` of ``plan`` with the rest fixed.

    The run's wall-clock limit is ``time_s`` (else a few times its deterministic work),
    never more than ``budget`` has left. Returns the joined plan when it moves fewer
    bytes (else None), the bytes saved, and the part solver's outcome.
    """
    n = len(plan.order)
    old = restrict(problem, plan, start, end)
    spec = PartSpec(
        problem,
        old.order,
        frozenset(OpId(o) for o in plan.order[end:]),
        old.entering,
        required_state(problem, plan, end),
    )
    limit = min(budget.remaining_s(), 4 * settings.work_s + 1 if time_s is None else time_s)
    outcome: PartOutcome = settings.part_solver.solve_part(
        spec,
        old.order,
        fixed_order=settings.fixed_order,
        hint=old.pieces,
        budget=Budget(time_limit_s=limit, stop_event=budget.stop_event),
        deterministic_s=settings.work_s,
        workers=settings.workers,
        seed=settings.seed,
        placement=settings.placement,
    )
    if outcome.part is None or outcome.traffic_bytes is None:
        return None, 0, outcome
    saved = part_traffic(problem, old.pieces) - outcome.traffic_bytes
    if saved <= 0:
        return None, 0, outcome
    runs = [restrict(problem, plan, 0, start)] if start > 0 else []
    runs.append(outcome.part)
    if end < n:
        runs.append(restrict(problem, plan, end, n))
    return join(problem, runs, validate=settings.placement), saved, outcome


def solve_parts(
    problem: Problem,
    plan: Plan,
    cuts: Sequence[int],
    settings: RunSettings,
    budget: Budget,
    stats: SearchStats,
    report: Report,
    progress: WindowProgress | None = None,
) -> Plan:
    """Re-solve every part between ``cuts`` that moves bytes, left to right; the parts
    proven optimal go to ``progress.proven`` (the windows inside them are not solved)."""
    n = len(plan.order)
    points = [0, *cuts, n]
    stats.parts = len(points) - 1
    best, best_bytes = plan, traffic_bytes(problem, plan)
    for index in range(len(points) - 1):
        start, end = points[index], points[index + 1]
        if budget.should_stop():
            break
        if not any(start <= step < end for step in _moving_steps(best)):
            continue
        try:
            candidate, saved, outcome = resolve_run(problem, best, start, end, settings, budget)
        except InvalidPlanError:
            stats.rejected += 1
            continue
        stats.parts_solved += 1
        stats.parts_optimal += outcome.optimal
        if candidate is not None:
            best, best_bytes = candidate, best_bytes - saved
            stats.parts_improved += 1
            stats.history.append((budget.elapsed_s(), best_bytes))
            if progress is not None:
                progress.changed((start, end))
        elif outcome.optimal and progress is not None:
            progress.proven.append((start, end))
        report(best_bytes, f"parts {index + 1}/{stats.parts}")
    return best


def _windows(plan: Plan, problem: Problem, width: int, rng: random.Random) -> list[tuple[int, int]]:
    """Windows of ``width`` steps over the clusters of steps that move bytes, the
    clusters that move the most bytes first (ties in a seeded random order)."""
    n = len(plan.order)
    moved: dict[int, int] = {}
    sizes = problem.graph.tensors
    for r in plan.residencies:
        if r.arrive is Arrive.LOAD:
            moved[r.start] = moved.get(r.start, 0) + sizes[r.tensor].size_bytes
        if r.leave is Leave.STORE:
            moved[r.end - 1] = moved.get(r.end - 1, 0) + sizes[r.tensor].size_bytes
    steps = sorted(moved)
    clusters: list[list[int]] = []
    for step in steps:
        if clusters and step - clusters[-1][-1] <= width // 2:
            clusters[-1].append(step)
        else:
            clusters.append([step])
    rng.shuffle(clusters)
    clusters.sort(key=lambda c: -sum(moved[s] for s in c))
    windows = []
    for cluster in clusters:
        low, high = cluster[0], cluster[-1] + 1
        count = max(1, -(-(high - low) // width))
        for k in range(count):
            centre = low + (2 * k + 1) * (high - low) // (2 * count)
            start = max(0, min(centre - width // 2, n - width))
            windows.append((start, start + width))
    return list(dict.fromkeys(windows))


def improve_windows(
    problem: Problem,
    plan: Plan,
    *,
    window_ops: int,
    max_windows: int,
    settings: RunSettings,
    budget: Budget,
    stats: SearchStats,
    report: Report,
    target_bytes: int = 0,
    stall_s: float | None = None,
    progress: WindowProgress | None = None,
    trail: list[Plan] | None = None,
    whole_last: bool = False,
) -> Plan:
    """Re-solve windows of ``plan`` with the rest fixed while it helps (see the module
    docstring); returns the best plan, and appends each improved plan to ``trail`` when
    given. ``max_windows`` > 0 caps the windows tried; the
    search stops once the plan moves ``target_bytes`` (a proven lower bound) or fewer,
    and, with ``stall_s``, when that many seconds pass before any window improves the
    plan (``stats.stalled``). ``progress`` carries the sweep over from an earlier call on
    the same plan (a fresh sweep without it).

    Each size is tried over the clusters of steps that move bytes; after an improvement
    the windows it overlaps may be tried again, and when no window of a size helps the
    next larger size is tried (up to 4x ``window_ops``). A graph no longer than the
    largest size is first tried whole: one run that may prove the plan optimal. With
    ``whole_last``, a longer graph is tried whole once the windows converge, with all
    the time left: the windows found nothing more, and CP-SAT started from the plan may
    still prove it optimal or improve it (vit_b16 and bert_base, activations, M_R: the
    windows converge in about 10 s with a gap of 50 % and more; the whole graph, about
    400 ops, is proven optimal in about 5 s more).
    """
    at = progress if progress is not None else WindowProgress.fresh(settings.seed)
    n = len(plan.order)
    best, best_bytes = plan, traffic_bytes(problem, plan)
    sizes = sorted({min(n, window_ops * k // 2) for k in WINDOW_GROWTH})
    at.whole_first = at.whole_first and sizes[-1] == n
    started, improved_before = time.monotonic(), stats.windows_improved
    while not budget.should_stop() and best_bytes > target_bytes:
        if max_windows and stats.windows_tried >= max_windows:
            break
        if (
            stall_s is not None
            and stats.windows_improved == improved_before
            and time.monotonic() - started > stall_s
        ):
            stats.stalled = True
            break
        width = n if at.whole_first else sizes[at.level]
        run_time_s = None  # the run's wall-clock limit: the default, a few times its work
        if at.whole_first:
            fresh, at.whole_first = [(0, n)], False
        else:
            fresh = [
                w
                for w in _windows(best, problem, width, at.rng)
                if w not in at.tried and not at.covered(w)
            ]
        if not fresh:
            if at.level + 1 < len(sizes):
                at.level += 1
                continue
            if not (whole_last and at.whole_last and sizes[-1] < n):
                stats.converged = True
                break
            width, fresh, run_time_s, at.whole_last = n, [(0, n)], budget.remaining_s(), False
            report(best_bytes, "windows converged: the whole graph")
        stats.window_ops_reached = max(stats.window_ops_reached, width)
        window = fresh[0]
        at.tried.add(window)
        # Larger windows get proportionally more work.
        scaled = dataclasses.replace(settings, work_s=settings.work_s * width / window_ops)
        try:
            candidate, saved, outcome = resolve_run(
                problem, best, *window, scaled, budget, time_s=run_time_s
            )
        except InvalidPlanError:
            stats.rejected += 1
            continue
        stats.windows_tried += 1
        stats.windows_optimal += outcome.optimal
        if window == (0, n) and outcome.bound_bytes is not None:
            # One run over the whole graph: its boundaries are those of the problem
            # (nothing before, the outputs stored at the end), so its bound holds for
            # every plan; without placement the model is a relaxation, still a bound.
            stats.whole_bound_bytes = max(stats.whole_bound_bytes or 0, outcome.bound_bytes)
            if outcome.optimal and settings.placement:
                stats.whole_optimal = True
        if candidate is None:
            if stats.whole_optimal:
                stats.converged = True
                break
            if outcome.optimal:
                at.proven.append(window)
            continue
        best, best_bytes = candidate, best_bytes - saved
        if trail is not None:
            trail.append(best)
        stats.windows_improved += 1
        stats.history.append((budget.elapsed_s(), best_bytes))
        # Windows that overlap the change see a new plan: they may help now.
        at.changed(window)
        at.level = 0
        report(best_bytes, f"windows: {stats.windows_improved} improved of {stats.windows_tried}")
    return best


#: The error of a dnc solve without OR-Tools (the ``ilp`` extra).
ORTOOLS_MISSING = (
    "solver 'dnc' needs the ortools package; install it with: pip install 'memplan[ilp]'"
)


def require_part_solver() -> None:
    """Raise the error :func:`part_solver_class` raises when the ``ilp`` extra is missing,
    without importing it (it is found, not loaded).

    Raises:
        ConfigError: ortools is not installed.
    """
    if importlib.util.find_spec("ortools") is None:
        raise ConfigError(ORTOOLS_MISSING)


def part_solver_class() -> Any:
    """The installed solver class that plans parts under fixed boundaries (``ilp``).

    Raises:
        ConfigError: when none is installed, or ortools (its CP-SAT backend) is missing.
    """
    names = providers(PluginKind.SOLVER, PART_SOLVER)
    if not names:
        raise ConfigError(
            "solver 'dnc' needs a solver that plans parts under fixed boundaries (the ilp "
            "solver with its CP-SAT backend); install it with: pip install 'memplan[ilp]'"
        )
    try:
        # The CP-SAT module itself (it imports pandas: 0.5-0.7 s under load), here where
        # the caller can still count the time, not inside the first window's time limit.
        __import__("ortools.sat.python.cp_model")
    except ImportError:
        raise ConfigError(ORTOOLS_MISSING) from None
    return plugin_class(PluginKind.SOLVER, "ilp" if "ilp" in names else names[0])


def time_share(budget: Budget, share: float) -> float | None:
    """Seconds of ``budget`` left times ``share`` (None without a limit)."""
    remaining = budget.remaining_s()
    return None if remaining == float("inf") else share * remaining
