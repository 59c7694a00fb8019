"""Analyses of a graph under an order: lifetimes, live bytes, working sets, orders.

Everything here works on plain arrays (``sizes_bytes`` and ``in_scope`` indexed by
tensor id) so that it serves any scope and alignment; :class:`memplan.problem.Problem`
supplies them. Lifetimes and live bytes live in :mod:`memplan.liveness` (re-exported
here); the heuristic orders are here, and the min-peak search in :mod:`memplan.schedule`.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memplan.errors import GraphError
from memplan.ir import Graph, OpId
from memplan.liveness import (
    live_bytes_per_step,
    peak_live_bytes,
    steps_of,
    tensor_lifetimes,
    working_set_bytes,
)

if TYPE_CHECKING:
    from memplan.schedule import PeakSchedule, StopCheck

__all__ = [
    "NAMED_ORDERS",
    "breadth_first_order",
    "check_order",
    "co_resident_pairs",
    "default_min_peak_schedule",
    "depth_first_order",
    "list_min_peak_order",
    "live_bytes_per_step",
    "min_peak_order",
    "model_order",
    "named_order",
    "peak_live_bytes",
    "reverse_post_order",
    "steps_of",
    "tensor_lifetimes",
    "working_set_bytes",
]


def model_order(graph: Graph) -> tuple[OpId, ...]:
    """The model's own order: ops as listed in the source file."""
    return tuple(OpId(i) for i in range(graph.num_ops))


def check_order(graph: Graph, order: Sequence[int]) -> None:
    """Raise :class:`GraphError` unless ``order`` is a topological order of all ops."""
    n = graph.num_ops
    if sorted(order) != list(range(n)):
        raise GraphError(f"graph {graph.name!r}: an order must list each of the {n} ops once")
    step = steps_of(order)
    for op in graph.ops:
        for pred in graph.predecessors(op.id):
            if step[pred] > step[op.id]:
                raise GraphError(
                    f"graph {graph.name!r}: op {op.name!r} runs before its input producer "
                    f"{graph.ops[pred].name!r}"
                )


def list_min_peak_order(
    graph: Graph, sizes_bytes: Sequence[int], in_scope: Sequence[bool]
) -> tuple[OpId, ...]:
    """The best of the list schedulers (a fast heuristic; an upper bound on M_P).

    Runs the model's order, a memory-greedy scheduler with two tie-break rules (left out
    when its rescoring work, :func:`greedy_rescoring_work`, is above
    :data:`GREEDY_RESCORING_LIMIT`), a depth-first scheduler that finishes branches and
    the reverse post-order, and keeps the order with the lowest peak.
    """
    candidates = [model_order(graph)]
    if greedy_rescoring_work(graph) <= GREEDY_RESCORING_LIMIT:
        candidates += [
            _greedy_memory_order(graph, sizes_bytes, in_scope, prefer_deep=False),
            _greedy_memory_order(graph, sizes_bytes, in_scope, prefer_deep=True),
        ]
    candidates += [depth_first_order(graph), reverse_post_order(graph)]
    return min(candidates, key=lambda o: peak_live_bytes(graph, o, sizes_bytes, in_scope))


#: Most rescoring work (:func:`greedy_rescoring_work`) for which :func:`list_min_peak_order`
#: runs the memory-greedy list scheduler: one input read by 10,000 ops made it score ops
#: 100 million times (minutes); the catalog's graphs need at most a few thousand.
GREEDY_RESCORING_LIMIT = 4_000_000


def greedy_rescoring_work(graph: Graph) -> int:
    """An upper bound on the scores the memory-greedy list scheduler computes again:
    each read of a tensor rescores its ready readers, so the sum over tensors of the
    square of their number of readers."""
    return sum(len(set(readers)) ** 2 for readers in graph.consumers)


#: Search states the windows of :func:`min_peak_order` may expand (about a second on
#: the largest graphs of the catalog; deterministic).
MIN_PEAK_WINDOW_NODES = 40_000


def min_peak_order(
    graph: Graph, sizes_bytes: Sequence[int], in_scope: Sequence[bool]
) -> tuple[OpId, ...]:
    """A low-peak order (an upper bound on M_P), cheap enough to call from any solver.

    The best list-scheduler order (:func:`list_min_peak_order`), improved by exact
    re-solves of windows around its peak step (:func:`memplan.schedule.improve_by_windows`)
    with a fixed number of search states, so the result is reproducible. The search
    that proves M_P is :func:`memplan.schedule.min_peak_schedule` (used for budgets).
    """
    return _min_peak_order(graph, tuple(sizes_bytes), tuple(in_scope))


@functools.lru_cache(maxsize=16)
def _min_peak_order(
    graph: Graph, sizes_bytes: tuple[int, ...], in_scope: tuple[bool, ...]
) -> tuple[OpId, ...]:
    from memplan.schedule import improve_by_windows  # schedule builds on this module

    start = list_min_peak_order(graph, sizes_bytes, in_scope)
    order, _ = improve_by_windows(
        graph, sizes_bytes, in_scope, start, total_node_limit=MIN_PEAK_WINDOW_NODES
    )
    return order


def _greedy_memory_order(
    graph: Graph, sizes_bytes: Sequence[int], in_scope: Sequence[bool], *, prefer_deep: bool
) -> tuple[OpId, ...]:
    """List scheduler: always run the ready op that leaves the least memory live.

    The score of a ready op is (live bytes while it runs, net change of live bytes);
    ``prefer_deep`` breaks ties towards ops that consume recently produced tensors.
    The ready ops wait in a heap; running an op changes the score only of the ready ops
    that read a tensor it touched, so only those are scored again (rescanning every ready
    op at every step took 9 s per call on a 26,000-op RandWire network).
    """
    n = graph.num_ops
    remaining_uses = [len(graph.consumers[t]) for t in range(graph.num_tensors)]
    live = [False] * graph.num_tensors
    indegree = [len(graph.predecessors(OpId(i))) for i in range(n)]
    last_step_touched = [-1] * graph.num_tensors
    reads = [tuple(dict.fromkeys(op.inputs)) for op in graph.ops]
    produce = [sum(sizes_bytes[t] for t in op.outputs if in_scope[t]) for op in graph.ops]
    unread = [
        sum(sizes_bytes[t] for t in op.outputs if in_scope[t] and not graph.consumers[t])
        for op in graph.ops
    ]

    def key(i: int) -> tuple[int, int, int, int]:
        # The live bytes before the step, common to every ready op, are left out.
        load = sum(sizes_bytes[t] for t in reads[i] if in_scope[t] and not live[t])
        freed = unread[i] + sum(
            sizes_bytes[t]
            for t in reads[i]
            if in_scope[t] and remaining_uses[t] == 1 and not graph.tensors[t].is_output
        )
        recency = max((last_step_touched[t] for t in graph.ops[i].inputs), default=-1)
        return (load + produce[i], load + produce[i] - freed, -recency if prefer_deep else 0, i)

    current: dict[int, tuple[int, int, int, int]] = {}  # ready op -> its score now
    heap: list[tuple[int, int, int, int]] = []

    def score(i: int) -> None:
        current[i] = k = key(i)
        heapq.heappush(heap, k)

    for i in range(n):
        if indegree[i] == 0:
            score(i)
    order: list[OpId] = []
    while heap:
        best = heapq.heappop(heap)
        best_op = best[3]
        if current.get(best_op) != best:
            continue  # scored again since, or already run
        del current[best_op]
        op = graph.ops[best_op]
        step = len(order)
        order.append(OpId(best_op))
        for t in reads[best_op]:
            if in_scope[t] and not live[t]:
                live[t] = True
            remaining_uses[t] -= 1
            last_step_touched[t] = step
            if remaining_uses[t] == 0 and live[t]:
                live[t] = False
        for t in op.outputs:
            last_step_touched[t] = step
            if in_scope[t] and graph.consumers[t]:
                live[t] = True
        for t in reads[best_op]:
            if in_scope[t] or prefer_deep:  # else only its recency changed, unused then
                for c in dict.fromkeys(graph.consumers[t]):
                    if c in current:
                        score(c)
        for succ in graph.successors(op.id):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                score(succ)
    return tuple(order)


def depth_first_order(graph: Graph) -> tuple[OpId, ...]:
    """Topological order that finishes the most recently opened branch first."""
    indegree = [len(graph.predecessors(OpId(i))) for i in range(graph.num_ops)]
    # Max-heap on the time an op became ready: newest first; ties by model order.
    heap: list[tuple[int, int]] = [(0, i) for i in range(graph.num_ops) if indegree[i] == 0]
    heapq.heapify(heap)
    order: list[OpId] = []
    clock = 0
    while heap:
        _, i = heapq.heappop(heap)
        order.append(OpId(i))
        for succ in graph.successors(OpId(i)):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                clock -= 1
                heapq.heappush(heap, (clock, succ))
    return tuple(order)


def reverse_post_order(graph: Graph) -> tuple[OpId, ...]:
    """Reverse post-order of a depth-first walk from the source ops (successors in id
    order): the usual compiler order, and the baseline of Serenity and HMCOS."""
    seen = [False] * graph.num_ops
    post: list[OpId] = []
    for root in range(graph.num_ops):
        if seen[root] or graph.predecessors(OpId(root)):
            continue
        seen[root] = True
        stack = [(root, iter(graph.successors(OpId(root))))]
        while stack:
            op, successors = stack[-1]
            nxt = next((s for s in successors if not seen[s]), None)
            if nxt is None:
                post.append(OpId(op))
                stack.pop()
            else:
                seen[nxt] = True
                stack.append((nxt, iter(graph.successors(OpId(nxt)))))
    return tuple(reversed(post))


def breadth_first_order(graph: Graph) -> tuple[OpId, ...]:
    """Topological order by levels (Kahn's algorithm, FIFO)."""
    indegree = [len(graph.predecessors(OpId(i))) for i in range(graph.num_ops)]
    queue = [i for i in range(graph.num_ops) if indegree[i] == 0]
    order: list[OpId] = []
    head = 0
    while head < len(queue):
        i = queue[head]
        head += 1
        order.append(OpId(i))
        for succ in graph.successors(OpId(i)):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                queue.append(succ)
    return tuple(order)


def co_resident_pairs(graph: Graph, order: Sequence[int], in_scope: Sequence[bool]) -> int:
    """Number of unordered pairs of in-scope tensors whose lifetimes overlap.

    This is the number of pairwise non-overlap constraints an exact allocator needs.
    """
    events: list[tuple[int, int]] = []
    for span in tensor_lifetimes(graph, order, in_scope):
        if span is not None:
            events.append((span[0], 1))
            events.append((span[1], -1))
    # Ends sort before starts at the same step (half-open intervals do not touch).
    events.sort(key=lambda e: (e[0], e[1]))
    pairs = 0
    live = 0
    for _, kind in events:
        if kind == 1:
            pairs += live
            live += 1
        else:
            live -= 1
    return pairs


#: Names of the heuristic orders of :func:`named_order`.
NAMED_ORDERS = ("model", "min-peak", "dfs", "bfs", "rpo")


def named_order(
    graph: Graph, name: str, sizes_bytes: Sequence[int], in_scope: Sequence[bool]
) -> tuple[OpId, ...]:
    """The order a solver option names: ``model``, ``min-peak``, ``dfs``, ``bfs`` or ``rpo``."""
    if name == "min-peak":
        return min_peak_order(graph, sizes_bytes, in_scope)
    if name == "dfs":
        return depth_first_order(graph)
    if name == "bfs":
        return breadth_first_order(graph)
    if name == "rpo":
        return reverse_post_order(graph)
    if name == "model":
        return model_order(graph)
    raise ValueError(f"unknown order {name!r}; use one of {', '.join(NAMED_ORDERS)}")


#: Default searches that ran to their end in this process, oldest first (see
#: :func:`default_min_peak_schedule`); a few graphs at most.
_FINISHED: dict[tuple[Graph, tuple[int, ...], tuple[bool, ...]], PeakSchedule] = {}
_FINISHED_KEPT = 4


def default_min_peak_schedule(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    *,
    should_stop: StopCheck | None = None,
) -> PeakSchedule:
    """:func:`memplan.schedule.min_peak_schedule` from :func:`min_peak_order` with the
    default node limit: what an M_P or M_H budget and dnc's start both need.

    The search counts states, not seconds, so the same inputs give the same schedule; one
    that ran to its end is kept for this process, and the next caller with the same
    graph, sizes and scope gets it at once (``memplan optimize --budget MH --solver dnc``
    searched twice, 4.5 s each on randwire_ws_large). A search ``should_stop`` cut short
    is not kept.
    """
    from memplan.schedule import min_peak_schedule  # schedule builds on this module

    key = (graph, tuple(sizes_bytes), tuple(in_scope))
    known = _FINISHED.get(key)
    if known is not None:
        return known
    start = min_peak_order(graph, sizes_bytes, in_scope)
    schedule = min_peak_schedule(graph, sizes_bytes, in_scope, start, should_stop=should_stop)
    if should_stop is None or not should_stop():
        while len(_FINISHED) >= _FINISHED_KEPT:
            del _FINISHED[next(iter(_FINISHED))]
        _FINISHED[key] = schedule
    return schedule
