"""The validator: every rule of PROBLEM.md section 3, reported as typed violations.

This is the reference checker every plan passes before memplan writes or reports it.
It is deliberately plain: one function per rule, each returning all its violations.
Address overlaps are found with a sweep over steps that keeps the live residencies
sorted by offset (not an all-pairs loop), so large plans validate in well under a second.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral
from operator import attrgetter

import numpy as np

from memplan.analysis import steps_of
from memplan.errors import InvalidPlanError
from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem


class ViolationKind(enum.Enum):
    """One kind per way a plan can break a validity rule (rule numbers of section 3)."""

    ORDER_NOT_PERMUTATION = "order-not-permutation"  # rule 1
    ORDER_DEPENDENCY = "order-dependency"  # rule 1
    UNKNOWN_TENSOR = "unknown-tensor"  # residency names no in-scope tensor
    BAD_INTERVAL = "bad-interval"  # start >= end, or outside [0, n]
    NOT_RESIDENT = "not-resident"  # rule 2
    PRODUCE_COUNT = "produce-count"  # rule 3: an activation produced 0 or 2+ times
    PRODUCE_STEP = "produce-step"  # rule 3: produce residency not at the producer's step
    PRODUCE_NON_ACTIVATION = "produce-non-activation"  # rule 3: a weight/input "produced"
    LOAD_WITHOUT_COPY = "load-without-copy"  # rule 4
    TIME_OVERLAP = "time-overlap"  # rule 5: two stays of one tensor overlap in time
    BEFORE_PRODUCED = "before-produced"  # rule 5
    MISALIGNED = "misaligned"  # rule 6
    OUT_OF_BOUNDS = "out-of-bounds"  # rule 6: negative offset or past the capacity
    ADDRESS_OVERLAP = "address-overlap"  # rule 6
    OUTPUT_NOT_STORED = "output-not-stored"  # rule 7


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule, naming the tensors and steps involved."""

    kind: ViolationKind  # which rule
    message: str  # readable explanation naming tensors/ops and steps
    tensors: tuple[int, ...] = ()  # tensor ids involved
    steps: tuple[int, ...] = ()  # steps involved

    def __str__(self) -> str:
        return f"[{self.kind.value}] {self.message}"


def validate(problem: Problem, plan: Plan) -> list[Violation]:
    """Return every violation of ``plan`` for ``problem`` (empty when the plan is valid).

    Raises:
        InvalidPlanError: ``problem`` or ``plan`` is not one (a plan file's dict, say:
            ``Plan.from_dict`` reads those).
    """
    if not isinstance(problem, Problem):
        raise InvalidPlanError(f"validate: expected a Problem, got {type(problem).__name__}")
    if not isinstance(plan, Plan):
        raise InvalidPlanError(f"validate: expected a Plan, got {type(plan).__name__}")
    _check_field_types(plan)
    violations = list(_check_order(problem, plan))
    # Coverage and the producer's step need steps, which exist when the order is a
    # permutation.
    order_ok = not any(v.kind is ViolationKind.ORDER_NOT_PERMUTATION for v in violations)
    violations += _check_residency_fields(problem, plan)
    well_formed = [
        r
        for r in plan.residencies
        if 0 <= r.tensor < problem.graph.num_tensors
        and problem.in_scope[r.tensor]
        and 0 <= r.start < r.end <= len(plan.order)
    ]
    by_tensor = _by_tensor(well_formed)
    if order_ok:
        violations += _check_coverage(problem, plan, by_tensor)
    # Without steps, the rules that need the producer's step are left out (not the rest).
    violations += _check_lifecycle(problem, plan, by_tensor, order_ok)
    violations += _check_addresses(problem, well_formed)
    return violations


def _whole(value: object) -> bool:
    """True for an int (or numpy integer); False for a bool, float or string."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_field_types(plan: Plan) -> None:
    """Refuse a hand-built plan whose fields have the wrong types, naming the first one.

    ``Plan`` and ``Residency`` do not check their fields (solvers make millions of
    them); without this, ``arrive="load"`` would silently count as a produce and a
    tuple for a residency would fail deep inside with an AttributeError. The common
    case (every field of an exact type) is checked in a few C-level passes; the loop
    below only runs to name the first culprit.
    """
    residencies = plan.residencies
    if set(map(type, residencies)) <= {Residency}:
        numbers = attrgetter("tensor", "start", "end", "offset")
        if (
            set(map(type, plan.order)) <= {int}
            and set(map(type, itertools.chain.from_iterable(map(numbers, residencies)))) <= {int}
            and set(map(attrgetter("arrive"), residencies)) <= set(Arrive)
            and set(map(attrgetter("leave"), residencies)) <= set(Leave)
        ):
            return
    for step, op in enumerate(plan.order):
        if not _whole(op):
            raise InvalidPlanError(
                f"validate: order[{step}] is {op!r}; the order lists op ids (ints)"
            )
    for k, r in enumerate(plan.residencies):
        if not isinstance(r, Residency):
            raise InvalidPlanError(
                f"validate: residencies[{k}] is a {type(r).__name__}, not a Residency "
                "(Residency(tensor, start, end, offset, Arrive.LOAD, Leave.DROP))"
            )
        for name in ("tensor", "start", "end", "offset"):
            value = getattr(r, name)
            if not _whole(value):
                raise InvalidPlanError(
                    f"validate: residencies[{k}].{name} is {value!r}; it must be an int"
                )
        if not isinstance(r.arrive, Arrive) or not isinstance(r.leave, Leave):
            raise InvalidPlanError(
                f"validate: residencies[{k}] has arrive={r.arrive!r}, leave={r.leave!r}; "
                "use Arrive.PRODUCE or Arrive.LOAD and Leave.DROP or Leave.STORE"
            )


def check_plan(problem: Problem, plan: Plan, what: str = "plan") -> None:
    """Raise :class:`InvalidPlanError` listing the first violations, if any."""
    violations = validate(problem, plan)
    if violations:
        shown = "; ".join(str(v) for v in violations[:3])
        more = f" (and {len(violations) - 3} more)" if len(violations) > 3 else ""
        raise InvalidPlanError(f"{what} is invalid: {len(violations)} violation(s): {shown}{more}")


def _tname(problem: Problem, tensor: int) -> str:
    return repr(problem.graph.tensors[tensor].name)


def _check_order(problem: Problem, plan: Plan) -> Iterator[Violation]:
    graph = problem.graph
    n = graph.num_ops
    if sorted(plan.order) != list(range(n)):
        seen: set[int] = set()
        dup = sorted({o for o in plan.order if o in seen or seen.add(o)})  # type: ignore[func-returns-value]
        missing = sorted(set(range(n)) - set(plan.order))
        yield Violation(
            ViolationKind.ORDER_NOT_PERMUTATION,
            f"order has {len(plan.order)} entries for {n} ops; "
            f"missing {[graph.ops[o].name for o in missing[:5]]}, repeated "
            f"{[graph.ops[o].name for o in dup[:5] if 0 <= o < n]}",
        )
        return
    step = steps_of(plan.order)
    producer = graph.producer
    for op in graph.ops:
        here = step[op.id]
        late = {p for t in op.inputs if (p := producer[t]) is not None and step[p] > here}
        for pred in sorted(late):
            yield Violation(
                ViolationKind.ORDER_DEPENDENCY,
                f"op {op.name!r} at step {here} runs before {graph.ops[pred].name!r} "
                f"(step {step[pred]}), which produces one of its inputs",
                steps=(here, step[pred]),
            )


def _check_residency_fields(problem: Problem, plan: Plan) -> Iterator[Violation]:
    graph = problem.graph
    n = len(plan.order)
    capacity, alignment = problem.capacity_bytes, problem.alignment_bytes
    for r in plan.residencies:
        if not 0 <= r.tensor < graph.num_tensors:
            yield Violation(
                ViolationKind.UNKNOWN_TENSOR,
                f"residency {r} names tensor id {r.tensor}, but {graph.name!r} has tensors "
                f"0 to {graph.num_tensors - 1}",
                tensors=(r.tensor,),
            )
            continue
        if not problem.in_scope[r.tensor]:
            tensor = graph.tensors[r.tensor]
            yield Violation(
                ViolationKind.UNKNOWN_TENSOR,
                f"{tensor.kind.value} {tensor.name!r} has a residency [{r.start}, {r.end}), but "
                f"scope {problem.scope.value} does not place it on chip (weights stream from "
                "DRAM there); remove the residency, or check the plan with scope all",
                tensors=(r.tensor,),
                steps=(r.start,),
            )
            continue
        name = _tname(problem, r.tensor)
        if not 0 <= r.start < r.end <= n:
            yield Violation(
                ViolationKind.BAD_INTERVAL,
                f"tensor {name}: residency [{r.start}, {r.end}) is empty or outside [0, {n})",
                (r.tensor,),
                (r.start, r.end),
            )
        if r.offset % alignment:
            yield Violation(
                ViolationKind.MISALIGNED,
                f"tensor {name}: offset {r.offset} is not a multiple of {alignment} bytes",
                (r.tensor,),
                (r.start,),
            )
        size = graph.tensors[r.tensor].size_bytes
        if r.offset < 0 or r.offset + size > capacity:
            yield Violation(
                ViolationKind.OUT_OF_BOUNDS,
                f"tensor {name}: bytes [{r.offset}, {r.offset + size}) fall outside the "
                f"scratchpad [0, {capacity})",
                (r.tensor,),
                (r.start,),
            )


def _by_tensor(residencies: list[Residency]) -> dict[int, list[Residency]]:
    """Residencies grouped by tensor, each group sorted by (start, end)."""
    by_tensor: dict[int, list[Residency]] = {}
    for r in sorted(residencies, key=attrgetter("tensor", "start", "end")):
        stays = by_tensor.get(r.tensor)
        if stays is None:
            by_tensor[r.tensor] = [r]
        else:
            stays.append(r)
    return by_tensor


def _check_coverage(
    problem: Problem, plan: Plan, by_tensor: dict[int, list[Residency]]
) -> Iterator[Violation]:
    """Look every (step, tensor) an op needs up among the stays sorted by (tensor, start)."""
    graph = problem.graph
    in_scope = problem.in_scope
    need_step: list[int] = []
    need_tensor: list[int] = []
    for step, op_id in enumerate(plan.order):
        op = graph.ops[op_id]
        for t in dict.fromkeys((*op.inputs, *op.outputs)):
            if in_scope[t]:
                need_step.append(step)
                need_tensor.append(t)
    span = len(plan.order) + 1
    stays = [r for group in by_tensor.values() for r in group]  # by (tensor, start, end)
    # A sentinel stay at index 0 (tensor -1) keeps every lookup index in range.
    key = np.array([-1] + [r.tensor * span + r.start for r in stays], dtype=np.int64)
    stay_tensor = np.array([-1] + [r.tensor for r in stays], dtype=np.int64)
    stay_end = np.array([-1] + [r.end for r in stays], dtype=np.int64)
    steps = np.array(need_step, dtype=np.int64)
    tensors = np.array(need_tensor, dtype=np.int64)
    # The tensor's last stay starting at or before the step, or (when a broken plan has
    # overlapping stays of one tensor) the one before it, must reach past the step.
    last = np.searchsorted(key, tensors * span + steps, side="right") - 1
    covered = np.zeros(len(steps), dtype=bool)
    for j in (last, np.maximum(last - 1, 0)):
        covered |= (stay_tensor[j] == tensors) & (stay_end[j] > steps)
    for k in np.flatnonzero(~covered):
        at, tensor = need_step[k], need_tensor[k]
        op = graph.ops[plan.order[at]]
        role = "output" if tensor in op.outputs else "input"
        yield Violation(
            ViolationKind.NOT_RESIDENT,
            f"op {op.name!r} at step {at} needs its {role} {_tname(problem, tensor)} on "
            "chip, but no residency covers that step",
            (tensor,),
            (at,),
        )


def _check_lifecycle(
    problem: Problem, plan: Plan, by_tensor: dict[int, list[Residency]], order_ok: bool = True
) -> Iterator[Violation]:
    """Rules 3, 4, 5 and 7; with ``order_ok`` False (no steps), those that need the step of
    a tensor's producer (PRODUCE_STEP, BEFORE_PRODUCED) are skipped."""
    graph = problem.graph
    step_of = steps_of(plan.order) if order_ok else None
    for tensor in graph.tensors:
        if not problem.in_scope[tensor.id]:
            continue
        stays = by_tensor.get(tensor.id, [])
        name = repr(tensor.name)
        produced = [r for r in stays if r.arrive is Arrive.PRODUCE]
        producer = graph.producer[tensor.id]
        if tensor.kind is TensorKind.ACTIVATION:
            assert producer is not None
            if len(produced) != 1:
                yield Violation(
                    ViolationKind.PRODUCE_COUNT,
                    f"activation {name} has {len(produced)} 'produce' residencies; it needs "
                    "exactly one",
                    (tensor.id,),
                    tuple(r.start for r in produced),
                )
            if step_of is not None:
                made_at = step_of[producer]
                for r in produced:
                    if r.start != made_at:
                        yield Violation(
                            ViolationKind.PRODUCE_STEP,
                            f"activation {name} is produced at step {made_at} but its 'produce' "
                            f"residency starts at step {r.start}",
                            (tensor.id,),
                            (r.start, made_at),
                        )
                for r in stays:
                    if r.start < made_at:
                        yield Violation(
                            ViolationKind.BEFORE_PRODUCED,
                            f"activation {name} is on chip at step {r.start}, before its producer "
                            f"runs at step {made_at}",
                            (tensor.id,),
                            (r.start, made_at),
                        )
        else:
            for r in produced:
                yield Violation(
                    ViolationKind.PRODUCE_NON_ACTIVATION,
                    f"{tensor.kind.value} {name} has a 'produce' residency at step {r.start}; "
                    "only activations are produced, others arrive by 'load'",
                    (tensor.id,),
                    (r.start,),
                )
        for earlier, later in itertools.pairwise(stays):
            if later.start < earlier.end:
                yield Violation(
                    ViolationKind.TIME_OVERLAP,
                    f"tensor {name} has two residencies overlapping in time: "
                    f"[{earlier.start}, {earlier.end}) and [{later.start}, {later.end})",
                    (tensor.id,),
                    (later.start,),
                )
        if tensor.kind is TensorKind.ACTIVATION:
            # A load is backed by a copy when some store ended at or before it starts.
            first_copy = min((s.end for s in stays if s.leave is Leave.STORE), default=None)
            for r in stays:
                if r.arrive is Arrive.LOAD and (first_copy is None or first_copy > r.start):
                    yield Violation(
                        ViolationKind.LOAD_WITHOUT_COPY,
                        f"activation {name} is loaded at step {r.start} but no earlier "
                        "residency stored it to DRAM",
                        (tensor.id,),
                        (r.start,),
                    )
            if tensor.is_output and not any(r.leave is Leave.STORE for r in stays):
                yield Violation(
                    ViolationKind.OUTPUT_NOT_STORED,
                    f"graph output {name} is never stored to DRAM",
                    (tensor.id,),
                )


def _check_addresses(problem: Problem, residencies: list[Residency]) -> Iterator[Violation]:
    """Sweep over steps; live residencies are kept sorted by offset."""
    sizes = [t.size_bytes for t in problem.graph.tensors]
    events = sorted(
        [(r.start, 1, i) for i, r in enumerate(residencies)]
        + [(r.end, 0, i) for i, r in enumerate(residencies)]
    )  # at one step, ends (0) come before starts (1): half-open intervals
    live_keys: list[tuple[int, int]] = []  # (offset, index), sorted
    max_size = max(sizes, default=0)
    for step, is_start, i in events:
        r = residencies[i]
        key = (r.offset, i)
        if not is_start:
            pos = bisect.bisect_left(live_keys, key)
            del live_keys[pos]
            continue
        low, high = r.offset, r.offset + sizes[r.tensor]
        pos = bisect.bisect_left(live_keys, key)
        # Right: every live stay starting below our end overlaps (they start >= low).
        j = pos
        while j < len(live_keys) and live_keys[j][0] < high:
            yield _overlap(problem, r, residencies[live_keys[j][1]], step)
            j += 1
        # Left: a stay starting below `low` overlaps when it reaches past `low`; none
        # starting at or below low - max_size can.
        j = pos - 1
        while j >= 0 and live_keys[j][0] > low - max_size:
            other = residencies[live_keys[j][1]]
            if other.offset + sizes[other.tensor] > low:
                yield _overlap(problem, r, other, step)
            j -= 1
        live_keys.insert(pos, key)


def _overlap(problem: Problem, a: Residency, b: Residency, step: int) -> Violation:
    sizes = problem.graph.tensors
    return Violation(
        ViolationKind.ADDRESS_OVERLAP,
        f"at step {step}, tensor {_tname(problem, a.tensor)} at bytes "
        f"[{a.offset}, {a.offset + sizes[a.tensor].size_bytes}) overlaps tensor "
        f"{_tname(problem, b.tensor)} at [{b.offset}, {b.offset + sizes[b.tensor].size_bytes})",
        (a.tensor, b.tensor),
        (step,),
    )
