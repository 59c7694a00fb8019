"""Scratchpad budgets (PROBLEM.md section 5): ``MR``, ``MH``, ``MP``, sizes, fractions.

A budget spec is one of:

- ``MR``: the largest working set of one op (below it no plan exists);
- ``MP``: the minimum peak over orders with no spilling (proven when the min-peak search
  of :mod:`memplan.schedule` finishes or a proven value is supplied, else an upper bound);
- ``MH``: ``(MR + MP) / 2``;
- a byte quantity: ``65536``, ``512KiB``, ``2MB``;
- a multiple of a named budget: ``0.5*MP``, ``1.25*MR``.

Budgets are rounded down to the alignment (an unaligned tail of scratchpad is unusable).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from memplan.analysis import default_min_peak_schedule
from memplan.errors import ConfigError
from memplan.ir import Graph
from memplan.problem import Problem
from memplan.units import parse_bytes

NAMED_BUDGETS = ("MR", "MH", "MP")
_MULTIPLE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*\*\s*(MR|MH|MP)\s*$", re.IGNORECASE)


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


@dataclass(frozen=True, slots=True)
class ResolvedBudget:
    """A budget spec turned into bytes."""

    spec: str  # what the user wrote, e.g. "MH" or "512KiB"
    capacity_bytes: int  # the scratchpad size it means, aligned down
    note: str  # how it was computed, e.g. "MP (heuristic upper bound)"


def is_budget_spec(text: str) -> bool:
    """Whether ``text`` parses as a budget spec."""
    try:
        _parse(text)
    except ConfigError:
        return False
    return True


def _parse(text: str) -> tuple[float, str | None, int | None]:
    """(factor, named budget or None, bytes or None)."""
    stripped = text.strip()
    if stripped.upper() in NAMED_BUDGETS:
        return 1.0, stripped.upper(), None
    match = _MULTIPLE.match(stripped)
    if match:
        return float(match.group(1)), match.group(2).upper(), None
    try:
        return 1.0, None, parse_bytes(stripped, "scratchpad")
    except ConfigError:
        raise ConfigError(
            f"scratchpad {text!r} is not a budget; use MR, MH, MP, a fraction such as "
            "0.5*MP, or a size such as 65536, 512KiB or 2MB"
        ) from None


def resolve_budget(
    text: str, problem: Problem, peak_provider: PeakProvider | None = None
) -> ResolvedBudget:
    """Turn a budget spec into a capacity in bytes for ``problem``'s graph and scope."""
    factor, named, size = _parse(text)
    alignment = problem.alignment_bytes
    if size is not None:
        return ResolvedBudget(text, size // alignment * alignment, "absolute size")
    m_r = problem.min_resident_bytes
    if named == "MR":
        value, note = float(m_r), "MR"
    else:
        peak = (peak_provider or heuristic_min_peak)(problem)
        kind = "proven" if peak.proven else "heuristic upper bound"
        if named == "MP":
            value, note = float(peak.value_bytes), f"MP ({kind})"
        else:
            value, note = (m_r + peak.value_bytes) / 2, f"MH = (MR + MP) / 2, MP {kind}"
    if factor != 1.0:
        note = f"{factor:g} x {note}"
    capacity = int(value * factor) // alignment * alignment
    return ResolvedBudget(text, capacity, note)
