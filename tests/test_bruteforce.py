"""The exhaustive search of memplan.testing.bruteforce on hand-proven cases.

The ILP tests (test_ilp_bruteforce.py) check it against two independent exact models;
here each expected number is proven by hand in the docstring.
"""

from __future__ import annotations

import pytest

from memplan.accelerator import Accelerator
from memplan.ir import Graph, GraphBuilder, TensorKind
from memplan.problem import Problem, Scope
from memplan.testing import (
    enumerate_min_peak,
    min_traffic,
    min_traffic_for_order,
    random_dag,
    tiny_spill_graph,
    topological_orders,
)
from memplan.testing.bruteforce import MAX_TRAFFIC_OPS

KIB = 1024


def skip_graph() -> Graph:
    """``a`` skips over two ops; the order is forced (op0, op1, op2, op3)::

        op0: x -> a (1 KiB)      op2: b -> c (2 KiB)
        op1: a -> b (2 KiB)      op3: c, a -> out (1 KiB, graph output)

    Working sets: 2, 3, 4, 4 KiB, so M_R = 4 KiB. At 4 KiB, step 2 holds b and c
    (4 KiB), so ``a`` must be off chip then and back for step 3: one store and one
    load of 1 KiB, 2 KiB non-compulsory, and no plan does better. At 5 KiB, a, b and c
    fit together (a at 0, b at 1, c at 3 KiB): nothing moves beyond the compulsory.
    The no-spill peak is 5 KiB (a, b, c live at step 2).
    """
    g = GraphBuilder("skip")
    x = g.tensor("x", KIB, TensorKind.INPUT)
    a, b, c = g.tensor("a", KIB), g.tensor("b", 2 * KIB), g.tensor("c", 2 * KIB)
    out = g.tensor("out", KIB, is_output=True)
    g.op("op0", "Conv", [x], [a])
    g.op("op1", "Conv", [a], [b])
    g.op("op2", "Conv", [b], [c])
    g.op("op3", "Add", [c, a], [out])
    return g.build()


def _problem(graph: Graph, capacity: int, scope: Scope = Scope.ALL) -> Problem:
    return Problem(graph, Accelerator("tiny", capacity, KIB), scope)


@pytest.mark.parametrize("scope", list(Scope))
def test_hand_proven_optima(scope: Scope) -> None:
    graph = skip_graph()
    tight = _problem(graph, 4 * KIB, scope)
    assert tight.min_resident_bytes == 4 * KIB
    assert list(topological_orders(graph)) == [(0, 1, 2, 3)]
    assert min_traffic(tight) == 2 * KIB
    assert min_traffic_for_order(tight, (0, 1, 2, 3)) == 2 * KIB
    assert min_traffic(_problem(graph, 5 * KIB, scope)) == 0
    assert enumerate_min_peak(tight) == 5 * KIB


def test_below_mr_has_no_plan() -> None:
    assert min_traffic(_problem(skip_graph(), 3 * KIB)) is None


def test_orders_of_two_independent_chains() -> None:
    """Two chains of two ops each: C(4, 2) = 6 interleavings."""
    g = GraphBuilder("two-chains")
    x = g.tensor("x", KIB, TensorKind.INPUT)
    a1, a2, b1, b2 = (g.tensor(n, KIB, is_output=n.endswith("2")) for n in ("a1", "a2", "b1", "b2"))
    g.op("pa1", "Op", [x], [a1])
    g.op("pa2", "Op", [a1], [a2])
    g.op("pb1", "Op", [x], [b1])
    g.op("pb2", "Op", [b1], [b2])
    orders = list(topological_orders(g.build()))
    assert len(orders) == len(set(orders)) == 6
    for order in orders:
        assert order.index(0) < order.index(1) and order.index(2) < order.index(3)


def test_free_order_is_the_minimum_over_orders() -> None:
    problem = _problem(tiny_spill_graph(4, 5), 0, Scope.ACTIVATIONS)
    problem = problem.with_capacity(problem.min_resident_bytes)
    per_order = [min_traffic_for_order(problem, o) for o in topological_orders(problem.graph)]
    assert min_traffic(problem) == min(v for v in per_order if v is not None)
    assert min_traffic(problem) == 2 * KIB  # seed 4 needs a spill (EXACT_CASES lists it)


def test_refuses_graphs_too_big_to_enumerate() -> None:
    problem = _problem(random_dag(0, MAX_TRAFFIC_OPS + 1), 1 << 20)
    with pytest.raises(ValueError, match="tiny_spill_graph"):
        min_traffic(problem)
