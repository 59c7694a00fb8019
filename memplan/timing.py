"""Timing models: when each step computes and when each DMA transfer runs (PROBLEM.md s. 7).

A plan moves bytes between DRAM and the scratchpad; a timing model says how long that
takes beside the compute. Two named models, chosen per accelerator
(:attr:`memplan.accelerator.Accelerator.timing_model`) or per call:

- ``serial``: before step ``t`` the DMA stores what ended at ``t``, loads what starts at
  ``t`` and streams ``t``'s weights; then step ``t`` computes. Nothing overlaps.
- ``overlap``: one DMA engine works beside the compute unit, one transfer at a time,
  first come first served (ties: the earlier deadline, then the lower tensor id, then,
  for one tensor, plan order: a store before the reload it makes possible)::

      compute  |--step 3--|   |----step 4----|      |--step 5--|
      DMA         [store a ]  [load x          ]    ...
                              ^ ready at E_3        ^ step 5 first reads x: it waits
                                                      (the stall) for the load to end

  A ``load`` residency ``[s, e)`` is ready at ``E_(s-1)`` (the end of step ``s-1``'s
  compute), so a load that starts before its first use (a *prefetch*) hides behind
  compute. A store is ready when its data is final: ``E_p`` for a produced tensor
  (``p`` its producer's step), ``S_s`` for a loaded one. A weight streamed for step
  ``t`` (``activations`` scope) is ready at ``S_(t-1)``. Step ``t`` starts once step
  ``t-1`` ended, the loads first used at ``t`` arrived, the stores of residencies ending
  at ``t`` finished and ``t``'s streamed weights arrived.

The latency is the end of the last step or of the last store, whichever is later.
:func:`simulate` returns the whole :class:`Timeline`; :func:`latency_s` only the number.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import numpy as np

from memplan.accelerator import TIMING_MODELS
from memplan.errors import ConfigError, InvalidPlanError
from memplan.frozen import refuse_assignment
from memplan.ir import TensorId, TensorKind
from memplan.plan import (
    Arrive,
    Leave,
    Plan,
    check_plan_fields,
    check_shape_of_columns,
    residency_column,
)
from memplan.problem import Problem, require_problem
from memplan.units import format_seconds

#: The objectives a solver may minimise; ``latency`` means the ``overlap`` model's.
OBJECTIVES = ("traffic", "latency")

#: Capability (:mod:`memplan.registry`): the solver has an option ``objective`` that
#: accepts every name of :data:`OBJECTIVES` (``memplan optimize --objective``).
OBJECTIVE_LATENCY = "objective_latency"

__all__ = [
    "OBJECTIVES",
    "OBJECTIVE_LATENCY",
    "TIMING_MODELS",
    "PlanArrays",
    "Timeline",
    "Transfer",
    "TransferKind",
    "check_timing_model",
    "first_reads",
    "latency_s",
    "plan_arrays",
    "run_model",
    "simulate",
]


class TransferKind(enum.Enum):
    """What a DMA transfer moves."""

    LOAD = "load"  # DRAM -> scratchpad at the start of a 'load' residency
    STORE = "store"  # scratchpad -> DRAM at the end of a 'store' residency
    STREAM = "stream"  # a weight streamed for one op (activations scope), not placed


@dataclass(frozen=True, slots=True)
class Transfer:
    """One DMA transfer and when it ran."""

    kind: TransferKind  # load, store or streamed weight
    tensor: TensorId  # the tensor moved
    size_bytes: int  # bytes moved
    residency: int | None  # index into plan.residencies; None for a streamed weight
    waited_by_step: int | None  # the step that cannot start before it ends; n = the end
    ready_s: float  # seconds: when the engine may start it
    issue_s: float  # seconds: when the engine started it
    finish_s: float  # seconds: when it ended

    @property
    def duration_s(self) -> float:
        """Seconds the engine spent on it."""
        return self.finish_s - self.issue_s


@refuse_assignment("a timeline is computed by simulate(problem, plan)")
@dataclass(frozen=True, slots=True)
class Timeline:
    """When every step computed and every transfer ran, under one timing model."""

    model: str  # timing model name: serial | overlap
    step_start_s: tuple[float, ...]  # seconds: S_t, when step t's compute starts
    step_end_s: tuple[float, ...]  # seconds: E_t = S_t + macs_t / mac_per_s
    step_stall_s: tuple[float, ...]  # seconds: S_t - E_(t-1), compute idle before step t
    transfers: tuple[Transfer, ...]  # every DMA transfer, in issue order
    latency_s: float  # seconds: end of the last step or of the last store
    compute_s: float  # seconds: total compute (sum of macs / mac_per_s)
    dma_busy_s: float  # seconds: total time the DMA engine moves bytes

    @property
    def num_steps(self) -> int:
        """Number of steps."""
        return len(self.step_start_s)

    @property
    def stall_s(self) -> float:
        """Seconds the compute unit waits for DMA, before and after the last step."""
        return max(0.0, self.latency_s - self.compute_s)

    @property
    def tail_s(self) -> float:
        """Seconds after the last step's compute spent finishing stores."""
        end = self.step_end_s[-1] if self.step_end_s else 0.0
        return max(0.0, self.latency_s - end)

    @property
    def hidden_dma_s(self) -> float:
        """Seconds of DMA that ran while the compute unit was busy."""
        return max(0.0, self.dma_busy_s - self.stall_s)

    @property
    def hidden_dma_share(self) -> float:
        """Share of the DMA time hidden behind compute (0 without DMA)."""
        return self.hidden_dma_s / self.dma_busy_s if self.dma_busy_s > 0 else 0.0

    @property
    def dma_busy_share(self) -> float:
        """Share of the latency during which the DMA engine is busy."""
        return self.dma_busy_s / self.latency_s if self.latency_s > 0 else 0.0

    def stalled_steps(self, min_stall_s: float = 0.0) -> list[int]:
        """Steps whose compute waited longer than ``min_stall_s`` seconds."""
        return [t for t, s in enumerate(self.step_stall_s) if s > min_stall_s]

    def to_text(self) -> str:
        """A few readable lines."""
        stalled = self.stalled_steps(1e-15)
        return "\n".join(
            [
                f"timing model  {self.model}",
                f"latency       {format_seconds(self.latency_s)} "
                f"(compute {format_seconds(self.compute_s)}, stalls "
                f"{format_seconds(self.stall_s)} in {len(stalled)} of {self.num_steps} steps"
                + (f", tail {format_seconds(self.tail_s)}" if self.tail_s > 0 else "")
                + ")",
                f"DMA           {len(self.transfers)} transfers, busy "
                f"{format_seconds(self.dma_busy_s)} ({self.dma_busy_share:.1%} of the latency), "
                f"{self.hidden_dma_share:.1%} hidden behind compute",
            ]
        )

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (
            f"Timeline({self.model}: {self.num_steps} steps, {len(self.transfers)} transfers, "
            f"latency {self.latency_s:.6g} s)"
        )

    def _repr_html_(self) -> str:
        from memplan.views import html_of

        return html_of(self, "timeline")


def check_timing_model(name: str) -> str:
    """Return ``name`` if it names a timing model; else a :class:`ConfigError` listing them."""
    if not isinstance(name, str) or name not in TIMING_MODELS:
        raise ConfigError(f"unknown timing model {name!r}; use one of {', '.join(TIMING_MODELS)}")
    return name


# ---------------------------------------------------------------------------- arrays
@dataclass(frozen=True, slots=True, eq=False)
class PlanArrays:
    """A plan and its problem as numpy arrays, built once for the cost and timing models.

    One entry per residency (``tensor`` ... ``is_store``), per step (``macs``), per
    distinct in-scope tensor an op reads (``read_*``, sorted by tensor then step) and per
    weight an op streams from DRAM (``stream_*``, sorted by step then tensor).
    """

    num_steps: int  # steps of the plan
    tensor_size_bytes: np.ndarray  # per tensor id: size in bytes
    tensor: np.ndarray  # per residency: tensor id
    start: np.ndarray  # per residency: first step on chip
    end: np.ndarray  # per residency: first step no longer on chip
    offset: np.ndarray  # per residency: scratchpad address in bytes
    size_bytes: np.ndarray  # per residency: the tensor's size in bytes
    is_load: np.ndarray  # per residency: arrives by a load (bool)
    is_store: np.ndarray  # per residency: leaves by a store (bool)
    macs: np.ndarray  # per step: multiply-accumulates of the op run there
    read_tensor: np.ndarray  # per in-scope read: the tensor read
    read_step: np.ndarray  # per in-scope read: the step reading it
    stream_tensor: np.ndarray  # per streamed weight read: the weight
    stream_step: np.ndarray  # per streamed weight read: the step reading it
    stream_size_bytes: np.ndarray  # per streamed weight read: its size in bytes


def plan_arrays(problem: Problem, plan: Plan) -> PlanArrays:
    """The arrays of :class:`PlanArrays` for ``plan`` (assumed valid).

    Raises:
        InvalidPlanError: the plan is not even shaped like a plan of ``problem`` (an order
            that is not a permutation of its ops, a residency naming a tensor it does not
            have or steps outside the order): the cost of such a plan means nothing.
    """
    if not isinstance(plan, Plan):
        raise InvalidPlanError(f"expected a memplan Plan, got {type(plan).__name__}")
    graph = problem.graph
    residencies = plan.residencies
    count = len(residencies)

    def column(name: str) -> np.ndarray:
        return residency_column(plan, name, graph)

    def flag(name: str, member: enum.Enum) -> np.ndarray:
        return np.fromiter((v is member for v in map(attrgetter(name), residencies)), bool, count)

    sizes = np.fromiter((t.size_bytes for t in graph.tensors), np.int64, graph.num_tensors)
    tensor, start, end = column("tensor"), column("start"), column("end")
    n = len(plan.order)
    order = np.asarray(plan.order, dtype=np.int64)
    check_shape_of_columns(graph, order, tensor, start, end)
    step_of_op = np.empty(n, dtype=np.int64)
    step_of_op[order] = np.arange(n, dtype=np.int64)
    ops = graph.ops
    fan_in = np.fromiter((len(op.inputs) for op in ops), np.int64, len(ops))
    read = np.fromiter(chain.from_iterable(op.inputs for op in ops), np.int64, int(fan_in.sum()))
    reader = np.repeat(np.arange(len(ops), dtype=np.int64), fan_in)
    # One read per (op, tensor): an op reading a tensor twice moves it once.
    pairs = np.unique(read * max(len(ops), 1) + reader)
    read, reader = pairs // max(len(ops), 1), pairs % max(len(ops), 1)
    in_scope = np.asarray(problem.in_scope, dtype=bool)
    is_weight = np.fromiter(
        (t.kind is TensorKind.WEIGHT for t in graph.tensors), bool, graph.num_tensors
    )
    placed = in_scope[read] if len(read) else np.zeros(0, dtype=bool)
    streamed = ~placed & is_weight[read] if len(read) else placed
    stream_tensor, stream_step = read[streamed], step_of_op[reader[streamed]]
    by_step = np.lexsort((stream_tensor, stream_step))
    read_tensor, read_step = read[placed], step_of_op[reader[placed]]
    by_tensor = np.lexsort((read_step, read_tensor))
    return PlanArrays(
        num_steps=n,
        tensor_size_bytes=sizes,
        tensor=tensor,
        start=start,
        end=end,
        offset=column("offset"),
        size_bytes=sizes[tensor],
        is_load=flag("arrive", Arrive.LOAD),
        is_store=flag("leave", Leave.STORE),
        macs=np.fromiter((ops[o].macs for o in plan.order), np.float64, n),
        read_tensor=read_tensor[by_tensor],
        read_step=read_step[by_tensor],
        stream_tensor=stream_tensor[by_step],
        stream_step=stream_step[by_step],
        stream_size_bytes=sizes[stream_tensor[by_step]],
    )


# ---------------------------------------------------------------------------- transfers
_LOAD, _STORE, _STREAM = 0, 1, 2  # transfer kind codes, in the serial model's phase order
_KINDS = (TransferKind.LOAD, TransferKind.STORE, TransferKind.STREAM)
_PHASE = np.array([1, 0, 2])  # per kind code: stores, then loads, then weights of a step


@dataclass(frozen=True, slots=True, eq=False)
class _Transfers:
    """Every transfer of a plan as parallel arrays (the kernels' input)."""

    kind: np.ndarray  # _LOAD, _STORE or _STREAM
    tensor: np.ndarray  # tensor id
    size_bytes: np.ndarray  # bytes moved
    residency: np.ndarray  # index into plan.residencies, -1 for streamed weights
    step: np.ndarray  # load: residency start; store: residency end; stream: using step
    released_at: np.ndarray  # overlap model: the time point making it ready (see _point)
    waited_by: np.ndarray  # the step that waits for it, -1 when none does
    rank: np.ndarray  # the deadline step breaking ties (the residency end when none waits)


def _point(step: np.ndarray, at_end: bool) -> np.ndarray:
    """Index of time point ``S_step`` (``at_end`` False) or ``E_step`` in release order.

    Points -2 and -1 (``S_-1`` and ``E_-1``) are time 0.
    """
    return 2 * step + (1 if at_end else 0)


def first_reads(arrays: PlanArrays, residencies: np.ndarray) -> np.ndarray:
    """Per residency index: the first step in ``[start, end)`` that reads it, or -1."""
    a = arrays
    tensor, start = a.tensor[residencies], a.start[residencies]
    read_key = a.read_tensor * (a.num_steps + 1) + a.read_step
    at = np.searchsorted(read_key, tensor * (a.num_steps + 1) + start)
    at_clipped = np.minimum(at, max(len(read_key) - 1, 0))
    if not len(read_key):
        return np.full(len(residencies), -1, dtype=np.int64)
    step = a.read_step[at_clipped]
    used = (at < len(read_key)) & (a.read_tensor[at_clipped] == tensor)
    used &= step < a.end[residencies]
    return np.where(used, step, -1)


def _transfers(arrays: PlanArrays) -> _Transfers:
    """The loads, stores and streamed weights of a plan."""
    a = arrays
    loads = np.flatnonzero(a.is_load)
    stores = np.flatnonzero(a.is_store)
    load_wait = first_reads(a, loads)
    load_rank = np.where(load_wait >= 0, load_wait, a.end[loads])
    produced = ~a.is_load[stores]
    store_point = np.where(produced, _point(a.start[stores], True), _point(a.start[stores], False))
    m_stream = len(a.stream_step)

    def cat(load: np.ndarray, store: np.ndarray, stream: np.ndarray) -> np.ndarray:
        return np.concatenate((load, store, stream)).astype(np.int64, copy=False)

    return _Transfers(
        kind=cat(
            np.full(len(loads), _LOAD), np.full(len(stores), _STORE), np.full(m_stream, _STREAM)
        ),
        tensor=cat(a.tensor[loads], a.tensor[stores], a.stream_tensor),
        size_bytes=cat(a.size_bytes[loads], a.size_bytes[stores], a.stream_size_bytes),
        residency=cat(loads, stores, np.full(m_stream, -1)),
        step=cat(a.start[loads], a.end[stores], a.stream_step),
        released_at=cat(
            _point(a.start[loads] - 1, True), store_point, _point(a.stream_step - 1, False)
        ),
        waited_by=cat(load_wait, a.end[stores], a.stream_step),
        rank=cat(load_rank, a.end[stores], a.stream_step),
    )


# ---------------------------------------------------------------------------- kernels
@dataclass(frozen=True, slots=True, eq=False)
class _Run:
    """What a simulation kernel computes (times in seconds)."""

    start: np.ndarray  # S_t
    end: np.ndarray  # E_t
    ready: np.ndarray  # per transfer
    issue: np.ndarray  # per transfer
    finish: np.ndarray  # per transfer
    order: np.ndarray  # transfer indices in issue order
    latency_s: float  # end of the last step or of the last store


def _overlap_run(transfers: _Transfers, compute: np.ndarray, bandwidth: float) -> _Run:
    """Simulate one DMA engine beside the compute unit (module docstring).

    Releases come in nondecreasing time order (``S_t <= E_t <= S_(t+1)``); a heap serves
    the released transfers by (ready time, tie rank). Before step ``t`` starts, the engine
    serves transfers until every one that ``t`` waits for has finished; what it serves
    later cannot have been ready earlier, so serving lazily is exact.
    """
    n, m = len(compute), len(transfers.kind)
    # Ties between transfers ready at one time: earlier deadline, lower tensor id, then
    # (one tensor's own transfers) plan order: the step of the event, a store before a
    # load. A spilled tensor reloaded for the very next step had its reload issued before
    # the store that gives it its DRAM copy (same latency, an impossible timeline).
    phase = _PHASE[transfers.kind]
    priority_order = np.lexsort(
        (np.arange(m), phase, transfers.step, transfers.tensor, transfers.rank)
    )
    priority = np.empty(m, dtype=np.int64)
    priority[priority_order] = np.arange(m)
    release_order = np.argsort(transfers.released_at, kind="stable")
    release_points = transfers.released_at[release_order].tolist()
    release_priorities = priority[release_order].tolist()
    by_priority = priority_order.tolist()
    duration = (transfers.size_bytes / bandwidth).tolist()
    # Transfers no step waits for (loads never read) count for a virtual step n + 1.
    waited_by = np.where(transfers.waited_by >= 0, transfers.waited_by, n + 1).tolist()
    pending = np.bincount(waited_by, minlength=n + 2).tolist() if m else [0] * (n + 2)
    waited_until = [0.0] * (n + 2)  # per step: when the last transfer it waits for ends
    ready, issue, finish = [0.0] * m, [0.0] * m, [0.0] * m
    issued: list[int] = []
    heap: list[tuple[float, int]] = []
    push, pop = heapq.heappush, heapq.heappop
    steps_compute = compute.tolist()
    start, end = [0.0] * n, [0.0] * n
    cursor, engine_free, previous_end = 0, 0.0, 0.0
    while cursor < m and release_points[cursor] <= -1:  # ready at S_-1 = E_-1 = 0
        push(heap, (0.0, release_priorities[cursor]))
        cursor += 1
    for t in range(n + 2):
        while pending[t]:
            ready_s, p = pop(heap)
            i = by_priority[p]
            begin = engine_free if engine_free > ready_s else ready_s
            engine_free = begin + duration[i]
            ready[i], issue[i], finish[i] = ready_s, begin, engine_free
            issued.append(i)
            pending[waited_by[i]] -= 1
            waited_until[waited_by[i]] = engine_free
        if t >= n:
            continue  # after the last step: the stores it waits for, then unread loads
        s = previous_end if previous_end > waited_until[t] else waited_until[t]
        start[t] = s
        previous_end = end[t] = s + steps_compute[t]
        for point, time_s in ((2 * t, s), (2 * t + 1, previous_end)):
            while cursor < m and release_points[cursor] <= point:
                push(heap, (time_s, release_priorities[cursor]))
                cursor += 1
    finish_array = np.asarray(finish)
    last_store = finish_array[transfers.kind == _STORE].max(initial=0.0)
    return _Run(
        start=np.asarray(start),
        end=np.asarray(end),
        ready=np.asarray(ready),
        issue=np.asarray(issue),
        finish=finish_array,
        order=np.asarray(issued, dtype=np.int64),
        latency_s=float(max(previous_end, last_store)),
    )


def _serial_run(transfers: _Transfers, compute: np.ndarray, bandwidth: float) -> _Run:
    """Nothing overlaps: before step ``t`` the stores ending at ``t``, its loads, its weights.

    Every transfer of step ``k`` issues after the compute of the steps before ``k`` and
    the transfers sorted before it, so all times are prefix sums.
    """
    n = len(compute)
    phase = _PHASE[transfers.kind]
    order = np.lexsort((np.arange(len(phase)), transfers.tensor, phase, transfers.step))
    duration = transfers.size_bytes[order] / bandwidth
    steps = transfers.step[order]
    compute_before = np.concatenate(([0.0], np.cumsum(compute)))  # compute of steps < k
    dma_before = np.concatenate(([0.0], np.cumsum(duration)))  # DMA sorted before a transfer
    issue_sorted = compute_before[steps] + dma_before[:-1]
    dma_through = np.concatenate(([0.0], np.cumsum(np.bincount(steps, duration, n + 1))))
    start = compute_before[:n] + dma_through[1 : n + 1]
    end = start + compute
    previous_end = np.concatenate(([0.0], end))
    issue, finish, ready = (np.empty(len(order)) for _ in range(3))
    issue[order] = issue_sorted
    finish[order] = issue_sorted + duration
    ready[order] = previous_end[steps]
    latency = float(compute_before[-1] + dma_before[-1])
    return _Run(start, end, ready, issue, finish, order, latency)


_KERNELS: dict[str, Callable[[_Transfers, np.ndarray, float], _Run]] = {
    "serial": _serial_run,
    "overlap": _overlap_run,
}


def run_model(problem: Problem, arrays: PlanArrays, model: str | None = None) -> float:
    """Seconds the plan of ``arrays`` takes under ``model`` (default: the accelerator's)."""
    return _simulate_arrays(problem, arrays, model)[2].latency_s


def _simulate_arrays(
    problem: Problem, arrays: PlanArrays, model: str | None
) -> tuple[str, _Transfers, _Run, np.ndarray]:
    name = check_timing_model(problem.accelerator.timing_model if model is None else model)
    transfers = _transfers(arrays)
    compute = arrays.macs / problem.accelerator.mac_per_s
    run = _KERNELS[name](transfers, compute, problem.accelerator.dram_bytes_per_s)
    return name, transfers, run, compute


def latency_s(problem: Problem, plan: Plan, model: str | None = None) -> float:
    """Seconds ``plan`` (assumed valid) takes under ``model`` (default: the accelerator's)."""
    return run_model(problem, plan_arrays(problem, plan), model)


def simulate(problem: Problem, plan: Plan, model: str | None = None) -> Timeline:
    """The :class:`Timeline` of ``plan`` (assumed valid) under ``model``.

    Args:
        problem: the problem the plan solves (op MACs, sizes, rates, scope).
        plan: a valid plan (see :func:`memplan.validate.check_plan`).
        model: ``serial`` or ``overlap``; default: ``problem.accelerator.timing_model``.

    Raises:
        ConfigError: for an unknown timing model, or a ``problem`` that is not one.
        InvalidPlanError: for a plan not shaped like one (as :func:`memplan.cost.evaluate`).
    """
    require_problem(problem, "simulate")
    if not isinstance(plan, Plan):
        raise InvalidPlanError(f"simulate: expected a memplan Plan, got {type(plan).__name__}")
    check_plan_fields(plan, "simulate")  # an offset of 1.5 was simulated as if valid
    name, transfers, run, compute = _simulate_arrays(problem, plan_arrays(problem, plan), model)
    bandwidth = problem.accelerator.dram_bytes_per_s
    waits = transfers.step if name == "serial" else transfers.waited_by
    columns = (
        transfers.kind.tolist(),
        transfers.tensor.tolist(),
        transfers.size_bytes.tolist(),
        transfers.residency.tolist(),
        waits.tolist(),
        run.ready.tolist(),
        run.issue.tolist(),
        run.finish.tolist(),
    )
    records = tuple(
        Transfer(
            kind=_KINDS[columns[0][i]],
            tensor=TensorId(columns[1][i]),
            size_bytes=columns[2][i],
            residency=columns[3][i] if columns[3][i] >= 0 else None,
            waited_by_step=columns[4][i] if columns[4][i] >= 0 else None,
            ready_s=columns[5][i],
            issue_s=columns[6][i],
            finish_s=columns[7][i],
        )
        for i in run.order.tolist()
    )
    previous_end = np.concatenate(([0.0], run.end[:-1]))
    return Timeline(
        model=name,
        step_start_s=tuple(run.start.tolist()),
        step_end_s=tuple(run.end.tolist()),
        step_stall_s=tuple(np.maximum(0.0, run.start - previous_end).tolist()),
        transfers=records,
        latency_s=run.latency_s,
        compute_s=float(compute.sum()),
        dma_busy_s=float(transfers.size_bytes.sum()) / bandwidth,
    )
