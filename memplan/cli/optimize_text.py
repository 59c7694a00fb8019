"""What ``memplan optimize`` prints: the header before the solve, the result after it.

Lines are ``label  value``, wrapped to 80 columns with the value's continuation
indented under it. Sizes read ``2.72 MiB (2,847,488 B)``; a missing bound or gap
reads "–", never 0 and never "None".
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Any

from memplan.cost import Cost
from memplan.units import format_bytes, format_joules

if TYPE_CHECKING:
    from memplan.budgets import ResolvedBudget
    from memplan.io.loading import LoadedModel
    from memplan.plan import Plan
    from memplan.problem import Problem
    from memplan.solver import SolveResult

#: Width the text is wrapped to, in columns.
TEXT_WIDTH = 80
#: What a missing value (no bound, no gap) prints as.
MISSING = "–"
_HEADER_LABEL = 13
_RESULT_LABEL = 24


def _b(n: int | None) -> str:
    """Bytes as ``2.72 MiB (2,847,488 B)``; small ones as ``64 B``; None as "–"."""
    if n is None:
        return MISSING
    return f"{n} B" if abs(n) < 1024 else f"{format_bytes(n)} ({n:,} B)"


#: A number and its unit, kept on one line when wrapping.
_QUANTITY = re.compile(r"(\d) (B|KiB|MiB|GiB|TiB|ms|mJ|s)\b")
_GLUE = "\x00"


def _line(label: str, value: str, label_width: int) -> str:
    """``label`` padded, then ``value`` wrapped to :data:`TEXT_WIDTH` under itself."""
    text = textwrap.fill(
        _QUANTITY.sub(rf"\1{_GLUE}\2", value),
        width=TEXT_WIDTH,
        initial_indent=label.ljust(label_width),
        subsequent_indent=" " * label_width,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return text.replace(_GLUE, " ")


def _budget_text(spec: str, note: str) -> str:
    if note.upper().startswith(spec.strip().upper()):
        return note
    return f"{spec} ({note})"


def _scratchpad_text(problem: Problem, budget_spec: ResolvedBudget) -> str:
    """``2.72 MiB (2,847,488 B) = MH = ...; MR = ...`` (MR left out when it is the budget)."""
    text = f"{_b(problem.capacity_bytes)} = {_budget_text(budget_spec.spec, budget_spec.note)}"
    if budget_spec.spec.strip().upper() != "MR":
        text += f"; MR = {_b(problem.min_resident_bytes)}"
    return text


def time_limit_text(time_limit_s: float | None) -> str:
    """``60 s``, or ``none`` without a limit."""
    return "none" if time_limit_s is None else f"{time_limit_s:g} s"


def format_header(
    problem: Problem,
    loaded: LoadedModel,
    budget_spec: ResolvedBudget,
    solver: Any,
    time_limit_s: float | None,
) -> str:
    """What is about to be solved: model, import, accelerator, budget, solver, limit."""
    from memplan.options import option_values

    graph = problem.graph
    model = f"{graph.name}: {graph.num_ops} ops, {graph.num_tensors} tensors"
    if loaded.path is not None:
        model += f", from {loaded.path}"
    lines = [_line("model", model, _HEADER_LABEL)]
    if loaded.import_options is not None:
        flags = loaded.import_options.flags()
        how = " ".join(flags) if flags else "the model's own shapes and element types"
        lines.append(_line("import", how + ("" if "--no-aliases" in flags else "; views aliased"),
                           _HEADER_LABEL))  # fmt: skip
    options = ", ".join(f"{k}={v}" for k, v in option_values(solver).items())
    lines += [
        _line(
            "accelerator",
            f"{problem.accelerator.name} (alignment {problem.alignment_bytes} B), "
            f"scope {problem.scope.value}",
            _HEADER_LABEL,
        ),
        _line("scratchpad", _scratchpad_text(problem, budget_spec), _HEADER_LABEL),
        _line("solver", f"{solver.name} ({options})" if options else solver.name, _HEADER_LABEL),
        _line("time limit", time_limit_text(time_limit_s), _HEADER_LABEL),
    ]
    return "\n".join(lines)


def summarize(
    result: SolveResult,
    problem: Problem,
    loaded: LoadedModel,
    budget_spec: ResolvedBudget,
    interrupted: bool = False,
    written: dict[str, str] | None = None,
    time_limit_s: float | None = None,
    *,
    stopped_by: str | None = None,
) -> dict[str, Any]:
    """The optimize summary as a JSON-ready dictionary (sizes in bytes, times in seconds).

    ``stopped_by`` names the signal that interrupted the solve ("Ctrl-C" when only
    ``interrupted`` is given)."""
    graph = problem.graph
    options = loaded.import_options
    return {
        "model": {
            "name": graph.name,
            "file": str(loaded.path) if loaded.path is not None else None,
            "sha256": loaded.sha256,
            "ops": graph.num_ops,
            "tensors": graph.num_tensors,
            "import": options.to_dict() if options is not None else None,
        },
        "accelerator": problem.accelerator.name,
        "alignment_bytes": problem.alignment_bytes,
        "scope": problem.scope.value,
        "budget": {
            "spec": budget_spec.spec,
            "capacity_bytes": problem.capacity_bytes,
            "note": budget_spec.note,
        },
        "min_resident_bytes": problem.min_resident_bytes,
        "time_limit_s": time_limit_s,
        **result.to_dict(),
        "interrupted": interrupted,
        "interrupted_by": (stopped_by or "Ctrl-C") if interrupted else None,
        "written": dict(written or {}),
    }


#: A timed-out solve that took less than this share of its limit gave up early.
EARLY_SHARE = 0.5


def _status_text(summary: dict[str, Any]) -> str:
    status = str(summary["status"])
    if summary["interrupted"]:
        return f"{status} (interrupted by {summary.get('interrupted_by') or 'Ctrl-C'})"
    limit_s = summary.get("time_limit_s")
    if status == "timeout" and limit_s is not None:
        limit = time_limit_text(limit_s)
        wall_s = summary.get("wall_s")
        if isinstance(wall_s, (int, float)) and wall_s < EARLY_SHARE * limit_s:
            # A solver that foresees running out (an ilp model too large to build in the
            # time left) returns early: the limit was not reached.
            return f"{status} (gave up after {wall_s:.3g} s of the {limit} limit: see message)"
        return f"{status} (time limit {limit} reached)"
    return status


def format_result(summary: dict[str, Any]) -> str:
    """The text form of :func:`summarize`'s result part (the header came before)."""
    cost = summary["cost"]
    lines = [_line("status", _status_text(summary), _HEADER_LABEL)]

    def add(label: str, value: str) -> None:
        lines.append(_line(label, value, _RESULT_LABEL))

    if cost is not None:
        add("non-compulsory traffic", _b(cost["non_compulsory_bytes"]))
        add("compulsory traffic", _b(cost["compulsory_bytes"]))
        add(
            "total traffic",
            f"{_b(cost['traffic_bytes'])}: loads {format_bytes(cost['loaded_bytes'])}, "
            f"stores {format_bytes(cost['stored_bytes'])}, streamed weights "
            f"{format_bytes(cost['streamed_weight_bytes'])}",
        )
        add("peak", f"{_b(cost['peak_bytes'])} (max live {format_bytes(cost['max_live_bytes'])})")
        add("latency", Cost.from_dict(cost).latency_text(4))
        add("energy", format_joules(cost["energy_j"]))
    bound, gap = summary["lower_bound_bytes"], summary["gap"]
    add(
        "lower bound",
        f"{MISSING} (none proven)" if bound is None else f"{_b(bound)} non-compulsory",
    )
    if cost is not None:
        add("gap", MISSING if gap is None else f"{gap:.1%}")
    add("wall time", f"{summary['wall_s']:.3f} s")
    if summary["message"]:
        add("message", str(summary["message"]))
    for what, path in summary["written"].items():
        lines.append(_line(f"wrote {what}", str(path), _HEADER_LABEL))
    return "\n".join(lines)


# ------------------------------------------------------------------- --map
def _map_name_width(problem: Problem, plan: Plan) -> int:
    """The tensor-name column of :func:`memplan.plan.memory_map` (at most 24)."""
    names = (len(problem.graph.tensors[r.tensor].name) for r in plan.residencies)
    return min(24, max(names, default=4))


def map_width(problem: Problem, plan: Plan, columns: int) -> int:
    """Step columns of the memory map so that its rows fit ``columns`` (at least 16)."""
    # A row: offset (10), " +", size (9), " ", name, " |", steps, "|".
    return max(16, columns - 25 - _map_name_width(problem, plan))


def map_legend(steps: int, width: int) -> str:
    """What the memory map's rows and characters mean."""
    per_column = max(1.0, steps / width)
    scale = "one step per column" if per_column == 1 else f"about {per_column:.3g} steps per column"
    return textwrap.fill(
        "legend: one row per residency (a tensor's stay on chip), sorted by offset: its "
        "offset and +size in bytes, the tensor, then the steps left to right "
        f"({scale}): '#' on chip, 'L' loaded from DRAM at that step, 'S' stored to DRAM "
        "after that step, blank: not on chip at that step.",
        width=TEXT_WIDTH,
    )
