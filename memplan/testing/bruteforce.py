"""Exact optima of tiny problems by exhaustive search, independent of every solver.

The conformance suite (:func:`memplan.testing.check_solver`) holds reported bounds and
OPTIMAL claims to these numbers, and the ILP tests compare both backends with them.

For one order, :func:`min_traffic_for_order` is a dynamic program over steps whose state
is, per tensor, its offset on chip (or off chip) and whether DRAM holds a copy. Each
step chooses, for every tensor that may be on chip, to leave it off, keep it at its
offset, or start a new residency (produced at the producer's step, otherwise loaded
from a DRAM copy) at any aligned offset that fits; ending a residency may store it::

    state before step t:  tensor -> (offset or off chip, DRAM copy?)
    choices at step t:    off | keep at offset | new residency at offset y (0 <= y < C)

This covers every valid plan (moves through DRAM included) up to two safe prunings: a
tensor is never on chip after its last use, and a load starts at a step that reads the
tensor (starting earlier only takes space). :func:`min_traffic` is the minimum over all
topological orders, so it is the optimum over **all** valid plans of the problem.

The search is exponential: keep to graphs of about 6 ops with capacities of about 10
alignment units (:func:`memplan.testing.graphs.tiny_spill_graph` makes such graphs).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence

from memplan.analysis import peak_live_bytes
from memplan.ir import Graph, TensorKind
from memplan.problem import Problem

#: Most ops :func:`min_traffic` and :func:`min_traffic_for_order` accept (the search
#: grows with the number of orders and of offsets per tensor).
MAX_TRAFFIC_OPS = 8

#: Most ops :func:`enumerate_min_peak` accepts (it enumerates every topological order).
MAX_PEAK_OPS = 10

_INF = float("inf")

# Per tensor before a step: (offset in alignment units or -1 when off chip, DRAM copy).
_TensorState = tuple[int, bool]


def topological_orders(graph: Graph) -> Iterator[tuple[int, ...]]:
    """Every topological order of the ops (lexicographic by op id)."""
    n = graph.num_ops
    preds = [set(graph.predecessors(op.id)) for op in graph.ops]

    def extend(prefix: list[int], done: set[int]) -> Iterator[tuple[int, ...]]:
        if len(prefix) == n:
            yield tuple(prefix)
            return
        for o in range(n):
            if o not in done and preds[o] <= done:
                prefix.append(o)
                done.add(o)
                yield from extend(prefix, done)
                done.remove(o)
                prefix.pop()

    yield from extend([], set())


def _check_size(problem: Problem, limit: int, what: str) -> None:
    if problem.graph.num_ops > limit:
        raise ValueError(
            f"{what} enumerates; {problem.graph.num_ops} ops is more than {limit}: "
            "use a tiny graph (memplan.testing.graphs.tiny_spill_graph)"
        )


def enumerate_min_peak(problem: Problem) -> int:
    """M_P by enumeration: the lowest no-spill peak of live bytes over all orders."""
    _check_size(problem, MAX_PEAK_OPS, "enumerate_min_peak")
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    return min(
        peak_live_bytes(problem.graph, order, sizes, scope)
        for order in topological_orders(problem.graph)
    )


def min_traffic(problem: Problem) -> int | None:
    """The fewest non-compulsory bytes of any valid plan of ``problem`` (None: no plan)."""
    _check_size(problem, MAX_TRAFFIC_OPS, "min_traffic")
    values = [min_traffic_for_order(problem, o) for o in topological_orders(problem.graph)]
    found = [v for v in values if v is not None]
    return min(found) if found else None


def min_traffic_for_order(problem: Problem, order: Sequence[int]) -> int | None:
    """The fewest non-compulsory bytes of any valid plan with this order (None: no plan).

    Args:
        problem: a tiny problem; sizes are counted in alignment units, so a coarse
            alignment (e.g. 1 KiB with KiB-sized tensors) keeps the search small.
        order: a topological order of all ops.
    """
    _check_size(problem, MAX_TRAFFIC_OPS, "min_traffic_for_order")
    search = _OrderSearch(problem, tuple(order))
    total = search.best(0, search.initial_state())
    if total == _INF:
        return None
    return int(total) - search.compulsory_in_model


class _OrderSearch:
    """The dynamic program of :func:`min_traffic_for_order` for one problem and order."""

    def __init__(self, problem: Problem, order: tuple[int, ...]) -> None:
        graph = problem.graph
        unit = problem.alignment_bytes
        step = {o: t for t, o in enumerate(order)}
        self.n_steps = len(order)
        self.capacity_units = problem.capacity_bytes // unit
        # Tensors the search decides about: in scope, and produced or read by some op.
        self.tensors: list[int] = [
            int(t.id)
            for t in graph.tensors
            if problem.in_scope[t.id]
            and (graph.producer[t.id] is not None or graph.consumers[t.id])
        ]
        self.index = {a: i for i, a in enumerate(self.tensors)}
        self.units = {a: problem.aligned_sizes_bytes[a] // unit for a in self.tensors}
        self.size = {a: graph.tensors[a].size_bytes for a in self.tensors}
        self.made = {
            a: (step[p] if (p := graph.producer[a]) is not None else None) for a in self.tensors
        }
        self.activation = {a: graph.tensors[a].kind is TensorKind.ACTIVATION for a in self.tensors}
        self.output = {a: graph.tensors[a].is_output for a in self.tensors}
        reads = {a: [step[c] for c in graph.consumers[a]] for a in self.tensors}
        self.last = {
            a: max([*reads[a], m if (m := self.made[a]) is not None else -1]) for a in self.tensors
        }
        self.needed = [
            {
                a
                for a in dict.fromkeys((*graph.ops[o].inputs, *graph.ops[o].outputs))
                if a in self.index
            }
            for o in order
        ]
        # The search counts every load and store; the compulsory ones (first loads of
        # inputs and weights, stores of outputs; streamed weights are not modelled)
        # are subtracted at the end.
        self.compulsory_in_model = problem.compulsory_bytes() - sum(
            problem.streamed_weight_bytes(op.id) for op in graph.ops
        )
        self.best = functools.cache(self._best)

    def initial_state(self) -> tuple[_TensorState, ...]:
        """Nothing on chip; DRAM holds every tensor that is not an activation."""
        return tuple((-1, not self.activation[a]) for a in self.tensors)

    def end_options(self, a: int, copy: bool) -> list[tuple[bool, int]]:
        """(DRAM copy after, cost) of ending a residency: drop, or store when it adds a copy."""
        if not self.activation[a] or copy:
            return [(copy, 0)]
        return [(False, 0), (True, self.size[a])]

    def _final_cost(self, state: tuple[_TensorState, ...]) -> float:
        """End every residency still on chip; graph outputs must end with a DRAM copy."""
        choices = [
            self.end_options(a, copy) if off >= 0 else [(copy, 0)]
            for a, (off, copy) in zip(self.tensors, state, strict=True)
        ]
        total = _INF
        for combo in itertools.product(*choices):
            if all(
                copy
                for a, (copy, _) in zip(self.tensors, combo, strict=True)
                if self.output[a] and self.activation[a]
            ):
                total = min(total, sum(cost for _, cost in combo))
        return total

    def _best(self, t: int, state: tuple[_TensorState, ...]) -> float:
        """Least bytes moved from step ``t`` on, given ``state`` before it."""
        if t == self.n_steps:
            return self._final_cost(state)
        candidates = [
            a for a in self.tensors if ((m := self.made[a]) is None or m <= t) and self.last[a] >= t
        ]
        others = [a for a in self.tensors if a not in candidates]
        best = _INF

        def assign(i: int, occupied: int, new_state: list[_TensorState], cost: float) -> None:
            """Choose for candidates[i:], with ``occupied`` a bit mask of used units."""
            nonlocal best
            if cost >= best:
                return
            if i == len(candidates):
                best = min(best, self._close_others(t, state, others, new_state, cost))
                return
            a = candidates[i]
            k = self.index[a]
            off, copy = state[k]
            mask = (1 << self.units[a]) - 1
            must = a in self.needed[t]
            producing = self.made[a] == t
            ends = self.end_options(a, copy) if off >= 0 else [(copy, 0)]
            saved = new_state[k]
            if not must and not producing:  # off chip during step t
                for copy_after, c in ends:
                    new_state[k] = (-1, copy_after)
                    assign(i + 1, occupied, new_state, cost + c)
            if off >= 0 and not producing and not occupied & (mask << off):  # stay put
                new_state[k] = (off, copy)
                assign(i + 1, occupied | (mask << off), new_state, cost)
            for copy_after, c in ends:  # a new residency at any free offset
                can_load = not self.activation[a] or copy_after
                if not producing and (not can_load or not must):
                    continue  # a load starts at a read (starting earlier only costs space)
                arrive_cost = 0 if producing else self.size[a]
                for y in range(self.capacity_units - self.units[a] + 1):
                    if occupied & (mask << y):
                        continue
                    new_state[k] = (y, copy_after)
                    assign(i + 1, occupied | (mask << y), new_state, cost + c + arrive_cost)
            new_state[k] = saved

        assign(0, 0, list(state), 0.0)
        return best

    def _close_others(
        self,
        t: int,
        state: tuple[_TensorState, ...],
        others: list[int],
        new_state: list[_TensorState],
        cost: float,
    ) -> float:
        """End the residencies of tensors that cannot be on chip at step ``t``; recurse."""
        pending = [a for a in others if state[self.index[a]][0] >= 0]
        best = _INF
        for combo in itertools.product(
            *(self.end_options(a, state[self.index[a]][1]) for a in pending)
        ):
            final = list(new_state)
            extra = 0
            for a, (copy, c) in zip(pending, combo, strict=True):
                final[self.index[a]] = (-1, copy)
                extra += c
            best = min(best, cost + extra + self.best(t + 1, tuple(final)))
        return best
