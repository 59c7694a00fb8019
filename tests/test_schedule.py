"""Tests of the min-peak search (memplan.schedule) against brute force over all orders."""

from __future__ import annotations

import random

import networkx as nx
import pytest
from helpers import random_graph

from memplan.analysis import (
    check_order,
    default_min_peak_schedule,
    list_min_peak_order,
    min_peak_order,
    model_order,
    named_order,
    peak_live_bytes,
    reverse_post_order,
)
from memplan.ir import Graph, GraphBuilder, TensorKind
from memplan.schedule import (
    exact_search,
    improve_by_windows,
    min_peak_schedule,
    relaxation_bound,
    static_lower_bound,
)


def wide_graph(seed: int, n_ops: int = 9) -> Graph:
    """A random DAG with several branches of varied sizes (orders differ in peak)."""
    rng = random.Random(seed)
    b = GraphBuilder(f"wide-{seed}")
    x = b.tensor("x", rng.randint(1, 8) * 64, TensorKind.INPUT)
    made = [x]
    for i in range(n_ops):
        reads = rng.sample(made, min(len(made), rng.choice((1, 1, 2, 3))))
        out = b.tensor(f"t{i}", rng.randint(1, 16) * 64)
        b.op(f"op{i}", "Op", reads, [out])
        made.append(out)
    graph = b.build()
    for t in graph.tensors:
        if t.kind is TensorKind.ACTIVATION and not graph.consumers[t.id]:
            b.mark_output(t.id)
    return b.build()


def brute_force_min_peak(graph: Graph, sizes, scope) -> int:
    return min(
        peak_live_bytes(graph, order, sizes, scope)
        for order in nx.all_topological_sorts(graph.to_networkx())
    )


def cases():
    for seed in range(10):
        yield random_graph(seed, 8)
        yield wide_graph(seed)


def scope_of(graph: Graph, weights: bool) -> list[bool]:
    return [weights or t.kind is not TensorKind.WEIGHT for t in graph.tensors]


@pytest.mark.parametrize("graph", list(cases()), ids=lambda g: g.name)
@pytest.mark.parametrize("weights", [False, True])
def test_search_proves_the_brute_force_minimum(graph, weights):
    sizes = [t.size_bytes for t in graph.tensors]
    scope = scope_of(graph, weights)
    optimum = brute_force_min_peak(graph, sizes, scope)
    start = model_order(graph)
    for result in (
        exact_search(graph, sizes, scope, start, 100_000),
        min_peak_schedule(graph, sizes, scope, start),
    ):
        check_order(graph, result.order)
        assert result.proven
        assert result.peak_bytes == optimum == result.lower_bound_bytes
        assert peak_live_bytes(graph, result.order, sizes, scope) == optimum


@pytest.mark.parametrize("graph", list(cases()), ids=lambda g: g.name)
def test_a_region_never_proves_more_than_the_optimum(graph):
    sizes = [t.size_bytes for t in graph.tensors]
    scope = scope_of(graph, False)
    optimum = brute_force_min_peak(graph, sizes, scope)
    rng = random.Random(graph.name)
    for _ in range(3):
        orders = list(nx.all_topological_sorts(graph.to_networkx()))
        order = orders[rng.randrange(len(orders))]
        for target in (optimum, optimum + 1, optimum + 64, 2 * optimum):
            proven, _ = relaxation_bound(graph, sizes, scope, order, target, window_ops=(2, 4, 8))
            if proven:
                assert target <= optimum


@pytest.mark.parametrize("seed", range(8))
def test_windows_never_raise_the_peak_and_keep_the_order_topological(seed):
    graph = random_graph(seed, 40)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = scope_of(graph, seed % 2 == 0)
    start = model_order(graph)
    order, used = improve_by_windows(graph, sizes, scope, start, window_ops=(4, 8), node_limit=500)
    check_order(graph, order)
    assert peak_live_bytes(graph, order, sizes, scope) <= peak_live_bytes(
        graph, start, sizes, scope
    )
    assert used <= 400_000


def test_window_set_up_stops_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """No window is set up beyond the set-up budget (ops + tensors per window)."""
    import memplan.schedule as schedule

    graph = random_graph(3, 40)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = [True] * graph.num_tensors
    start = model_order(graph)
    assert improve_by_windows(graph, sizes, scope, start, setup_limit=0) == (tuple(start), 0)
    windows: list[int] = []
    real = schedule._order_window

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        windows.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(schedule, "_order_window", counted)
    one = graph.num_ops + graph.num_tensors  # one window's set-up
    for limit, most in ((one, 1), (3 * one, 3)):
        windows.clear()
        order, _ = improve_by_windows(graph, sizes, scope, start, setup_limit=limit)
        check_order(graph, order)
        assert 1 <= len(windows) <= most


@pytest.mark.parametrize("seed", range(6))
def test_a_node_limit_gives_an_unproven_upper_bound(seed):
    graph = random_graph(seed, 60)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = scope_of(graph, True)
    result = min_peak_schedule(graph, sizes, scope, model_order(graph), node_limit=3)
    check_order(graph, result.order)
    assert result.peak_bytes == peak_live_bytes(graph, result.order, sizes, scope)
    assert result.lower_bound_bytes <= result.peak_bytes
    if not result.proven:
        assert result.lower_bound_bytes == static_lower_bound(graph, sizes, scope)
    again = min_peak_schedule(graph, sizes, scope, model_order(graph), node_limit=3)
    assert again == result  # reproducible: limits count states, not seconds


@pytest.mark.parametrize("seed", range(10))
def test_min_peak_order_is_no_worse_than_the_list_schedulers(seed):
    graph = random_graph(seed, 30)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = scope_of(graph, False)
    best = peak_live_bytes(graph, min_peak_order(graph, sizes, scope), sizes, scope)
    assert best <= peak_live_bytes(graph, list_min_peak_order(graph, sizes, scope), sizes, scope)


@pytest.mark.parametrize("seed", range(10))
def test_reverse_post_order_is_topological(seed):
    graph = random_graph(seed, 25)
    order = reverse_post_order(graph)
    check_order(graph, order)
    sizes = [t.size_bytes for t in graph.tensors]
    assert named_order(graph, "rpo", sizes, scope_of(graph, False)) == order


def test_the_eager_rule_keeps_the_branch_that_frees_memory_first():
    """x feeds a big branch read late and a chain that shrinks: the optimum runs the
    chain first; every op of the chain frees what it adds, so the search commits to it."""
    b = GraphBuilder("eager")
    x = b.tensor("x", 64, TensorKind.INPUT)
    big = b.tensor("big", 64 * 100)
    c1 = b.tensor("c1", 64 * 20)
    c2 = b.tensor("c2", 64 * 10)
    c3 = b.tensor("c3", 64 * 5)
    out = b.tensor("out", 64, is_output=True)
    b.op("big", "Conv", [x], [big])
    b.op("c1", "Conv", [x], [c1])
    b.op("c2", "Relu", [c1], [c2])
    b.op("c3", "Relu", [c2], [c3])
    b.op("join", "Add", [big, c3], [out])
    graph = b.build()
    sizes = [t.size_bytes for t in graph.tensors]
    scope = [True] * graph.num_tensors
    result = exact_search(graph, sizes, scope, model_order(graph), 1000)
    assert result.proven
    assert result.peak_bytes == brute_force_min_peak(graph, sizes, scope)
    assert [graph.ops[o].name for o in result.order][-2:] == ["big", "join"]


def dynamic_programme_min_peak(graph: Graph, sizes, scope) -> int:
    """Reference: Serenity's plain DP over every set of scheduled ops, no pruning."""
    n = graph.num_ops
    touch = {}
    for op in graph.ops:
        for t in (*op.inputs, *op.outputs):
            if scope[t]:
                touch[t] = touch.get(t, 0) | (1 << op.id)
    preds = [sum(1 << p for p in graph.predecessors(op.id)) for op in graph.ops]

    def live(done: int, running: int) -> int:
        return sum(
            sizes[t] for t, mask in touch.items() if mask & (done | running) and mask & ~done
        )

    best = {0: 0}
    for _ in range(n):
        nxt: dict[int, int] = {}
        for done, peak in best.items():
            for o in range(n):
                bit = 1 << o
                if done & bit or preds[o] & ~done:
                    continue
                value = max(peak, live(done, bit))
                if value < nxt.get(done | bit, value + 1):
                    nxt[done | bit] = value
        best = nxt
    return best[(1 << n) - 1]


@pytest.mark.parametrize("seed", range(16))
def test_search_matches_the_plain_dynamic_programme_on_larger_graphs(seed):
    graph = (random_graph(seed, 14), wide_graph(seed, 14))[seed % 2]
    sizes = [t.size_bytes for t in graph.tensors]
    scope = scope_of(graph, seed % 4 < 2)
    result = exact_search(graph, sizes, scope, model_order(graph), 200_000)
    assert result.proven
    assert result.peak_bytes == dynamic_programme_min_peak(graph, sizes, scope)


def test_default_schedule_is_searched_once_per_process_unless_cut_short() -> None:
    """A finished default search is reused (same result object); one cut short is not
    kept, and the next caller searches to the end and gets the full result."""
    graph = wide_graph(3, 14)
    sizes = tuple(t.size_bytes for t in graph.tensors)
    scope = tuple(True for _ in graph.tensors)
    stopped = default_min_peak_schedule(graph, sizes, scope, should_stop=lambda: True)
    full = default_min_peak_schedule(graph, sizes, scope)
    assert full is not stopped
    assert full == min_peak_schedule(graph, sizes, scope, min_peak_order(graph, sizes, scope))
    assert default_min_peak_schedule(graph, sizes, scope) is full
    assert default_min_peak_schedule(graph, sizes, scope, should_stop=lambda: False) is full


@pytest.mark.parametrize("seed", range(6))
def test_a_stopped_search_expands_nothing_more(seed: int) -> None:
    """Every phase of the min-peak search checks the stop flag when it starts (the region
    bound did not get it, and checks came every 4,096 states: dnc ran 0.6-0.85 s past its
    limit), and a stopped search stays unproven."""
    graph = wide_graph(seed, 40)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = [True] * len(sizes)
    order = min_peak_order(graph, sizes, scope)
    stopped = min_peak_schedule(graph, sizes, scope, order, should_stop=lambda: True)
    assert stopped.nodes == 0
    full = min_peak_schedule(graph, sizes, scope, order)
    assert stopped.peak_bytes >= full.peak_bytes
    assert not stopped.proven or stopped.peak_bytes == stopped.lower_bound_bytes
    calls = 0

    def after_a_few() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    assert min_peak_schedule(graph, sizes, scope, order, should_stop=after_a_few).nodes <= 64


# ----------------------------------------------------------------- large graphs
def _closure_region_masks(graph: Graph, region: list[int]) -> dict[int, tuple[int, int]]:
    """The outside masks of a region from the graph-wide ancestor and descendant sets
    (what the relaxation used before: O(ops^2) on large graphs)."""
    from memplan.schedule import op_closures

    ancestors, descendants = op_closures(graph)
    position = {o: i for i, o in enumerate(region)}

    def local(bits: int) -> int:
        return sum(1 << i for o, i in position.items() if bits >> o & 1)

    masks = {u: (local(descendants[u]), local(ancestors[u])) for u in range(graph.num_ops)}
    return {u: m for u, m in masks.items() if u not in position and (m[0] or m[1])}


@pytest.mark.parametrize("seed", range(12))
def test_a_region_window_sees_the_ancestors_and_descendants_of_outside_ops(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The region masks come from one pass over the edges each way (the closures took
    20 s on a 26,000-op graph); they are the ones the closures gave."""
    import memplan.schedule as schedule

    graph = random_graph(seed, 40) if seed % 2 else wide_graph(seed, 40)
    rng = random.Random(seed)
    region = rng.sample(range(graph.num_ops), rng.randint(1, 12))
    seen: list[dict[int, tuple[int, int]]] = []
    real = schedule._window

    def spy(graph_, sizes_, scope_, ops, outside):  # type: ignore[no-untyped-def]
        seen.append(dict(outside))
        return real(graph_, sizes_, scope_, ops, outside)

    expected = _closure_region_masks(graph, region)

    def quadratic(graph_):  # type: ignore[no-untyped-def]
        raise AssertionError("graph-wide closures built for a region")

    monkeypatch.setattr(schedule, "_window", spy)
    monkeypatch.setattr(schedule, "op_closures", quadratic)
    sizes = [t.size_bytes for t in graph.tensors]
    schedule.region_min_peak(graph, sizes, [True] * graph.num_tensors, region)
    assert seen == [expected]
    order = model_order(graph)
    schedule.relaxation_bound(graph, sizes, [True] * graph.num_tensors, order, 1 << 40)


def test_the_whole_graph_search_gets_fewer_states_on_large_graphs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each state of the search over the whole graph works on one bit per op: 200,000
    states took about 55 s on a 26,000-op RandWire network, on top of every M_H budget.
    Above WHOLE_GRAPH_OPS ops it gets states in proportion to (WHOLE_GRAPH_OPS / ops)^2."""
    import memplan.schedule as schedule

    assert schedule.whole_graph_states(200_000, 4096) == 200_000
    assert schedule.whole_graph_states(200_000, 26_000) == 200_000 * 4096**2 // 26_000**2
    assert schedule.whole_graph_states(10, 10**6) == 1
    graph = wide_graph(0, 60)
    sizes = [t.size_bytes for t in graph.tensors]
    scope = [True] * graph.num_tensors
    given: list[int] = []
    real = schedule.exact_search

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        given.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(schedule, "exact_search", spy)
    monkeypatch.setattr(schedule, "WHOLE_GRAPH_OPS", 20)
    result = min_peak_schedule(graph, sizes, scope, model_order(graph), node_limit=50_000)
    assert len(given) == 1 and 0 < given[0] <= 50_000 * 20**2 // 60**2
    check_order(graph, result.order)
