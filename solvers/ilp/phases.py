"""Time budgeting of the ``ilp`` solver's phases, and model-size estimates.

A solve is a chain of phases: the greedy incumbent, no-spill packings, fixed-order warm
starts (free mode), the main model's build and search, and polishing. Each phase gets a
share of what remains, and the model phases are sized first: a model whose estimated
build does not fit the time left is skipped (the best incumbent comes back, with a
message naming what was skipped), and a build that runs late is abandoned at its
deadline. A search gets the wall time that remains (less ENGINE_MARGIN_S) as its engine
limit, so the engine's own presolve stops in time too (CP-SAT's presolve does not answer
a stop request), and a CP-SAT search that answers neither is abandoned. The last
:func:`finish_reserve_s` seconds turn the best solution into a checked result.

The promise: a solve returns within its time limit plus
:data:`memplan.solver.RETURN_GRACE_S` on any graph, once imports and the allocator's
compiled kernels are loaded (the first run in a fresh checkout compiles them for tens of
seconds). Measured at 60 s on 76- to 2,070-op
workloads with a load average of 5 to 8 on 2 cores: at most 59.5 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from memplan.solver import Budget
from memplan.solvers.ilp.model import Structure
from memplan.solvers.ilp.outcome import Outcome

#: Seconds the greedy incumbent may take at most (it may take all the time there is below
#: that: with a fifth of a 3-s limit, greedy ran out of time on a 182-op graph under load
#: and the ilp returned spill-everything, 22x greedy's traffic at the same limit; greedy
#: takes what it needs, milliseconds on the graphs the ilp proves).
GREEDY_MAX_S = 10.0
#: Share of the remaining time (at most ALLOC_MAX_S s) for packing a no-spill incumbent.
ALLOC_SHARE, ALLOC_MAX_S = 0.05, 5.0
#: Seconds the greedy portfolio may take for a no-spill incumbent when no time is left for
#: more (milliseconds on the graphs the ilp solves; 8.7 s past a 5-s limit on one input
#: read by 10,000 ops).
NO_SPILL_PORTFOLIO_S = 1.0
#: Share of the time limit (at most FIXED_MAX_S s of work) per fixed-order warm start.
FIXED_SHARE, FIXED_MAX_S = 0.1, 20.0
#: Share of the remaining time (at most FLOOR_MAX_S s) for the crowded-region lower bound
#: of :mod:`memplan.traffic_bound`, computed before the search (0.01 to 1.2 s on 75- to
#: 1,230-op workloads; 30 s uncut on randwire_ws_large, whose cut search falls back to
#: each region's largest working set).
FLOOR_SHARE, FLOOR_MAX_S = 0.05, 5.0
#: Share of the remaining time all fixed-order warm starts together may take.
WARM_TOTAL_SHARE = 0.4
#: Work limit (deterministic seconds) of the single-worker polishing of an optimum.
POLISH_MAX_S = 5.0
#: A model is built only when its estimated build takes at most this share of the rest.
BUILD_SHARE = 0.5

#: Seconds to build one CP-SAT variable (measured on 2 shared cores, with slack).
CPSAT_S_PER_VARIABLE = 1.5e-4
#: Seconds to build one MILP row with PuLP and hand it to HiGHS (measured, with slack).
MILP_S_PER_ROW = 3e-4
#: Of which handing one row over to HiGHS (not interruptible) takes about this long.
MILP_HANDOVER_S_PER_ROW = 6e-5
#: Rows above which a MILP is not built at all (PuLP keeps about 1 KB per row in memory).
MILP_MAX_ROWS = 2_000_000
#: Engines overrun their own time limit by up to about this much (CP-SAT finishing a
#: presolve step, HiGHS a node), so their limit is set this much below the time left.
ENGINE_MARGIN_S = 1.0
#: A CP-SAT search still running this long after its budget ended is abandoned.
ABANDON_AFTER_S = 0.5
#: Finishing a result (slots to plan, validation, cost): seconds, and seconds per tensor.
FINISH_BASE_S, FINISH_PER_TENSOR_S = 0.2, 2e-4


class BuildTimeout(Exception):
    """Raised inside a model build that reached its deadline (caught by the backend)."""


def check_deadline(budget: Budget) -> None:
    """Raise :class:`BuildTimeout` once ``budget`` is used up or stopped."""
    if budget.should_stop():
        raise BuildTimeout


def check_handover(budget: Budget, rows: int) -> None:
    """Raise :class:`BuildTimeout` when a built MILP of ``rows`` rows cannot be handed to
    the engine (a step that cannot be interrupted) in the time left."""
    if budget.remaining_s() < MILP_HANDOVER_S_PER_ROW * rows:
        raise BuildTimeout


def engine_limit_s(budget: Budget) -> float:
    """The time limit to give an engine now (infinite without a limit)."""
    remaining = budget.remaining_s()
    if math.isinf(remaining):
        return remaining
    return max(0.01, remaining - min(ENGINE_MARGIN_S, 0.2 * remaining))


def sub_budget(budget: Budget, seconds: float) -> Budget:
    """A budget of at most ``seconds`` (never past ``budget``) sharing its stop event and
    its progress display."""
    limit = max(0.0, min(seconds, budget.remaining_s()))
    return Budget(time_limit_s=limit, stop_event=budget.stop_event, on_progress=budget.on_progress)


def finish_reserve_s(struct: Structure) -> float:
    """Seconds kept at the end of a solve to turn the best solution into a result."""
    return FINISH_BASE_S + FINISH_PER_TENSOR_S * len(struct.tensors)


def cpsat_traffic_variables(struct: Structure) -> int:
    """Variables of the CP-SAT traffic model: five per slot, one per (read, slot)."""
    return sum(s.num_slots * (5 + len(s.consumers)) for s in struct.tensors) + struct.n_steps


def milp_traffic_rows(struct: Structure) -> int:
    """Rows of the time-indexed traffic MILP, dominated by the pairwise big-M rows."""
    cells = sum(s.window[1] - s.window[0] for s in struct.tensors)
    reads = sum(_window_length(struct, o) for s in struct.tensors for o in s.consumers)
    pairs = sum(h * (h - 1) // 2 for h in _tensors_per_step(struct))
    return 6 * cells + reads + 2 * pairs + _precedence_rows(struct) + 2 * struct.n_steps


def milp_peak_rows(struct: Structure) -> int:
    """Rows of the time-indexed peak MILP."""
    rows = 0
    for s in struct.tensors:
        # One row per (first toucher, last toucher) pair and step, as the model builds.
        pairs = max(1, len(s.consumers)) if s.producer is not None else len(s.consumers) ** 2
        rows += (s.window[1] - s.window[0]) * pairs
    return rows + _precedence_rows(struct) + 2 * struct.n_steps


def build_estimate_s(backend: str, struct: Structure, objective: str = "traffic") -> float:
    """Estimated seconds to build a model (infinite when it is too big to build at all)."""
    if backend == "cpsat":
        if objective == "peak":  # start, end, length and interval per tensor
            return CPSAT_S_PER_VARIABLE * (4 * len(struct.tensors) + struct.n_steps)
        return CPSAT_S_PER_VARIABLE * cpsat_traffic_variables(struct)
    rows = milp_traffic_rows(struct) if objective == "traffic" else milp_peak_rows(struct)
    return math.inf if rows > MILP_MAX_ROWS else MILP_S_PER_ROW * rows


def skip_reason(
    backend: str, struct: Structure, budget: Budget, objective: str = "traffic"
) -> Outcome | None:
    """A SKIPPED outcome when a model cannot be built and searched in the time left (or
    at all), else None."""
    estimate = build_estimate_s(backend, struct, objective)
    remaining = budget.remaining_s()
    if math.isinf(estimate):
        return Outcome.skipped(
            f"the {backend} model would have over {MILP_MAX_ROWS:,} rows", out_of_time=False
        )
    if estimate > BUILD_SHARE * remaining:
        why = f"the {backend} model needs about {estimate:.1f} s to build, {remaining:.1f} s left"
        if budget.time_limit_s is not None:
            # Say how to fix it: a limit that leaves the build its share.
            enough = budget.time_limit_s - remaining + estimate / BUILD_SHARE
            why += f" (a time limit of about {math.ceil(enough)} s or more lets it search)"
        return Outcome.skipped(why, out_of_time=True)
    return None


def _precedence_rows(struct: Structure) -> int:
    """Precedence rows: per edge, the steps where both ends' windows overlap."""
    if struct.fixed_order is not None:
        return 0
    windows = struct.op_windows
    return sum(max(0, windows[p][1] - windows[c][0] + 1) for p, c in struct.edges)


def _window_length(struct: Structure, op: int) -> int:
    lo, hi = struct.op_windows[op]
    return hi - lo + 1


def _tensors_per_step(struct: Structure) -> Sequence[int]:
    """How many tensor windows contain each step."""
    delta = [0] * (struct.n_steps + 1)
    for s in struct.tensors:
        delta[s.window[0]] += 1
        delta[s.window[1]] -= 1
    counts, running = [], 0
    for t in range(struct.n_steps):
        running += delta[t]
        counts.append(running)
    return counts
