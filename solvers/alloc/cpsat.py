"""``cpsat``: the packing as a CP-SAT model (OR-Tools, the ``ilp`` extra).

Each buffer is a box: its lifetime fixed on the time axis, its offset a variable on the
address axis (a multiple of its alignment; a fixed offset is a constant). One
no-overlap-2D constraint keeps every two boxes apart. With a capacity the model
decides: FEASIBLE with offsets, or INFEASIBLE when CP-SAT proves that nothing fits.
With ``minimize`` (or no capacity) it minimises the height below the portfolio's
(its packing is the hint), and the objective's bound is a proven lower bound; when the
portfolio's packing is above the capacity, CP-SAT minimises below the capacity, which
also proves INFEASIBLE. Out of time without a proof it is TIMEOUT, with the best packing
found (CP-SAT's, or the portfolio's start, named in the algorithm).

Why it is here: the exact search (:mod:`.exact`) is MiniMalloc's, fast on the
instances it was tuned on, but some held-out perfect packings (non-guillotine tilings
of 84 to 300 buffers) kept it busy for 15 to 55 million nodes, where CP-SAT's
no-overlap propagation packs them in 0.01 to 0.2 s. ``auto`` hands it what the exact
search leaves (its ``cpsat_share`` option; ``memplan allocate`` sets 0.5).

The search runs with one worker and the allocator's seed: the same answer for the same
seed when no time limit cuts it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from memplan.dsa import AllocationResult, Buffer, make_allocation
from memplan.errors import ConfigError
from memplan.solver import Budget, Status
from memplan.solvers.alloc.common import (
    AllocatorOptions,
    Prepared,
    graph_free_fallback,
    obvious_infeasibility,
    prepare,
    reserved,
    sweep_that_fits,
)
from memplan.solvers.alloc.greedy import Portfolio

#: Buffers above which the model is not built (its set-up alone grows past seconds).
MAX_BUFFERS = 5_000

#: The message of a missing OR-Tools.
NEEDS_ORTOOLS = "allocator 'cpsat' needs OR-Tools; install it with: pip install 'memplan[ilp]'"


#: Seconds per buffer around CP-SAT's own time limit: handing it the model, reading
#: the answer (0.3 s for 5,000 buffers: a 10 s call ended at 10.3 s).
HANDOVER_S_PER_BUFFER = 8e-5


def ortools_installed() -> bool:
    """Whether OR-Tools can be imported (checked without importing it)."""
    return importlib.util.find_spec("ortools") is not None


@dataclass(frozen=True, slots=True)
class CpSatAllocator(AllocatorOptions):
    """Offsets from a CP-SAT no-overlap-2D model (ilp extra); proves infeasibility too."""

    name: ClassVar[str] = "cpsat"

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """FEASIBLE (or OPTIMAL) with offsets, INFEASIBLE when proven, else TIMEOUT."""
        if not ortools_installed():
            raise ConfigError(NEEDS_ORTOOLS)
        job = prepare(self, buffers, capacity_bytes, budget)
        if not isinstance(job, Prepared):
            return job
        if len(buffers) > MAX_BUFFERS:
            why = f"CP-SAT model not built: {len(buffers)} buffers, more than {MAX_BUFFERS}"
            p = job.packed
            arrays = (p.lower, p.upper, p.size, p.align, p.fixed)
            return graph_free_fallback(self, buffers, capacity_bytes, budget, arrays, None, "", why)
        if capacity_bytes is not None and not self.minimize:
            return self._decide(job, budget)
        return self._minimize(job, budget)

    def _decide(self, job: Prepared, budget: Budget) -> AllocationResult:
        capacity = job.capacity
        assert capacity is not None
        why = obvious_infeasibility(job.packed, capacity, job.buffers)
        if why is not None:
            return make_allocation(
                self, job.buffers, capacity, Status.INFEASIBLE, None, budget,
                max_live=job.max_live, message=f"no packing fits {capacity} B: {why}",
                stats={"kernels": job.kernels.used},
            )  # fmt: skip
        fallback = sweep_that_fits(job, job.budget)  # kept if CP-SAT finds no packing in time
        model, offsets, _ = _model(job.buffers, job.cap, None)
        # CP-SAT keeps its own limit, but handing it the model and back takes more (0.3 s
        # for 5,000 buffers).
        search = reserved(job.budget, HANDOVER_S_PER_BUFFER * len(job.buffers))
        code, solver = _solve(model, search, self.seed)
        from ortools.sat.python import cp_model

        if code in (cp_model.FEASIBLE, cp_model.OPTIMAL):
            found = [int(solver.value(v)) for v in offsets]
            return make_allocation(
                self, job.buffers, capacity, Status.FEASIBLE, found, budget,
                max_live=job.max_live, message="CP-SAT found a packing", stats=_stats(job, solver),
            )  # fmt: skip
        if code == cp_model.INFEASIBLE:
            return make_allocation(
                self, job.buffers, capacity, Status.INFEASIBLE, None, budget,
                max_live=job.max_live, lower_bound_bytes=capacity + 1,
                message=f"no packing fits {capacity} B: CP-SAT proved it",
                stats=_stats(job, solver),
            )  # fmt: skip
        stop = "interrupted" if budget.interrupted() else "out of time"
        message = f"{stop}: CP-SAT found no packing within {capacity} B"
        if fallback is not None:  # the sweep's packing fits: it answers the question too
            kept = fallback.result(
                self, job.buffers, capacity, budget, "", Status.FEASIBLE, message
            )
            return dataclasses.replace(kept, stats={**kept.stats, **_stats(job, solver)})
        return make_allocation(
            self, job.buffers, capacity, Status.TIMEOUT, None, budget, max_live=job.max_live,
            message=message, stats=_stats(job, solver),
        )  # fmt: skip

    def _minimize(self, job: Prepared, budget: Budget) -> AllocationResult:
        """The lowest height CP-SAT finds within the capacity, from the portfolio's start.

        The start is CP-SAT's hint and first upper bound when it fits the capacity. When
        it does not, CP-SAT still searches below the capacity: it packs, or proves that
        nothing fits (INFEASIBLE, the start shown as the lowest packing found). Every
        result is this allocator's, timed to the end of the call; the start is named in
        ``stats["start"]`` and, when its offsets are kept, in the algorithm too.
        """
        start = Portfolio(**{**self.common_options(), "minimize": True}).allocate(
            job.buffers, job.capacity, job.budget
        )
        kept = f"{self.name}:{start.algorithm}"  # the name of a result with the start's offsets
        stats: dict[str, object] = {
            "start": start.algorithm,
            "start_height_bytes": start.height_bytes,
        }
        if start.offsets_bytes is None:  # the portfolio could not run: say why, as cpsat
            return self._ended(job, budget, start.status, None, start.message, stats, kept)
        assert start.height_bytes is not None  # it has offsets
        if start.status is Status.INFEASIBLE:  # evident (max live, or a buffer too large)
            assert job.capacity is not None
            return self._ended(
                job, budget, Status.INFEASIBLE, start, start.message, stats, kept,
                bound=job.capacity + 1,
            )  # fmt: skip
        if start.fits and start.height_bytes <= job.max_live:
            return self._ended(job, budget, Status.FEASIBLE, start, "", stats, kept)  # optimal
        if job.budget.should_stop():  # the portfolio took the time CP-SAT would have had
            why = "stopped" if budget.interrupted() else "out of time"
            message = f"{why} before CP-SAT ran; the portfolio's packing ({start.message})"
            return self._ended(job, budget, Status.TIMEOUT, start, message, stats, kept)
        # A start that fits is the hint and bounds the height; else search up to the capacity.
        top = start.height_bytes if start.fits else job.cap
        hint = start.offsets_bytes if start.fits else None
        model, offsets, height = _model(job.buffers, top, hint, minimize=True)
        code, solver = _solve(model, job.budget, self.seed)
        stats = {**_stats(job, solver), **stats}
        from ortools.sat.python import cp_model

        stop = "interrupted" if budget.interrupted() else "out of time"
        if code in (cp_model.FEASIBLE, cp_model.OPTIMAL):
            found = [int(solver.value(v)) for v in offsets]
            bound = max(int(solver.best_objective_bound), job.max_live)
            message = f"CP-SAT height {int(solver.value(height))} B"
            if code == cp_model.FEASIBLE:  # CP-SAT stops unproven only when cut short
                message += f", not proven minimal ({stop}); every packing is >= {bound} B"
            status = Status.FEASIBLE if code == cp_model.OPTIMAL else Status.TIMEOUT
            return make_allocation(
                self, job.buffers, job.capacity, status, found, budget, max_live=job.max_live,
                lower_bound_bytes=bound, message=message, stats=stats,
            )  # fmt: skip
        if code == cp_model.INFEASIBLE:  # only possible below a start that does not fit
            assert job.capacity is not None and not start.fits
            return self._ended(
                job, budget, Status.INFEASIBLE, start,
                f"no packing fits {job.capacity} B: CP-SAT proved it; the portfolio's "
                f"lowest is {start.height_bytes} B", stats, kept, bound=job.capacity + 1,
            )  # fmt: skip
        within = "" if job.capacity is None else f" within {job.capacity} B"
        if start.fits:
            message = (
                f"{stop}: CP-SAT found no packing{within} lower than the portfolio's "
                f"{start.height_bytes} B, which is kept"
            )
        else:
            message = (
                f"{stop}: CP-SAT found no packing{within}; the portfolio's lowest is "
                f"{start.height_bytes} B"
            )
        return self._ended(job, budget, Status.TIMEOUT, start, message, stats, kept)

    def _ended(
        self,
        job: Prepared,
        budget: Budget,
        status: Status,
        start: AllocationResult | None,
        message: str,
        stats: dict[str, object],
        algorithm: str,
        bound: int | None = None,
    ) -> AllocationResult:
        """This call's result with the start's offsets (or none), its bound kept."""
        lower = bound if start is None else max(bound or 0, start.lower_bound_bytes)
        return make_allocation(
            self, job.buffers, job.capacity, status,
            None if start is None else start.offsets_bytes, budget, max_live=job.max_live,
            lower_bound_bytes=lower, algorithm=algorithm if start is not None else None,
            message=message, stats={"kernels": job.kernels.used, **stats},
        )  # fmt: skip


def _model(
    buffers: Sequence[Buffer],
    capacity: int,
    hint: Sequence[int] | None,
    minimize: bool = False,
) -> tuple[Any, list[Any], Any]:
    """The no-overlap-2D model: (model, offset expressions, height variable).

    Offsets keep every buffer below ``capacity``; ``hint`` (offsets) is CP-SAT's hint;
    with ``minimize`` the objective is the height.
    """
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    height = model.new_int_var(0, capacity, "height")
    offsets: list[Any] = []
    times, spaces = [], []
    for i, b in enumerate(buffers):
        align = b.alignment_bytes
        if b.fixed_offset_bytes is not None:
            offset: Any = model.new_constant(b.fixed_offset_bytes)
        elif align == 1:
            offset = model.new_int_var(0, max(capacity - b.size_bytes, 0), f"o{i}")
        else:
            slots = model.new_int_var(0, max((capacity - b.size_bytes) // align, 0), f"k{i}")
            offset = model.new_int_var(0, max(capacity - b.size_bytes, 0), f"o{i}")
            model.add(offset == align * slots)
        offsets.append(offset)
        if hint is not None and b.fixed_offset_bytes is None:
            model.add_hint(offset, hint[i])
        model.add(height >= offset + b.size_bytes)
        if b.size_bytes == 0:
            continue  # occupies no address: it cannot overlap anything
        times.append(model.new_fixed_size_interval_var(b.lower, b.upper - b.lower, f"t{i}"))
        spaces.append(model.new_fixed_size_interval_var(offset, b.size_bytes, f"s{i}"))
    model.add_no_overlap_2d(times, spaces)
    if minimize:
        model.minimize(height)
    return model, offsets, height


def _solve(model: Any, budget: Budget, seed: int) -> tuple[Any, Any]:
    """Run CP-SAT on one worker within ``budget`` (Ctrl-C and the stop event stop it)."""
    from ortools.sat.python import cp_model

    from memplan.solvers.ilp.cpsat import run_search

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(min(budget.remaining_s(), 1e7), 0.001)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    code = run_search(model, solver, budget)
    return (cp_model.UNKNOWN if code is None else code), solver


def _stats(job: Prepared, solver: Any) -> dict[str, object]:
    """What the call did: CP-SAT's own time, and the kernels of the set-up (and of the
    portfolio's start) as every allocator says them."""
    return {"kernels": job.kernels.used, "cpsat_wall_s": round(float(solver.wall_time), 3)}
