"""The ``ilp`` solver: COSMA's joint order / replacement / allocation model, exactly.

Three objectives: ``traffic`` (non-compulsory bytes, COSMA's), ``latency`` (``traffic``, then
the prefetch pass of :mod:`memplan.solvers.latency`) and ``peak`` (the minimum
peak live bytes over orders with no spilling: COSMA's MPMF variant, which gives M_P).
Two modes: ``free`` (the order is a variable) and ``fixed`` (the order comes from the
``order`` option). Two backends: ``cpsat`` (OR-Tools CP-SAT, interval variables and
``NoOverlap2D``, the default) and ``milp`` (COSMA's time-indexed MILP with PuLP and
HiGHS or CBC, for fidelity and cross-checks).

Before the exact search, the solver builds incumbents (the ``greedy`` solver's plan when
that solver is installed, no-spill packings of low-peak orders, and the always valid
"spill everything" plan); the best one that fits the model is the search's hint, and
the best one overall is what a timed-out solve returns. In ``free`` mode the fixed-order
model is first solved on the greedy and min-peak orders (short, single-worker warm
starts) so that the free search starts from a strong incumbent. Every phase is budgeted
(:mod:`memplan.solvers.ilp.phases`): a solve returns within its time limit plus
:data:`~memplan.solver.RETURN_GRACE_S`, skipping (and saying so) a model that
cannot be built and searched in the time left.

Statuses (see :mod:`memplan.solvers.ilp.traffic`): OPTIMAL only for an optimum proven
over all plans (``free`` mode with complete slots, a plan moving 0 bytes, or a plan
meeting the crowded-region bound of :mod:`memplan.traffic_bound`, computed in every mode
before the search). A bound is reported from such a search (also at a time limit) or
from the crowded regions, whichever is larger. An optimum for one order (``fixed`` mode,
the peak objective's fallback) or within ``max_loads`` is FEASIBLE with
``stats["optimal_for_order"]`` / ``stats["optimal_for_max_loads"]``; its model's bound is
not a bound over all plans and is never reported. TIMEOUT: out of time or stopped (the
best plan so far). INFEASIBLE below M_R.

Results are reproducible for a given seed and worker count unless the time runs out:
warm starts run on one worker with a work limit derived from the time limit, and a
multi-worker optimum is re-found on one worker (``polished``), since parallel CP-SAT
returns whichever optimal solution a thread found first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from memplan.analysis import NAMED_ORDERS, min_peak_order, named_order
from memplan.budgets import PeakEstimate, heuristic_min_peak
from memplan.cut import PART_SOLVER, PartOutcome, PartSpec, Piece
from memplan.errors import ConfigError, MemplanError
from memplan.ir import OpId
from memplan.options import check_choice, check_range, check_seed, seed_field, type_options
from memplan.plan import Plan
from memplan.problem import Problem
from memplan.registry import EXACT_MIN_PEAK
from memplan.solver import (
    Budget,
    SolveResult,
    infeasible_below_mr,
    make_solver,
    stops_on_ctrl_c,
)
from memplan.solvers.ilp.model import build_structure
from memplan.solvers.ilp.outcome import BackendStatus
from memplan.solvers.ilp.peak import plan_peak, run_peak_backend
from memplan.solvers.ilp.phases import (
    ALLOC_MAX_S,
    ALLOC_SHARE,
    GREEDY_MAX_S,
    finish_reserve_s,
    skip_reason,
    sub_budget,
)
from memplan.solvers.ilp.traffic import (
    Coverage,
    incumbents,
    plan_traffic,
    traffic_floor,
    warm_starts,
)
from memplan.solvers.latency import solve_for_latency
from memplan.timing import OBJECTIVE_LATENCY

OBJECTIVES = ("traffic", "peak", "latency")
MODES = ("free", "fixed")
ORDERS = ("greedy", *NAMED_ORDERS)
BACKENDS = ("cpsat", "milp")
MILP_ENGINES = ("highs", "cbc")


@dataclass(frozen=True)
class IlpSolver:
    """Exact joint planning (COSMA) with CP-SAT or a MILP solver."""

    name: ClassVar[str] = "ilp"
    #: Proves M_P (:meth:`exact_min_peak`); the core finds it by this capability.
    capabilities: ClassVar[frozenset[str]] = frozenset(
        {EXACT_MIN_PEAK, PART_SOLVER, OBJECTIVE_LATENCY}
    )
    objective: str = field(
        default="traffic",
        metadata={
            "help": "traffic (non-compulsory bytes, COSMA), peak (min peak, no spills) or "
            "latency (traffic in 90 % of the time, then the prefetch pass: loads start "
            "earlier where the scratchpad has room, same traffic, lower overlap latency)"
        },
    )
    mode: str = field(
        default="free",
        metadata={"help": "free (the order is a variable) or fixed (the order option fixes it)"},
    )
    order: str = field(
        default="greedy",
        metadata={
            "help": "fixed-mode order: greedy (the greedy solver's), min-peak, model, dfs, bfs, rpo"
        },
    )
    backend: str = field(
        default="cpsat", metadata={"help": "cpsat (OR-Tools CP-SAT) or milp (PuLP time-indexed)"}
    )
    milp_engine: str = field(
        default="highs", metadata={"help": "MILP engine for backend=milp: highs or cbc"}
    )
    max_loads: int = field(
        default=-1,
        metadata={
            "help": "loads per tensor beyond the compulsory one; -1 = one per read "
            "(complete: loses no plan); smaller is faster but only optimal within that "
            "limit; >= -1"
        },
    )
    workers: int = field(default=2, metadata={"help": "CP-SAT worker threads; 1 .. 64"})
    hint: bool = field(
        default=True, metadata={"help": "seed the search with the greedy solver's plan"}
    )
    seed: int = seed_field("random seed of CP-SAT, HiGHS and CBC, and of the greedy incumbent")
    verbose: bool = field(default=False, metadata={"help": "print the backend's search log"})

    def __post_init__(self) -> None:
        type_options(self)
        check_choice(self.name, "objective", self.objective, OBJECTIVES)
        check_choice(self.name, "mode", self.mode, MODES)
        check_choice(self.name, "order", self.order, ORDERS)
        check_choice(self.name, "backend", self.backend, BACKENDS)
        check_choice(self.name, "milp_engine", self.milp_engine, MILP_ENGINES)
        check_range(self.name, "max_loads", self.max_loads, -1)
        check_range(self.name, "workers", self.workers, 1, 64)
        check_seed(self.name, self.seed)

    @classmethod
    def exact_min_peak(
        cls,
        problem: Problem,
        budget: Budget,
        *,
        backend: str = "cpsat",
        workers: int = 2,
        seed: int = 0,
    ) -> PeakEstimate:
        """M_P: the minimum over orders of the peak live bytes with no spilling (the
        ``exact_min_peak`` capability).

        Args:
            problem: the problem (its scope and alignment matter, not its capacity).
            budget: time limit and stop event of the search.
            backend: cpsat or milp.
            workers: CP-SAT threads.
            seed: random seed.

        Returns:
            The proven minimum, or (out of time) the better of the search's best value
            and the heuristic, marked unproven.
        """
        check_choice(cls.name, "backend", backend, BACKENDS)
        heuristic = heuristic_min_peak(problem)
        if problem.graph.num_ops == 0:
            return PeakEstimate(0, True, "empty graph")
        struct = build_structure(problem.with_capacity(heuristic.value_bytes), None, 0)
        order = min_peak_order(problem.graph, problem.aligned_sizes_bytes, problem.in_scope)
        search = sub_budget(budget, budget.remaining_s() - finish_reserve_s(struct))
        outcome = run_peak_backend(
            struct, search, order, heuristic.value_bytes, backend=backend, workers=workers,
            seed=seed,
        )  # fmt: skip
        if outcome.objective is None:
            why = outcome.stats.get("skipped", "found nothing in time")
            return PeakEstimate(heuristic.value_bytes, False, f"{heuristic.source} (ilp {why})")
        value = min(outcome.objective * struct.unit_bytes, heuristic.value_bytes)
        if outcome.status is BackendStatus.OPTIMAL:
            return PeakEstimate(value, True, f"ilp ({backend}) proven minimum")
        bound = (outcome.bound or 0) * struct.unit_bytes
        return PeakEstimate(
            value, False, f"ilp ({backend}) best found in the time limit (lower bound {bound} B)"
        )

    @classmethod
    def solve_part(
        cls,
        spec: PartSpec,
        order: Sequence[int],
        *,
        fixed_order: bool,
        hint: Sequence[Piece] | None,
        budget: Budget,
        deterministic_s: float | None = None,
        workers: int = 1,
        seed: int = 0,
        placement: bool = True,
    ) -> PartOutcome:
        """Plan one part of a plan under fixed boundaries (the ``part_solver`` capability
        of :mod:`memplan.cut`), with the CP-SAT traffic model (:mod:`.part`).

        Args:
            spec: the part, its entering state and its required leaving state.
            order: the part's ops in a topological order (kept, or the hint's).
            fixed_order: keep ``order`` (replacement and placement only).
            hint: the pieces of a valid plan of the part (a full hint), or None.
            budget: time limit and stop event.
            deterministic_s: CP-SAT's work limit (reproducible), or None.
            workers: CP-SAT threads.
            seed: CP-SAT seed.
            placement: choose offsets (else only bytes per step; the pieces get offset 0
                and the joined plan must be packed).
        """
        from memplan.solvers.ilp.part import solve_part_cpsat

        return solve_part_cpsat(
            spec, order, fixed_order=fixed_order, hint=hint, budget=budget,
            deterministic_s=deterministic_s, workers=workers, seed=seed, placement=placement,
        )  # fmt: skip

    # ------------------------------------------------------------------ solve
    @stops_on_ctrl_c
    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        """Plan ``problem`` within ``budget`` (see the module docstring)."""
        if self.objective == "latency":
            return solve_for_latency(self, problem, budget)
        infeasible = infeasible_below_mr(self, problem, budget)
        if infeasible is not None:
            return infeasible
        self._check_backend()
        greedy_plan = self._greedy_plan(problem, budget) if self.hint else None
        order = self._base_order(problem, greedy_plan)
        if self.objective == "peak":
            return plan_peak(self, problem, budget, order)
        fixed = order if self.mode == "fixed" else None
        struct = build_structure(problem, fixed, self.max_loads)
        alloc_s = min(ALLOC_MAX_S, ALLOC_SHARE * budget.remaining_s())
        starts = incumbents(struct, problem, greedy_plan, order, alloc_s)
        floor = traffic_floor(problem, budget) if starts[0].value_bytes > 0 else None
        skipped = None
        unproven = starts[0].value_bytes > (floor.bound_bytes if floor is not None else 0)
        if self.mode == "free" and unproven:
            # Decided now, with the whole budget left: warm starts use what it frees.
            skipped = skip_reason(self.backend, struct, budget)
            sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
            orders = [tuple(order), min_peak_order(problem.graph, sizes, scope)]
            if greedy_plan is not None:
                orders.insert(0, tuple(greedy_plan.order))
            starts += warm_starts(self, problem, budget, orders, starts, struct, skipped is None)
            starts.sort(key=lambda c: c.value_bytes)
        coverage = Coverage(
            self._order_name(greedy_plan) if fixed is not None else None,
            None if struct.complete else self.max_loads,
        )
        return plan_traffic(self, problem, budget, struct, starts, coverage, skipped, floor)

    def _order_name(self, greedy_plan: Plan | None) -> str:
        if self.order == "greedy" and greedy_plan is None:
            return "min-peak"  # the greedy solver is not installed (see _base_order)
        return self.order

    def _check_backend(self) -> None:
        module = "ortools" if self.backend == "cpsat" else "pulp"
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(
                f"solver 'ilp' backend {self.backend!r} needs the {module} package; "
                "install it with: pip install 'memplan[ilp]'"
            ) from None

    def _greedy_plan(self, problem: Problem, budget: Budget) -> Plan | None:
        """The greedy solver's plan as an incumbent, or None when it is not installed."""
        try:
            greedy = make_solver("greedy", {"seed": self.seed})
        except (ConfigError, TypeError):
            try:
                greedy = make_solver("greedy")
            except ConfigError:
                return None
        remaining = budget.remaining_s()
        if math.isinf(remaining):
            sub = Budget(stop_event=budget.stop_event, on_progress=budget.on_progress)
        else:
            sub = sub_budget(budget, min(GREEDY_MAX_S, remaining))
        try:
            result = greedy.solve(problem, sub)
        except MemplanError:
            return None
        return result.plan

    def _base_order(self, problem: Problem, greedy_plan: Plan | None) -> tuple[OpId, ...]:
        if self.order == "greedy" and greedy_plan is not None:
            return greedy_plan.order
        name = "min-peak" if self.order == "greedy" else self.order
        return named_order(problem.graph, name, problem.aligned_sizes_bytes, problem.in_scope)
