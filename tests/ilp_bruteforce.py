"""Exact brute force for tiny problems, independent of the ILP models.

For one order, a dynamic program over steps whose state is, per tensor, its offset on
chip (or off chip) and whether DRAM holds a copy. Each step chooses, for every tensor
that may be on chip, to leave it off, keep it at its offset, or start a new residency
(produce at the producer's step, otherwise load from a DRAM copy) at any aligned offset
that fits; ending a residency may store it. This covers every valid plan (moves through
DRAM included) up to two safe prunings: a tensor is never on chip after its last use,
and a load starts at a step that reads the tensor (starting earlier only takes space).
The free-order optimum is the minimum over all topological orders.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence

from memplan.analysis import peak_live_bytes
from memplan.ir import Graph, TensorKind
from memplan.problem import Problem

INF = float("inf")


def topological_orders(graph: Graph) -> Iterator[tuple[int, ...]]:
    """Every topological order of the ops."""
    n = graph.num_ops
    preds = [set(graph.predecessors(o)) for o in range(n)]

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


def brute_min_peak(problem: Problem) -> int:
    """M_P by enumeration: the lowest no-spill peak over all topological orders."""
    sizes, scope = problem.aligned_sizes_bytes, problem.in_scope
    return min(
        peak_live_bytes(problem.graph, o, sizes, scope) for o in topological_orders(problem.graph)
    )


def brute_traffic(problem: Problem, order: Sequence[int]) -> float:
    """Minimum non-compulsory bytes of any valid plan with this order (INF if none)."""
    graph = problem.graph
    n = graph.num_ops
    unit = problem.alignment_bytes
    cap = problem.capacity_bytes // unit
    step = {o: t for t, o in enumerate(order)}
    tensors = [
        t.id
        for t in graph.tensors
        if problem.in_scope[t.id] and (graph.producer[t.id] is not None or graph.consumers[t.id])
    ]
    units = {a: problem.aligned_sizes_bytes[a] // unit for a in tensors}
    size = {a: graph.tensors[a].size_bytes for a in tensors}
    made = {
        a: (step[graph.producer[a]] if graph.producer[a] is not None else None) for a in tensors
    }
    activation = {a: graph.tensors[a].kind is TensorKind.ACTIVATION for a in tensors}
    output = {a: graph.tensors[a].is_output for a in tensors}
    uses = {a: sorted(step[c] for c in graph.consumers[a]) for a in tensors}
    last = {a: max([*uses[a], made[a] if made[a] is not None else -1]) for a in tensors}
    index = {a: i for i, a in enumerate(tensors)}
    needed = [
        {a for a in dict.fromkeys((*graph.ops[o].inputs, *graph.ops[o].outputs)) if a in index}
        for o in order
    ]

    def end_options(a: int, copy: bool) -> list[tuple[bool, int]]:
        """(copy after, cost) for ending a residency: drop, or store when it helps."""
        if not activation[a] or copy:
            return [(copy, 0)]
        return [(False, 0), (True, size[a])]

    @functools.cache
    def best(t: int, state: tuple[tuple[int, bool], ...]) -> float:
        # state[i] = (offset or -1, copy in DRAM) of tensors[i] before step t
        if t == n:
            total = INF
            # End every residency still on chip; outputs need a copy.
            choices = []
            for a in tensors:
                off, copy = state[index[a]]
                opts = end_options(a, copy) if off >= 0 else [(copy, 0)]
                choices.append(opts)
            for combo in itertools.product(*choices):
                if all(
                    c
                    for a, (c, _) in zip(tensors, combo, strict=True)
                    if output[a] and activation[a]
                ):
                    total = min(total, sum(cost for _, cost in combo))
            return total
        result = INF
        candidates = [a for a in tensors if (made[a] is None or made[a] <= t) and last[a] >= t]
        others = [a for a in tensors if a not in candidates]

        def assign(i: int, occupied: int, new_state: list[tuple[int, bool]], cost: float) -> None:
            nonlocal result
            if cost >= result:
                return
            if i == len(candidates):
                # Tensors that cannot be on chip now: end their residency if any.
                pending = [a for a in others if state[index[a]][0] >= 0]
                for combo in itertools.product(
                    *(end_options(a, state[index[a]][1]) for a in pending)
                ):
                    final = list(new_state)
                    extra = 0
                    for a, (copy, c) in zip(pending, combo, strict=True):
                        final[index[a]] = (-1, copy)
                        extra += c
                    result = min(result, cost + extra + best(t + 1, tuple(final)))
                return
            a = candidates[i]
            off, copy = state[index[a]]
            k = index[a]
            mask_of = lambda y: ((1 << units[a]) - 1) << y  # noqa: E731
            must = a in needed[t]
            producing = made[a] == t
            # Ending the current residency (if any) before off / new.
            ends = end_options(a, copy) if off >= 0 else [(copy, 0)]
            if not must and not producing:
                for copy2, c in ends:
                    saved = new_state[k]
                    new_state[k] = (-1, copy2)
                    assign(i + 1, occupied, new_state, cost + c)
                    new_state[k] = saved
            if off >= 0 and not producing and not (occupied & mask_of(off)):
                saved = new_state[k]
                new_state[k] = (off, copy)
                assign(i + 1, occupied | mask_of(off), new_state, cost)
                new_state[k] = saved
            for copy2, c in ends:
                can_load = not activation[a] or copy2
                if not producing and (not can_load or not must):
                    continue  # a load starts at a read (starting earlier only costs space)
                load_cost = 0 if producing else size[a]
                for y in range(cap - units[a] + 1):
                    if occupied & mask_of(y):
                        continue
                    saved = new_state[k]
                    new_state[k] = (y, copy2)
                    assign(i + 1, occupied | mask_of(y), new_state, cost + c + load_cost)
                    new_state[k] = saved

        start_state = list(state)
        assign(0, 0, start_state, 0.0)
        return result

    initial = tuple((-1, not activation[a]) for a in tensors)
    total = best(0, initial)
    if total == INF:
        return INF
    compulsory = problem.compulsory_bytes() - sum(
        problem.streamed_weight_bytes(o) for o in range(n)
    )
    return total - compulsory


def brute_free_traffic(problem: Problem) -> float:
    """Minimum non-compulsory bytes over all orders and plans."""
    return min(brute_traffic(problem, o) for o in topological_orders(problem.graph))


def tiny_graph(seed: int, n_ops: int, *, weights: bool = True) -> Graph:
    """A seeded tiny DAG with long skips and sizes of 1 to 3 KiB (spills matter).

    Each op reads the latest tensor or one of the three latest (so branches can run in
    parallel) and sometimes an older activation or the input, sometimes a weight; some
    ops write two activations; the last op's outputs and sometimes an inner activation
    are graph outputs.
    """
    import random

    from memplan.ir import GraphBuilder

    rng = random.Random(seed)
    b = GraphBuilder(f"tiny-{seed}-{n_ops}")
    kib = 1024
    x = b.tensor("x", rng.choice((1, 2)) * kib, TensorKind.INPUT)
    produced = [x]
    for i in range(n_ops):
        reads = [produced[-1] if rng.random() < 0.6 else rng.choice(produced[-3:])]
        if len(produced) > 2 and rng.random() < 0.6:
            older = rng.choice(produced[:-1])
            if older not in reads:
                reads.append(older)
        if weights and rng.random() < 0.3:
            reads.append(b.tensor(f"w{i}", kib, TensorKind.WEIGHT))
        outs = [b.tensor(f"t{i}", rng.choice((1, 2, 3)) * kib)]
        if rng.random() < 0.15:
            outs.append(b.tensor(f"t{i}b", rng.choice((1, 2)) * kib))
        b.op(f"op{i}", "Op", reads, outs)
        produced.extend(outs)
    for t in produced[-1:]:
        b.mark_output(t)
    if rng.random() < 0.3:
        b.mark_output(produced[rng.randrange(1, len(produced))])
    return b.build()
