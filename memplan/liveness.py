"""Live bytes of a graph under an order: steps, lifetimes, live bytes, working sets.

The bottom of the analyses (:mod:`memplan.analysis` re-exports everything here, and
:mod:`memplan.schedule` builds on it). Everything works on plain arrays
(``sizes_bytes`` and ``in_scope`` indexed by tensor id) so that it serves any scope and
alignment; :class:`memplan.problem.Problem` supplies them.

A tensor's *lifetime* under an order is the half-open step interval during which it
must be on chip if it is never spilled::

    step:        0    1    2    3    4
    producer     X
    consumers              X         X
    lifetime     [0 ───────────────── 5)

Inputs and weights (no producer) live from their first use to their last use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memplan.ir import Graph


def steps_of(order: Sequence[int]) -> list[int]:
    """Inverse permutation: ``steps_of(order)[op]`` is the step at which ``op`` runs."""
    step = [0] * len(order)
    for t, op in enumerate(order):
        step[op] = t
    return step


def tensor_lifetimes(
    graph: Graph, order: Sequence[int], in_scope: Sequence[bool]
) -> list[tuple[int, int] | None]:
    """Half-open ``[first, last + 1)`` step interval of every in-scope tensor.

    ``None`` for tensors out of scope or never touched by any op.
    """
    step = steps_of(order)
    lifetimes: list[tuple[int, int] | None] = [None] * graph.num_tensors
    for tensor in graph.tensors:
        if not in_scope[tensor.id]:
            continue
        touching = [step[c] for c in graph.consumers[tensor.id]]
        producer = graph.producer[tensor.id]
        if producer is not None:
            touching.append(step[producer])
        if touching:
            lifetimes[tensor.id] = (min(touching), max(touching) + 1)
    return lifetimes


def live_bytes_per_step(
    graph: Graph, order: Sequence[int], sizes_bytes: Sequence[int], in_scope: Sequence[bool]
) -> np.ndarray:
    """Bytes of in-scope tensors live at each step when nothing is spilled."""
    delta = np.zeros(graph.num_ops + 1, dtype=np.int64)
    for tensor_id, span in enumerate(tensor_lifetimes(graph, order, in_scope)):
        if span is not None:
            delta[span[0]] += sizes_bytes[tensor_id]
            delta[span[1]] -= sizes_bytes[tensor_id]
    return np.cumsum(delta)[:-1]


def peak_live_bytes(
    graph: Graph, order: Sequence[int], sizes_bytes: Sequence[int], in_scope: Sequence[bool]
) -> int:
    """Highest live bytes over the steps of ``order`` (no spilling)."""
    if graph.num_ops == 0:
        return 0
    return int(live_bytes_per_step(graph, order, sizes_bytes, in_scope).max())


def working_set_bytes(
    graph: Graph, sizes_bytes: Sequence[int], in_scope: Sequence[bool]
) -> list[int]:
    """Per op, the bytes of its distinct in-scope inputs and outputs (must be on chip)."""
    result = []
    for op in graph.ops:
        touched = dict.fromkeys((*op.inputs, *op.outputs))
        result.append(sum(sizes_bytes[t] for t in touched if in_scope[t]))
    return result
