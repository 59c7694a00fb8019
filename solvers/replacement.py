"""Replacement for a fixed order: which tensors stay on chip, which spill and reload.

The greedy baseline decides residencies step by step (COSMA's "Belady" baseline).
Before step ``t`` runs, every in-scope input of ``order[t]`` must be on chip and its
outputs need room. When the bytes on chip plus the missing bytes exceed the capacity,
resident tensors that ``order[t]`` does not touch are evicted:

- ``belady``: the one whose next use is furthest away (Belady's MIN rule; ties: the
  larger tensor, then the lower id);
- ``belady-size``: the one with the largest ``size x distance to its next use`` (ties:
  the further next use, then the lower id).

An evicted activation without a valid DRAM copy is stored (once: a later eviction of
an unchanged copy is a plain drop); weights and graph inputs are dropped, DRAM holds
them. A tensor leaves the chip after its last use; graph outputs are stored then::

    step:            0     1     2     3     4     5
    t3 (activation)  [produce ───)store     [load ─)drop      spilled at 2, reloaded at 4
    t5 (output)                  [produce ──────────)store    stored at its last use

Sizes here are aligned, so the sum of live sizes bounds what an allocator must pack.
The simulation never breaks ``live <= capacity`` as long as ``capacity >= M_R``.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from memplan.ir import TensorKind
from memplan.plan import Arrive, Leave
from memplan.problem import Problem
from memplan.solver import Budget

#: Replacement policies :func:`simulate` accepts.
POLICIES = ("belady", "belady-size")

#: How many steps run between two looks at the budget.
_BUDGET_EVERY = 128


class Stopped(Exception):
    """Raised inside the simulation when the budget runs out (caught by the solver)."""


@dataclass(frozen=True, slots=True)
class Stay:
    """One residency without an offset yet: steps ``[start, end)``."""

    tensor: int  # tensor id
    start: int  # first step on chip
    end: int  # first step off chip (exclusive)
    arrive: Arrive  # produced at `start`, or loaded before it
    leave: Leave  # dropped, or stored to DRAM after `end - 1`


@dataclass(frozen=True, slots=True)
class Replacement:
    """The stays chosen for one order and capacity, with counters."""

    stays: tuple[Stay, ...]  # every residency, in order of decision
    evictions: int  # tensors evicted before their last use
    spill_stores: int  # stores of activations that are not graph outputs (pure spills)
    reloads: int  # loads of a tensor that was on chip before (activations and others)
    max_live_bytes: int  # highest sum of aligned sizes on chip at one step


def scoped_touched(problem: Problem) -> list[tuple[int, ...]]:
    """Per op, its distinct in-scope inputs and outputs (inputs first)."""
    in_scope = problem.in_scope
    return [
        tuple(t for t in dict.fromkeys((*op.inputs, *op.outputs)) if in_scope[t])
        for op in problem.graph.ops
    ]


def use_steps(problem: Problem, order: Sequence[int]) -> list[list[int]]:
    """Per tensor, the sorted steps at which an op reads it under ``order``."""
    step_of = [0] * len(order)
    for step, op in enumerate(order):
        step_of[op] = step
    uses: list[list[int]] = [[] for _ in problem.graph.tensors]
    for tensor, consumers in enumerate(problem.graph.consumers):
        if problem.in_scope[tensor] and consumers:
            uses[tensor] = sorted(step_of[c] for c in consumers)
    return uses


def simulate(
    problem: Problem,
    order: Sequence[int],
    capacity_bytes: int,
    policy: str = "belady",
    budget: Budget | None = None,
    *,
    touched: Sequence[tuple[int, ...]] | None = None,
    uses: Sequence[Sequence[int]] | None = None,
) -> Replacement:
    """Choose the stays of every in-scope tensor for ``order`` within ``capacity_bytes``.

    Args:
        problem: the problem (its aligned sizes are used).
        order: a topological order of all ops.
        capacity_bytes: bound on the sum of aligned sizes on chip; at least M_R.
        policy: ``belady`` or ``belady-size`` (see the module docstring).
        budget: looked at every few steps; :class:`Stopped` is raised when it runs out.
        touched: :func:`scoped_touched` of ``problem``, if already computed.
        uses: :func:`use_steps` of ``problem`` and ``order``, if already computed.

    Returns:
        The stays and counters.
    """
    assert capacity_bytes >= problem.min_resident_bytes, "capacity below M_R"
    assert policy in POLICIES, policy
    graph = problem.graph
    sizes = problem.aligned_sizes_bytes
    kinds = [t.kind for t in graph.tensors]
    is_output = [t.is_output for t in graph.tensors]
    touched = scoped_touched(problem) if touched is None else touched
    uses = use_steps(problem, order) if uses is None else uses
    size_aware = policy == "belady-size"
    never = len(order)  # "next use" of a tensor that is not read again

    has_copy = [k is not TensorKind.ACTIVATION for k in kinds]  # valid DRAM copy exists
    was_on_chip = [False] * len(sizes)
    arrived: dict[int, tuple[int, Arrive]] = {}  # resident tensor -> (start, arrive)
    next_use: dict[int, int] = {}  # resident tensor -> its next read step
    heap: list[tuple[int, int, int]] = []  # (-next use, -size, tensor); lazy deletion
    stays: list[Stay] = []
    live = max_live = evictions = spill_stores = reloads = 0

    def close(tensor: int, end: int, last_use: bool) -> None:
        nonlocal live, spill_stores
        start, arrive = arrived.pop(tensor)
        next_use.pop(tensor, None)
        live -= sizes[tensor]
        store = kinds[tensor] is TensorKind.ACTIVATION and not has_copy[tensor]
        if last_use:
            store = store and is_output[tensor]
        elif store and not is_output[tensor]:
            spill_stores += 1
        if store:
            has_copy[tensor] = True
        stays.append(Stay(tensor, start, end, arrive, Leave.STORE if store else Leave.DROP))

    def victim(step: int, protected: frozenset[int]) -> int:
        if size_aware:
            return max(
                (t for t in next_use if t not in protected),
                key=lambda t: (sizes[t] * (next_use[t] - step), next_use[t], -t),
            )
        while True:
            neg_use, _, tensor = heapq.heappop(heap)
            if next_use.get(tensor) == -neg_use and tensor not in protected:
                return tensor

    for step, op in enumerate(order):
        if budget is not None and step % _BUDGET_EVERY == 0 and budget.should_stop():
            raise Stopped
        here = touched[op]
        need = sum(sizes[t] for t in here if t not in arrived)
        if live + need > capacity_bytes:
            protected = frozenset(here)
            while live + need > capacity_bytes:
                evicted = victim(step, protected)
                close(evicted, step, last_use=False)
                evictions += 1
        for t in here:
            if t not in arrived:
                if graph.producer[t] == op:
                    arrived[t] = (step, Arrive.PRODUCE)
                else:
                    arrived[t] = (step, Arrive.LOAD)
                    reloads += was_on_chip[t]
                was_on_chip[t] = True
                live += sizes[t]
        max_live = max(max_live, live)
        for t in here:
            k = bisect.bisect_right(uses[t], step)
            nxt = uses[t][k] if k < len(uses[t]) else never
            if nxt == never:
                close(t, step + 1, last_use=True)
            else:
                next_use[t] = nxt
                if not size_aware:
                    heapq.heappush(heap, (-nxt, -sizes[t], t))
    assert not arrived, "every tensor leaves the chip after its last use"
    return Replacement(tuple(stays), evictions, spill_stores, reloads, max_live)
