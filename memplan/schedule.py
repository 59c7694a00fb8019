"""Orders of minimum peak: an exact branch and bound over partial schedules, and windows.

The peak of an order is the highest sum of live in-scope bytes over its steps, with no
spilling (:func:`memplan.analysis.peak_live_bytes`); M_P is its minimum over all
topological orders (PROBLEM.md section 5). Which tensors are live after a set ``S`` of
scheduled ops does not depend on the order inside ``S`` (a tensor is live once one of
its ops ran and until all of them ran), so the search keys its states by ``S`` alone
(Serenity's dynamic programme) and keeps, per state, the lowest peak it arrived with::

    state S = {a, b}        live after S: tensors touched by S with a toucher left
      ├─ run c ─► S+c        step bytes = live(S) + new tensors of c
      └─ run d ─► S+d        peak(S+d) = max(peak(S), step bytes)

Three rules keep the search small, none loses an optimum:

- *memo*: a state reached again with a peak no lower than before is dropped;
- *bound*: children are tried by step bytes, and a child whose peak reaches the best
  complete order found so far is dropped with every later one;
- *eager ops*: when a ready op ``o`` frees at least the bytes it adds (``new <= freed``)
  and its step stays within the peak already reached (or the floor below which nothing
  matters), ``o`` is the only child. Moving ``o`` earlier in any completion changes the
  live bytes of every step it jumps over by ``new - freed <= 0`` (the tensors it frees
  are live and untouched there, its new ones are at most added), and its own step is
  within the peak already paid, so some best completion runs ``o`` first.

The search runs on a *window*: a run of consecutive steps of an order, with the ops
before it done and the ops after it still to come. The whole graph is the window of
every step. A search that ends within its node limit is exhaustive: its order is
optimal for the window (and, for the whole graph, proves M_P). Large graphs are
improved window by window around the current peak step (HMCOS-style: ungroup around
the peak, re-solve, repeat) with a node limit per window, so results are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memplan.ir import Graph, OpId
from memplan.liveness import live_bytes_per_step, peak_live_bytes, working_set_bytes


@dataclass(frozen=True, slots=True)
class PeakSchedule:
    """The best order a min-peak search found, and what it proves."""

    order: tuple[OpId, ...]  # the order of lowest peak found
    peak_bytes: int  # its peak live bytes (aligned sizes, no spilling)
    lower_bound_bytes: int  # a proven lower bound on M_P
    proven: bool  # True when peak_bytes is proven to be M_P
    nodes: int  # search states expanded
    source: str  # how the order was found


@dataclass(slots=True)
class _Window:
    """The search context of a set of ops: local ids, bit masks, tensors that matter.

    A tensor is *opened* once one op of its ``opens`` mask ran (or from the start when
    ``open0``) and *kept* while one op of its ``keeps`` mask has not run yet (or for good
    when ``kept_end``); it is live at the step of op ``o`` after the set ``M`` ran when it
    is opened by ``M + o`` and kept after ``M``. Ops of the window that touch it are in
    both masks; ops outside the window add what they imply (see :func:`_window`).
    """

    ops: list[int]  # local op -> graph op id
    preds: list[int]  # local op -> mask of its predecessors inside the window
    succs: list[list[int]]  # local op -> local successors
    affected: list[list[int]]  # local op -> local tensors whose state its run can change
    size: list[int]  # local tensor -> aligned bytes
    opens: list[int]  # local tensor -> mask of ops after whose run it is open
    keeps: list[int]  # local tensor -> mask of ops before whose run it is kept
    open0: list[bool]  # local tensor -> open before any op of the window runs
    kept_end: list[bool]  # local tensor -> kept after every op of the window ran
    start_bytes: int  # live bytes before any op of the window runs


#: What an op outside a window implies for a tensor it touches: (opens, keeps) masks.
_Outside = dict[int, tuple[int, int]]


def _window(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    ops: Sequence[int],
    outside: _Outside,
) -> _Window:
    """The search context of ``ops`` (a list of graph op ids).

    ``outside[u] = (opens, keeps)`` for an op ``u`` outside the window: a tensor ``u``
    touches is open after any op of ``opens`` ran (``u`` runs before them) and kept
    until every op of ``keeps`` ran (``u`` runs after them). Ops missing from
    ``outside`` are ignored, which can only lower the live bytes counted.
    """
    ops = [int(o) for o in ops]
    n = len(ops)
    full = (1 << n) - 1
    local = {o: i for i, o in enumerate(ops)}
    size: list[int] = []
    opens: list[int] = []
    keeps: list[int] = []
    for t in range(graph.num_tensors):
        if not in_scope[t]:
            continue
        producer = graph.producer[t]
        touchers = [*graph.consumers[t], *([producer] if producer is not None else [])]
        opened = kept = 0
        for u in touchers:
            i = local.get(u)
            if i is not None:
                opened |= 1 << i
                kept |= 1 << i
            elif u in outside:
                more_open, more_kept = outside[u]
                opened |= more_open
                kept |= more_kept
        if opened and kept:
            size.append(sizes_bytes[t])
            opens.append(opened)
            keeps.append(kept)
    open0 = [m == full for m in opens]
    kept_end = [m == full for m in keeps]
    affected: list[list[int]] = [[] for _ in ops]
    start_bytes = 0
    for k in range(len(size)):
        if open0[k] and kept_end[k]:
            start_bytes += size[k]  # live all through: never changes
            continue
        if open0[k]:
            start_bytes += size[k]
        changes = (0 if open0[k] else opens[k]) | (0 if kept_end[k] else keeps[k])
        while changes:
            low = changes & -changes
            affected[low.bit_length() - 1].append(k)
            changes ^= low
    preds = [0] * n
    succs: list[list[int]] = [[] for _ in ops]
    for i, o in enumerate(ops):
        for p in graph.predecessors(OpId(o)):
            if p in local:
                preds[i] |= 1 << local[p]
                succs[local[p]].append(i)
    return _Window(ops, preds, succs, affected, size, opens, keeps, open0, kept_end, start_bytes)


def _order_window(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    order: Sequence[int],
    start: int,
    end: int,
) -> _Window:
    """The steps ``[start, end)`` of ``order``, the rest of the order fixed around them."""
    full = (1 << (end - start)) - 1
    outside: _Outside = {int(u): (full, 0) for u in order[:start]}
    outside.update({int(u): (0, full) for u in order[end:]})
    return _window(graph, sizes_bytes, in_scope, order[start:end], outside)


@dataclass(slots=True)
class _Outcome:
    peak_bytes: int | None  # best window peak found below the upper bound, or None
    order: list[int] | None  # its local op order
    complete: bool  # the search ran out of states (not out of nodes)
    nodes: int  # states expanded


#: A check the searches make when they start and every :data:`STOP_EVERY` states: True
#: stops them (unproven).
StopCheck = Callable[[], bool]
#: States between two stop checks: a state of a 192-op window can take a millisecond
#: under load, and a check costs well under a microsecond (every 4,096 states let dnc
#: run 0.6-0.85 s past its limit on a 182-op graph).
STOP_EVERY = 16


def _search(
    w: _Window, floor: int, upper: int, node_limit: int, should_stop: StopCheck | None = None
) -> _Outcome:
    """Depth-first branch and bound for the window order of least peak below ``upper``.

    Stops early at a peak <= ``floor`` (nothing below it matters). ``complete`` means
    every order below the returned peak (or below ``upper`` when none was found) was
    ruled out, or the floor was reached.
    """
    if should_stop is not None and should_stop():
        return _Outcome(None, None, False, 0)  # callers run many short searches in a row
    n = len(w.ops)
    full = (1 << n) - 1
    affected, size, opens, keeps = w.affected, w.size, w.opens, w.keeps
    open0, kept_end, preds, succs = w.open0, w.kept_end, w.preds, w.succs

    def children(mask: int, ready: list[int], peak: int, cur: int) -> list[tuple[int, int, int]]:
        slack = max(peak, floor)
        found = []
        left = ~mask  # ops not run yet
        for o in ready:
            bit = 1 << o
            left_after = left ^ bit
            new = freed = 0
            for t in affected[o]:
                was_open = open0[t] or opens[t] & mask
                if not (was_open or opens[t] & bit):
                    continue  # o only ends a keep of a tensor not open: not live
                if not (kept_end[t] or keeps[t] & left):
                    continue
                if not was_open:
                    new += size[t]
                if not (kept_end[t] or keeps[t] & left_after):
                    freed += size[t]
            step = cur + new
            if new <= freed and step <= slack:
                return [(step, step - freed, o)]
            found.append((step, step - freed, o))
        found.sort()
        return found

    best_peak, best_order = upper, None
    memo: dict[int, int] = {}
    nodes = 0
    ready0 = [i for i in range(n) if not preds[i]]
    stack = [(0, ready0, 0, children(0, ready0, 0, w.start_bytes))]
    cursor = [0]
    path: list[int] = []
    complete = True
    while stack:
        mask, ready, peak, options = stack[-1]
        i = cursor[-1]
        if i >= len(options) or max(peak, options[i][0]) >= best_peak:
            stack.pop()
            cursor.pop()
            if path:
                path.pop()
            continue
        cursor[-1] = i + 1
        step, cur, o = options[i]
        new_peak = max(peak, step)
        nm = mask | (1 << o)
        seen = memo.get(nm)
        if seen is not None and seen <= new_peak:
            continue
        memo[nm] = new_peak
        nodes += 1
        if nm == full:
            best_peak, best_order = new_peak, [*path, o]
            if best_peak <= floor:
                break
            continue
        stop = should_stop is not None and not nodes % STOP_EVERY and should_stop()
        if nodes >= node_limit or stop:
            complete = False
            break
        nready = [r for r in ready if r != o]
        for s in succs[o]:
            if not preds[s] & ~nm:
                nready.append(s)
        path.append(o)
        stack.append((nm, nready, new_peak, children(nm, nready, new_peak, cur)))
        cursor.append(0)
    return _Outcome(best_peak if best_order is not None else None, best_order, complete, nodes)


def static_lower_bound(graph: Graph, sizes_bytes: Sequence[int], in_scope: Sequence[bool]) -> int:
    """A lower bound on M_P: the largest working set of one op (M_R without alignment)."""
    return max(working_set_bytes(graph, sizes_bytes, in_scope), default=0)


def _below(
    w: _Window, target: int, node_limit: int, should_stop: StopCheck | None = None
) -> _Outcome:
    """Decide whether the window has an order of peak below ``target``.

    The floor is ``target - 1``: the first order found below the target ends the search,
    and the eager rule may run any op that frees what it adds while its step stays
    below the target. ``complete`` without an order proves that none exists.
    """
    return _search(w, target - 1, target, node_limit, should_stop)


def exact_search(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    start_order: Sequence[int],
    node_limit: int,
    *,
    should_stop: StopCheck | None = None,
) -> PeakSchedule:
    """Lower the peak of ``start_order`` over the whole graph until no lower one exists.

    Each round decides, by branch and bound, whether an order with a peak below the
    best so far exists; the round that finds none within the node limit (counted over
    all rounds) proves the best order optimal.
    """
    order = tuple(OpId(int(o)) for o in start_order)
    peak = peak_live_bytes(graph, order, sizes_bytes, in_scope)
    floor = static_lower_bound(graph, sizes_bytes, in_scope)
    if graph.num_ops == 0 or peak <= floor:
        return PeakSchedule(order, peak, peak, True, 0, "the largest working set")
    window = _window(graph, sizes_bytes, in_scope, order, {})
    nodes = 0
    while nodes < node_limit:
        outcome = _below(window, peak, node_limit - nodes, should_stop)
        nodes += outcome.nodes
        if outcome.order is None or outcome.peak_bytes is None:
            if outcome.complete:
                return PeakSchedule(order, peak, peak, True, nodes, "exact branch and bound")
            break
        order = tuple(OpId(window.ops[i]) for i in outcome.order)
        peak = outcome.peak_bytes
        if peak <= floor:
            return PeakSchedule(order, peak, peak, True, nodes, "the largest working set")
    return PeakSchedule(order, peak, floor, False, nodes, "branch and bound (node limit)")


def op_closures(graph: Graph) -> tuple[list[int], list[int]]:
    """Per op, the bit sets (bit ``i`` = op ``i``) of its ancestors and descendants."""
    n = graph.num_ops
    ancestors = [0] * n
    for o in range(n):  # ops are stored in a topological order
        bits = 0
        for p in graph.predecessors(OpId(o)):
            bits |= ancestors[p] | (1 << p)
        ancestors[o] = bits
    descendants = [0] * n
    for o in reversed(range(n)):
        bits = 0
        for c in graph.successors(OpId(o)):
            bits |= descendants[c] | (1 << c)
        descendants[o] = bits
    return ancestors, descendants


def _region_window(
    graph: Graph, sizes_bytes: Sequence[int], in_scope: Sequence[bool], region: Sequence[int]
) -> _Window:
    """The relaxation of ``region`` (see :func:`relaxation_bound`) as a search window.

    An op ``u`` outside the region opens a tensor for the region's ops that descend from
    it and keeps it for those it descends from. Both masks (bit ``i`` = ``region[i]``)
    come from one pass over the edges in each direction with region-sized bit sets: the
    graph-wide closures this used cost O(ops^2) (20 s on a 26,000-op graph).
    """
    position = {int(o): i for i, o in enumerate(region)}
    n = graph.num_ops
    below = [0] * n  # op -> region ops it descends from (its ancestors in the region)
    for o in range(n):  # ops are stored in a topological order
        bits = 0
        for p in graph.predecessors(OpId(o)):
            i = position.get(p)
            bits |= below[p] if i is None else below[p] | 1 << i
        below[o] = bits
    above = [0] * n  # op -> region ops that descend from it
    for o in reversed(range(n)):
        bits = 0
        for c in graph.successors(OpId(o)):
            i = position.get(c)
            bits |= above[c] if i is None else above[c] | 1 << i
        above[o] = bits
    outside: _Outside = {
        u: (above[u], below[u]) for u in range(n) if u not in position and (above[u] or below[u])
    }
    return _window(graph, sizes_bytes, in_scope, list(position), outside)


def region_min_peak(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    region: Sequence[int],
    *,
    floor: int = 0,
    node_limit: int = 200_000,
    should_stop: StopCheck | None = None,
) -> tuple[int | None, int]:
    """A bound B: every order of the whole graph has, at the step of some op of
    ``region``, at least B live bytes (by the relaxation of :func:`relaxation_bound`).

    B is the relaxation's least peak when that is above ``floor``; when some order of the
    region stays within ``floor`` (nothing below it matters to the caller), B is 0.

    Returns:
        B (None when the search ran out of states), and the states used.
    """
    window = _region_window(graph, sizes_bytes, in_scope, region)
    cap = sum(window.size) + window.start_bytes + 1
    outcome = _search(window, floor, cap, node_limit, should_stop)
    if not outcome.complete or outcome.peak_bytes is None:
        return None, outcome.nodes
    return (outcome.peak_bytes if outcome.peak_bytes > floor else 0), outcome.nodes


def relaxation_bound(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    order: Sequence[int],
    target: int,
    *,
    window_ops: Sequence[int] = (32, 64, 128, 256),
    node_limit: int = 200_000,
    should_stop: StopCheck | None = None,
) -> tuple[bool, int]:
    """Prove that no order of the graph has a peak below ``target``, from a region.

    Lemma: take any set R of ops and any order of the whole graph. At the step of an op
    ``o`` of R, a tensor is live when some op touching it ran at or before that step and
    some op touching it runs at or after it. An op outside R that is an ancestor of an
    op of R already run (or of ``o``) ran before; one that is a descendant of an op of
    R not run yet (or of ``o``) runs after. Counting only the tensors these facts prove
    live (:class:`_Window` with those masks) counts a subset of the live bytes at each
    step of R, whatever the order. The search over R's orders also ignores precedences
    that pass outside R, so it sees more orders, not fewer. Hence its least peak is a
    lower bound on M_P: when the exhaustive search finds no order of R below ``target``,
    M_P >= ``target``.

    The regions tried are the runs of ``window_ops`` steps of ``order`` around its
    first peak step.

    Returns:
        Whether some region proves the bound, and the search states used (at most
        ``node_limit`` over all regions).
    """
    n = graph.num_ops
    if n == 0:
        return target <= 0, 0
    used = 0
    live = live_bytes_per_step(graph, order, sizes_bytes, in_scope)
    at = int(live.argmax())
    for width in window_ops:
        start = max(0, min(at - width // 2, n - width))
        region = [int(o) for o in order[start : start + width]]
        window = _region_window(graph, sizes_bytes, in_scope, region)
        outcome = _below(window, target, node_limit - used, should_stop)
        used += outcome.nodes
        if outcome.order is None and outcome.complete:
            return True, used
        if width >= n or used >= node_limit or (should_stop is not None and should_stop()):
            break
    return False, used


#: Set-up work :func:`improve_by_windows` may spend (ops + tensors per window): the
#: catalog's largest workloads use at most 352,000 (randwire_ws_large, all scope); a
#: random graph of 50,000 ops would otherwise spend minutes setting windows up.
WINDOW_SETUP_LIMIT = 2_000_000


def improve_by_windows(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    order: Sequence[int],
    *,
    window_ops: Sequence[int] = (16, 32, 64),
    node_limit: int = 20_000,
    total_node_limit: int = 400_000,
    setup_limit: int = WINDOW_SETUP_LIMIT,
    should_stop: StopCheck | None = None,
) -> tuple[tuple[OpId, ...], int]:
    """Lower an order's peak by re-solving windows of it around its peak steps.

    Repeatedly takes the first step at the current peak and re-solves windows of
    ``window_ops`` steps around it (smallest first, the peak step in the middle, near
    the end and near the start) with the rest of the order fixed; a window order of
    lower peak replaces the window. Stops when no window helps, after
    ``total_node_limit`` states, or once setting windows up has cost ``setup_limit``
    units (a window's set-up walks every op and tensor of the graph: ops + tensors units).

    Returns:
        The improved order and the number of search states used.
    """
    current = [int(o) for o in order]
    n = len(current)
    used = 0
    setup_cost, setup_used = n + graph.num_tensors, 0
    while used < total_node_limit and setup_used < setup_limit and n:
        live = live_bytes_per_step(graph, current, sizes_bytes, in_scope)
        peak = int(live.max())
        at = int(live.argmax())
        improved = False
        tries = [
            (width, max(0, min(at - shift, n - width)))
            for width in window_ops
            for shift in (width // 2, width - width // 4, width // 4)
        ]
        for width, start in dict.fromkeys(tries):
            end = min(n, start + width)
            outside = [int(v) for k, v in enumerate(live) if not start <= k < end and v < peak]
            if setup_used >= setup_limit:
                break
            setup_used += setup_cost
            window = _order_window(graph, sizes_bytes, in_scope, current, start, end)
            floor = max(outside, default=0)
            limit = min(node_limit, total_node_limit - used)
            outcome = _search(window, floor, peak, limit, should_stop)
            used += outcome.nodes
            if outcome.order is not None:
                current[start:end] = [window.ops[i] for i in outcome.order]
                improved = True
                break
            if used >= total_node_limit or (should_stop is not None and should_stop()):
                break
        if not improved:
            break
    return tuple(OpId(o) for o in current), used


#: Search states :func:`min_peak_schedule` may expand by default (up to about 15 s of
#: Python on the largest graphs; small graphs finish, proven, far below it).
DEFAULT_NODE_LIMIT = 200_000

#: Graphs of up to this many ops give the search over the whole graph every state left;
#: larger ones fewer, in proportion to the square of the ratio. A state of that search
#: works on bit sets of one bit per op, so its cost grows with the graph: 200,000 states
#: took about 55 s on a 26,000-op RandWire network (the catalog's largest has 2,070).
WHOLE_GRAPH_OPS = 4096


def whole_graph_states(states: int, num_ops: int) -> int:
    """The states the search over a whole graph of ``num_ops`` ops gets of ``states``:
    all of them up to :data:`WHOLE_GRAPH_OPS` ops, then ``states * (WHOLE_GRAPH_OPS /
    num_ops) ** 2`` (at least 1), so its time stays about that of a graph of that size."""
    if num_ops <= WHOLE_GRAPH_OPS:
        return max(1, states)
    return max(1, states * WHOLE_GRAPH_OPS**2 // num_ops**2)


def min_peak_schedule(
    graph: Graph,
    sizes_bytes: Sequence[int],
    in_scope: Sequence[bool],
    start_order: Sequence[int],
    *,
    node_limit: int = DEFAULT_NODE_LIMIT,
    should_stop: StopCheck | None = None,
) -> PeakSchedule:
    """The lowest-peak order this module can find from ``start_order``, and its proof.

    1. windows around the peak step (:func:`improve_by_windows`), up to 40 % of the
       states;
    2. a lower bound from regions around the peak step (:func:`relaxation_bound`): when
       it reaches the peak, the order is optimal;
    3. otherwise the exact search over the whole graph (:func:`exact_search`) with the
       states left (fewer on graphs above :data:`WHOLE_GRAPH_OPS` ops:
       :func:`whole_graph_states`).

    Every limit counts search states, not seconds, so the result is the same on every
    machine and run; ``should_stop`` (a time limit, Ctrl-C) may end it sooner, unproven.
    """
    order = tuple(OpId(int(o)) for o in start_order)
    floor = static_lower_bound(graph, sizes_bytes, in_scope)
    peak = peak_live_bytes(graph, order, sizes_bytes, in_scope) if graph.num_ops else 0
    if peak <= floor:
        return PeakSchedule(order, peak, peak, True, 0, "the largest working set")
    order, used = improve_by_windows(
        graph,
        sizes_bytes,
        in_scope,
        order,
        total_node_limit=node_limit * 2 // 5,
        should_stop=should_stop,
    )
    peak = peak_live_bytes(graph, order, sizes_bytes, in_scope)
    if peak <= floor:
        return PeakSchedule(order, peak, peak, True, used, "the largest working set")
    share = max(1, (node_limit - used) // 2)
    proven, spent = relaxation_bound(
        graph, sizes_bytes, in_scope, order, peak, node_limit=share, should_stop=should_stop
    )
    used += spent
    if proven:
        return PeakSchedule(order, peak, peak, True, used, "windows; bound from a region")
    states = whole_graph_states(node_limit - used, graph.num_ops)
    exact = exact_search(graph, sizes_bytes, in_scope, order, states, should_stop=should_stop)
    return PeakSchedule(
        exact.order,
        exact.peak_bytes,
        exact.lower_bound_bytes,
        exact.proven,
        used + exact.nodes,
        f"windows; {exact.source}",
    )
