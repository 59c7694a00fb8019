"""What a solver returns (PROBLEM.md section 3): an order and the residencies.

A *residency* is one stay of one tensor in the scratchpad, over the half-open step
interval ``[start, end)``, at a fixed ``offset``. It begins by being produced (at the
producer's step) or loaded from DRAM, and ends by being dropped or stored::

    step:        0     1     2     3     4     5
    order:      op3   op0   op1   op4   op2   op5
    t7 (2 KiB)  [produce ─────────)store           residency 1: [0, 3) at offset 0
    t7                      [load ──────)drop      residency 2: [3, 5) at offset 4096

A tensor spilled and reloaded has several residencies, possibly at different offsets.
"""

from __future__ import annotations

import enum
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, InputFormatError, InvalidPlanError
from memplan.frozen import refuse_assignment
from memplan.ir import Graph, OpId, TensorId
from memplan.jsonfields import JsonObject

if TYPE_CHECKING:
    import numpy as np


class Arrive(enum.Enum):
    """How a residency begins."""

    PRODUCE = "produce"  # the tensor's producer writes it at step `start`
    LOAD = "load"  # copied in from DRAM before step `start`


class Leave(enum.Enum):
    """How a residency ends."""

    DROP = "drop"  # the space is freed, nothing is copied
    STORE = "store"  # copied out to DRAM after step `end - 1`


_ARRIVALS = tuple(a.value for a in Arrive)  # the values of a residency's "arrive" field
_LEAVINGS = tuple(v.value for v in Leave)  # the values of a residency's "leave" field


def _member(kind: type[Arrive] | type[Leave], value: object, field: str) -> Arrive | Leave:
    """``value`` as a member of ``kind`` (its own value as a string is parsed), else an
    :class:`InvalidPlanError` listing the allowed ones."""
    if isinstance(value, str):
        for member in kind:
            if member.value == value:
                return member
    allowed = ", ".join(f"{kind.__name__}.{m.name} ({m.value!r})" for m in kind)
    raise InvalidPlanError(f"Residency: {field}={value!r} is not allowed; use one of {allowed}")


@refuse_assignment("make another: dataclasses.replace(residency, offset=...)")
@dataclass(frozen=True, slots=True, order=True)
class Residency:
    """One stay of one tensor in the scratchpad, steps ``[start, end)``."""

    tensor: TensorId  # which tensor
    start: int  # first step it is on chip
    end: int  # first step it is no longer on chip (exclusive)
    offset: int  # scratchpad address in bytes
    arrive: Arrive = Arrive.PRODUCE  # produced on chip, or loaded from DRAM
    leave: Leave = Leave.DROP  # dropped, or stored to DRAM when it ends

    def __post_init__(self) -> None:
        # Solvers make millions of residencies: two identity tests on the common path.
        # A string ("load") is parsed, as Problem parses its scope; anything else (None,
        # "x") was kept and then scored as a produce/drop by evaluate.
        if self.arrive.__class__ is not Arrive:
            object.__setattr__(self, "arrive", _member(Arrive, self.arrive, "arrive"))
        if self.leave.__class__ is not Leave:
            object.__setattr__(self, "leave", _member(Leave, self.leave, "leave"))

    def covers(self, step: int) -> bool:
        """Whether the tensor is on chip at ``step``."""
        return self.start <= step < self.end

    def __str__(self) -> str:
        return (
            f"t{self.tensor} [{self.start}, {self.end}) @ {self.offset} "
            f"{self.arrive.value}->{self.leave.value}"
        )


def _as_tuple(value: object, field: str, items: str) -> tuple[Any, ...]:
    """``value`` as a tuple, or an :class:`InvalidPlanError` naming ``field``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidPlanError(
            f"Plan: {field} must be a sequence of {items}, got {type(value).__name__} {value!r:.60}"
        )
    return tuple(value)


@refuse_assignment("make another: Plan.make(order, residencies)")
@dataclass(frozen=True, slots=True)
class Plan:
    """A schedule and the scratchpad stays of every in-scope tensor."""

    order: tuple[OpId, ...]  # order[t] is the op run at step t
    residencies: tuple[Residency, ...]  # sorted by (tensor, start)

    def __post_init__(self) -> None:
        # A list (or range, array) is made a tuple, so that a plan built from a list
        # equals the same plan built from a tuple and can be hashed. Two type tests on
        # the common path; the items are checked by validate and evaluate.
        if self.order.__class__ is not tuple:
            object.__setattr__(self, "order", _as_tuple(self.order, "order", "op ids"))
        if self.residencies.__class__ is not tuple:
            stays = _as_tuple(self.residencies, "residencies", "Residency objects")
            object.__setattr__(self, "residencies", stays)

    @staticmethod
    def make(order: Sequence[int], residencies: Sequence[Residency]) -> Plan:
        """Build a plan with residencies in canonical (tensor, start) order.

        Raises:
            InvalidPlanError: ``order`` is not a sequence of op ids (whole numbers), or
                ``residencies`` is not a sequence of :class:`Residency`.
        """
        if isinstance(order, (str, bytes)) or not isinstance(order, Iterable):
            raise InvalidPlanError(f"Plan.make: order must be a list of op ids, got {order!r:.60}")
        # One pass each, as before: a plan is made for every game and window.
        try:
            ops = tuple(OpId(operator.index(o)) for o in order)
        except TypeError:
            raise InvalidPlanError("Plan.make: order must hold op ids (whole numbers)") from None
        try:
            stays = tuple(sorted(residencies, key=lambda r: (r.tensor, r.start, r.end)))
        except (TypeError, AttributeError):
            raise InvalidPlanError("Plan.make: residencies must be a list of Residency") from None
        return Plan(ops, stays)

    def residencies_of(self, tensor: TensorId) -> list[Residency]:
        """The residencies of one tensor, by start step."""
        return [r for r in self.residencies if r.tensor == tensor]

    def to_dict(self, graph: Graph) -> dict[str, Any]:
        """JSON-ready form naming ops and tensors (stable across id renumbering)."""
        return {
            "order": [graph.ops[o].name for o in self.order],
            "residencies": [
                {
                    "tensor": graph.tensors[r.tensor].name,
                    "start": r.start,
                    "end": r.end,
                    "offset": r.offset,
                    "arrive": r.arrive.value,
                    "leave": r.leave.value,
                }
                for r in self.residencies
            ],
        }

    @staticmethod
    def from_dict(
        data: Any,
        graph: Graph,
        source: str = "<plan>",
        name: str = "",
        aliases: Mapping[str, str] | None = None,
        unknown_hint: str = "was the plan made for another model?",
    ) -> Plan:
        """Rebuild a plan from :meth:`to_dict`'s form against ``graph``.

        Every field is required and checked for its type: ``order`` a list of op
        names, ``residencies`` a list of objects with ``tensor`` (a name), ``start``,
        ``end``, ``offset`` (integers), ``arrive`` (produce|load) and ``leave``
        (drop|store); any other field is refused (a misspelt one would be ignored).
        Values are not checked for legality (that is the validator's job), only for
        their type.

        Args:
            data: the parsed JSON object.
            graph: the graph whose op and tensor names the plan uses.
            source: the file name, for messages.
            name: the object's dotted path in the file (``"plan"``), for messages.
            aliases: view tensors the ONNX import aliased -> the buffer tensor each
                shares (``ImportReport.aliases``), so a plan naming one is told which
                name to use instead of being asked whether it is for another model.
            unknown_hint: how a message naming an op or tensor ``graph`` lacks ends
                (a plan file whose graph fingerprint matched was edited instead).

        Raises:
            InputFormatError: a missing or mistyped field, or a name ``graph`` lacks;
                the message names ``source``, the field and the residency's index.
        """
        fields = JsonObject.of(data, source, name)
        fields.refuse_unknown(("order", "residencies"))
        op_ids = {op.name: op.id for op in graph.ops}
        tensor_ids = {t.name: t.id for t in graph.tensors}
        order = []
        for step, op_name in enumerate(fields.strings("order", "op names")):
            if op_name not in op_ids:
                raise InputFormatError(
                    f"{source}: field {fields.path('order')!r}, item #{step}, names op "
                    f"{op_name!r}, which model {graph.name!r} does not have; {unknown_hint}"
                )
            order.append(op_ids[op_name])
        items = fields.array("residencies", "a list of residency objects")
        residencies = []
        for i, item in enumerate(items):
            stay = JsonObject.of(item, f"{source}: residency #{i}")
            stay.refuse_unknown(_RESIDENCY_FIELDS)
            tensor = stay.text("tensor")
            if tensor not in tensor_ids:
                buffer = (aliases or {}).get(tensor)
                if buffer is not None:
                    raise InputFormatError(
                        f"{stay.where} names tensor {tensor!r}, the output of a view op "
                        f"that the import aliased to tensor {buffer!r} (they share one "
                        f"buffer): name {buffer!r} instead, or import the model with "
                        "--no-aliases and plan it again"
                    )
                raise InputFormatError(
                    f"{stay.where} names tensor {tensor!r}, which model {graph.name!r} does "
                    f"not have; {unknown_hint}"
                )
            residencies.append(
                Residency(
                    tensor_ids[tensor],
                    stay.integer("start"),
                    stay.integer("end"),
                    stay.integer("offset"),
                    Arrive(stay.text("arrive", choices=_ARRIVALS)),
                    Leave(stay.text("leave", choices=_LEAVINGS)),
                )
            )
        return Plan.make(order, residencies)

    def __str__(self) -> str:
        return f"Plan({len(self.order)} steps, {len(self.residencies)} residencies)"

    # A plan of a real model has thousands of residencies: the dataclass repr (the
    # whole plan, 80 KB for DenseNet) would flood a notebook cell or a log line.
    __repr__ = __str__


_NUMBERS = attrgetter("tensor", "start", "end", "offset")  # a residency's integer fields
#: A residency's fields in :meth:`Plan.to_dict`'s form; any other is refused.
_RESIDENCY_FIELDS = ("tensor", "start", "end", "offset", "arrive", "leave")
_ARRIVE, _LEAVE = attrgetter("arrive"), attrgetter("leave")


def check_plan_fields(plan: Plan, where: str) -> None:
    """Refuse a hand-built plan whose fields have the wrong types, naming the first one.

    The order must hold op ids and the residencies be :class:`Residency` objects with
    integer ``tensor``, ``start``, ``end`` and ``offset`` and an :class:`Arrive` and a
    :class:`Leave` (ints and numpy integers both pass). Neither class checks its numbers
    (solvers make millions of them), so :func:`memplan.validate.validate` and
    :func:`memplan.cost.evaluate` call this first: without it, op names in the order
    failed deep inside with a ValueError, and ``offset=1.5`` or an ``arrive`` set past
    Residency's own check was scored silently. The common case (every field of an exact
    type) is checked in a few C-level passes; the loop below only runs to name the first
    culprit.

    Raises:
        InvalidPlanError: a field of the wrong type; the message starts with ``where``.
    """
    residencies = plan.residencies
    if (
        set(map(type, residencies)) <= {Residency}
        and set(map(type, plan.order)) <= {int}
        and set(map(type, itertools.chain.from_iterable(map(_NUMBERS, residencies)))) <= {int}
        # by class, not by member: an Enum member's hash is a Python call
        and set(map(type, map(_ARRIVE, residencies))) <= {Arrive}
        and set(map(type, map(_LEAVE, residencies))) <= {Leave}
    ):
        return
    for step, op in enumerate(plan.order):
        if not _whole(op):
            hint = (
                " (ids, not names: {op.name: op.id for op in graph.ops} maps them)"
                if isinstance(op, str)
                else ""
            )
            raise InvalidPlanError(
                f"{where}: order[{step}] is {op!r}; the order lists op ids (ints){hint}"
            )
    for k, r in enumerate(residencies):
        if not isinstance(r, Residency):
            raise InvalidPlanError(
                f"{where}: residencies[{k}] is a {type(r).__name__}, not a Residency "
                "(Residency(tensor, start, end, offset, Arrive.LOAD, Leave.DROP))"
            )
        for name in ("tensor", "start", "end", "offset"):
            value = getattr(r, name)
            if not _whole(value):
                raise InvalidPlanError(
                    f"{where}: residencies[{k}].{name} is {value!r}; it must be an int"
                )
        if not isinstance(r.arrive, Arrive) or not isinstance(r.leave, Leave):
            raise InvalidPlanError(
                f"{where}: residencies[{k}] has arrive={r.arrive!r}, leave={r.leave!r}; "
                "use Arrive.PRODUCE or Arrive.LOAD and Leave.DROP or Leave.STORE"
            )


def _whole(value: object) -> bool:
    """True for an int (or numpy integer); False for a bool, float or string."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_plan_shape(plan: Plan, graph: Graph, where: str = "") -> None:
    """Refuse a plan that is not even shaped like a plan of ``graph``.

    The order must be a permutation of the graph's ops and every residency name one of
    its tensors over steps inside the order (``0 <= start < end <= len(order)``). That
    is all code indexing the graph by a plan's ids needs; :func:`memplan.validate.validate`
    checks the rest. Call :func:`check_plan_fields` first (op names in the order are
    refused there, with a clearer message).

    Raises:
        InvalidPlanError: the plan does not fit ``graph`` (most often, it was made for
            another problem); the message starts with ``where`` when given.
    """
    import numpy as np  # here, not at the top: importing memplan.plan loads no numpy

    try:
        order = np.fromiter(plan.order, np.int64, len(plan.order))
    except OverflowError:  # an id beyond 64 bits names no op of any graph
        raise InvalidPlanError(
            f"{where + ': ' if where else ''}the plan's order holds an op id beyond 64 bits; "
            f"it does not fit graph {graph.name!r} (memplan.validate lists what is wrong)"
        ) from None
    tensor, start, end = (
        residency_column(plan, name, graph, where) for name in ("tensor", "start", "end")
    )
    check_shape_of_columns(graph, order, tensor, start, end, where)


def residency_column(plan: Plan, name: str, graph: Graph, where: str = "") -> np.ndarray:
    """Field ``name`` of every residency of ``plan``, as int64.

    Raises:
        InvalidPlanError: a value beyond 64 bits (no step, tensor or address of any
            problem has one), naming the residency; the message starts with ``where``.
    """
    import numpy as np

    residencies = plan.residencies
    try:
        return np.fromiter(map(attrgetter(name), residencies), np.int64, len(residencies))
    except OverflowError:
        k = next(k for k, r in enumerate(residencies) if abs(getattr(r, name)) >= 2**63)
        raise InvalidPlanError(
            f"{where + ': ' if where else ''}residency #{k}: {name} "
            f"{getattr(residencies[k], name)} is beyond any {graph.name!r} plan (at most "
            "2^63-1); memplan.validate lists what is wrong"
        ) from None


def check_shape_of_columns(
    graph: Graph,
    order: np.ndarray,
    tensor: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    where: str = "",
) -> None:
    """:func:`check_plan_shape` on a plan already turned into int64 columns (the order,
    and each residency's tensor, start and end), for callers that built them anyway."""
    import numpy as np

    prefix = f"{where}: " if where else ""
    n, tensors = graph.num_ops, graph.num_tensors
    if (
        len(order) != n
        or (n and (order.min() < 0 or order.max() >= n))
        or (n and not (np.bincount(order, minlength=n) == 1).all())
    ):
        raise InvalidPlanError(
            f"{prefix}the plan's order is not a permutation of the {n} ops of graph "
            f"{graph.name!r} (was the plan made for another problem? memplan.validate lists "
            "what is wrong)"
        )
    bad = (tensor < 0) | (tensor >= tensors) | (start < 0) | (end <= start) | (end > n)
    if bad.any():
        k = int(np.argmax(bad))
        raise InvalidPlanError(
            f"{prefix}residency #{k} (tensor {tensor[k]}, steps [{start[k]}, {end[k]})) does "
            f"not fit graph {graph.name!r} ({tensors} tensors, {n} steps); memplan.validate "
            "lists what is wrong"
        )


def memory_map(plan: Plan, graph: Graph, capacity_bytes: int, width: int = 72) -> str:
    """ASCII memory map: one row per residency, steps across, ``#`` where resident.

    ``L`` marks a step where the residency was loaded, ``S`` its last step before a store.
    Rows are sorted by offset; long plans are scaled to ``width`` columns.

    Raises:
        ConfigError: ``width`` is not a whole number of columns >= 1.
        InvalidPlanError: ``plan`` is not a Plan, has fields of the wrong type, or does
            not fit ``graph`` (e.g. a plan made for another problem).
    """
    # width 0 divided by zero below; a negative one drew nothing but the header.
    if not _whole(width) or width < 1:
        raise ConfigError(
            f"memory_map: width is {width!r}; give a whole number of columns >= 1 (default 72)"
        )
    if not isinstance(plan, Plan):
        raise InvalidPlanError(f"memory_map: expected a memplan Plan, got {type(plan).__name__}")
    # A plan of another graph indexed its tensors past the end (a raw IndexError).
    check_plan_fields(plan, "memory_map")
    check_plan_shape(plan, graph, "memory_map")
    n = max(len(plan.order), 1)
    scale = max(1.0, n / width)
    columns = int(n / scale + 0.999)
    lines = [f"memory map: {n} steps x {capacity_bytes} B ({len(plan.residencies)} residencies)"]
    name_width = min(
        24, max((len(graph.tensors[r.tensor].name) for r in plan.residencies), default=4)
    )
    for r in sorted(plan.residencies, key=lambda r: (r.offset, r.start)):
        row = [" "] * columns
        first, last = int(r.start / scale), max(int(r.start / scale), int((r.end - 1) / scale))
        for c in range(first, min(last + 1, columns)):
            row[c] = "#"
        if r.arrive is Arrive.LOAD:
            row[first] = "L"
        if r.leave is Leave.STORE:
            row[min(last, columns - 1)] = "S"
        size = graph.tensors[r.tensor].size_bytes
        name = graph.tensors[r.tensor].name[:name_width]
        lines.append(f"{r.offset:>10} +{size:<9} {name:<{name_width}} |{''.join(row)}|")
    return "\n".join(lines)
