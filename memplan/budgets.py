"""Scratchpad budgets (PROBLEM.md section 5): ``MR``, ``MH``, ``MP``, sizes, fractions.

A budget spec is one of:

- ``MR``: the largest working set of one op (below it no plan exists);
- ``MP``: the minimum peak over orders with no spilling (proven when the min-peak search
  of :mod:`memplan.schedule` finishes or a proven value is supplied, else an upper bound);
- ``MH``: ``(MR + MP) / 2``;
- a byte quantity: ``65536``, ``512KiB``, ``2MB``;
- a multiple of a named budget: ``0.5*MP``, ``1.25*MR``;
- ``accelerator``: the capacity of the problem's accelerator spec.

Budgets are rounded down to the alignment: the solvers place tensors by their aligned
sizes, so they leave an unaligned tail of scratchpad empty, and their lower bounds hold
only at an aligned capacity (:func:`memplan.solver.make_result` drops them elsewhere).
Sizes and multiples are computed exactly (no float rounding) and may not exceed
:data:`memplan.units.MAX_BYTES` (2^63-1 bytes).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from memplan.analysis import default_min_peak_schedule
from memplan.errors import ConfigError
from memplan.frozen import refuse_assignment
from memplan.ir import Graph
from memplan.problem import Problem, require_problem
from memplan.units import MAX_BYTES, brief_repr, parse_bytes

NAMED_BUDGETS = ("MR", "MH", "MP")
#: The budget spec meaning "the capacity of the problem's accelerator" (docs/budgets.md).
ACCELERATOR_BUDGET = "accelerator"
#: Every form of a budget spec, for messages.
_FORMS = (
    "MR, MH, MP, a fraction such as '0.5*MP', a size such as '65536', '512KiB' or '2MB', "
    f"or '{ACCELERATOR_BUDGET}' (the accelerator's own capacity)"
)
_MULTIPLE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*\*\s*(MR|MH|MP)\s*$", re.IGNORECASE)


@refuse_assignment("make another: dataclasses.replace(estimate, ...)")
@dataclass(frozen=True, slots=True)
class PeakEstimate:
    """A value of M_P and how it is known."""

    value_bytes: int  # minimum peak live bytes (aligned sizes, no spilling)
    proven: bool  # True when an exact solver proved it optimal
    source: str  # what computed it, e.g. "heuristic min-peak order"


#: Supplies M_P for a problem; the default uses the heuristic order.
PeakProvider = Callable[[Problem], PeakEstimate]


def heuristic_min_peak(problem: Problem) -> PeakEstimate:
    """M_P from :func:`memplan.analysis.default_min_peak_schedule` (no plug-in needed).

    The search starts from :func:`memplan.analysis.min_peak_order` and is limited by a
    number of search states (reproducible); ``proven`` is True when it proves the order
    optimal, otherwise the value is an upper bound.
    """
    return _min_peak_estimate(problem.graph, problem.aligned_sizes_bytes, problem.in_scope)


@functools.lru_cache(maxsize=16)
def _min_peak_estimate(
    graph: Graph, sizes_bytes: tuple[int, ...], in_scope: tuple[bool, ...]
) -> PeakEstimate:
    schedule = default_min_peak_schedule(graph, sizes_bytes, in_scope)
    if schedule.proven:
        return PeakEstimate(schedule.peak_bytes, True, "min-peak search (proven optimal)")
    return PeakEstimate(
        schedule.peak_bytes,
        False,
        f"heuristic min-peak search (lower bound {schedule.lower_bound_bytes} B)",
    )


@refuse_assignment("make another: resolve_budget(spec, problem)")
@dataclass(frozen=True, slots=True)
class ResolvedBudget:
    """A budget spec turned into bytes."""

    spec: str  # what the user wrote, e.g. "MH" or "512KiB"
    capacity_bytes: int  # the scratchpad size it means, aligned down
    note: str  # how it was computed, e.g. "MP (heuristic upper bound)"


def is_budget_spec(text: str) -> bool:
    """Whether ``text`` parses as a budget spec (a size above 2^63-1 bytes does not)."""
    try:
        _parse(text)
    except ConfigError:
        return False
    return True


def _parse(text: str) -> tuple[Fraction, str | None, int | None]:
    """(exact factor, named budget or None, bytes or None)."""
    if not isinstance(text, str):
        raise ConfigError(f"scratchpad {brief_repr(text)} is not a budget; pass a string: {_FORMS}")
    stripped = text.strip()
    if stripped.upper() in NAMED_BUDGETS:
        return Fraction(1), stripped.upper(), None
    if stripped.lower() == ACCELERATOR_BUDGET:
        return Fraction(1), ACCELERATOR_BUDGET, None
    match = _MULTIPLE.match(stripped)
    if match:
        return Fraction(Decimal(match.group(1))), match.group(2).upper(), None
    try:
        size = parse_bytes(stripped, "scratchpad", max_bytes=None)
    except ConfigError:
        raise ConfigError(f"scratchpad {brief_repr(text)} is not a budget; use {_FORMS}") from None
    _check_max(text, size)
    return Fraction(1), None, size


def budget_identity(text: str) -> tuple[Fraction, str | None, int | None]:
    """What a budget spec means, whatever its spelling: ``MR``, ``mr`` and ``1*MR`` are
    one budget, as are ``512KiB`` and ``524288``.

    Raises:
        ConfigError: ``text`` is no budget spec (the message lists every form).
    """
    return _parse(text)


def _check_max(text: str, capacity_bytes: int | Fraction) -> None:
    """Refuse a budget above :data:`~memplan.units.MAX_BYTES`, naming the spec."""
    if capacity_bytes > MAX_BYTES:
        raise ConfigError(
            f"scratchpad {brief_repr(text)} is above the largest scratchpad, "
            f"2^63-1 = {MAX_BYTES} bytes"
        )


def resolve_budget(
    text: str, problem: Problem, peak_provider: PeakProvider | None = None
) -> ResolvedBudget:
    """Turn a budget spec into a capacity in bytes for ``problem``'s graph and scope.

    Raises:
        ConfigError: ``text`` is no budget spec (the message lists every form), a size
            above 2^63-1 bytes, or ``problem`` is not a Problem.
    """
    require_problem(problem, "resolve_budget")
    factor, named, size = _parse(text)
    alignment = problem.alignment_bytes
    if size is not None:
        return ResolvedBudget(text, size // alignment * alignment, "absolute size")
    if named == ACCELERATOR_BUDGET:
        capacity = problem.accelerator.capacity_bytes // alignment * alignment
        return ResolvedBudget(
            text, capacity, f"capacity of accelerator {problem.accelerator.name!r}"
        )
    m_r = problem.min_resident_bytes
    value: Fraction
    if named == "MR":
        value, note = Fraction(m_r), "MR"
    else:
        peak = (peak_provider or heuristic_min_peak)(problem)
        kind = "proven" if peak.proven else "heuristic upper bound"
        if named == "MP":
            value, note = Fraction(peak.value_bytes), f"MP ({kind})"
        else:
            value, note = Fraction(m_r + peak.value_bytes, 2), f"MH = (MR + MP) / 2, MP {kind}"
    capacity = math.floor(value * factor)
    _check_max(text, capacity)
    if factor != 1:  # a huge factor of a zero M_R is allowed but has no float form
        shown = f"{float(factor):g}" if factor < 10**300 else "more than 1e300"
        note = f"{shown} x {note}"
    return ResolvedBudget(text, capacity // alignment * alignment, note)
