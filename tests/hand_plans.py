"""A tiny graph with a hand-built valid plan, shared by the validator and cost tests.

::

    x (input, 1000 B) ─► op0 ─► a (2000 B) ─► op1 ─► b (1000 B) ─► op2 ─► c (1000 B)
                                 │             ▲                            │
                                 │     w (weight, 500 B)                    ▼
                                 └──────────────────────────────────────► op3 ─► d (500 B, output)

The plan runs the model order; every tensor keeps its own offset region::

    step      0     1     2     3
    x @0      L
    a @1024   P─────────────────      (read at steps 1 and 3)
    b @4096         P─────
    c @8192               P─────
    d @12288                    P S   (stored: graph output)
    w @14336        L                 (scope 'all' only)
"""

from __future__ import annotations

from memplan.accelerator import Accelerator
from memplan.ir import Graph, GraphBuilder, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, Scope

CAPACITY_BYTES = 16384
X, W, A, B, C, D = range(6)  # tensor ids


def hand_graph() -> Graph:
    """The graph pictured in the module docstring."""
    g = GraphBuilder("hand")
    x = g.tensor("x", 1000, TensorKind.INPUT)
    w = g.tensor("w", 500, TensorKind.WEIGHT)
    a = g.tensor("a", 2000)
    b = g.tensor("b", 1000)
    c = g.tensor("c", 1000)
    d = g.tensor("d", 500, is_output=True)
    g.op("op0", "Conv", [x], [a], macs=100)
    g.op("op1", "Conv", [a, w], [b], macs=200)
    g.op("op2", "Relu", [b], [c])
    g.op("op3", "Add", [a, c], [d], macs=50)
    return g.build()


def hand_accelerator() -> Accelerator:
    """Round rates so costs are easy to compute by hand."""
    return Accelerator(
        "hand",
        CAPACITY_BYTES,
        alignment_bytes=64,
        dram_bytes_per_s=1000.0,
        mac_per_s=100.0,
        dram_energy_j_per_byte=1.0,
        sram_energy_j_per_byte=0.1,
        mac_energy_j=0.01,
    )


def hand_problem(scope: Scope = Scope.ACTIVATIONS) -> Problem:
    """The hand graph on the hand accelerator."""
    return Problem(hand_graph(), hand_accelerator(), scope)


def hand_residencies(scope: Scope = Scope.ACTIVATIONS) -> list[Residency]:
    """The residencies of the valid hand plan."""
    residencies = [
        Residency(X, 0, 1, 0, Arrive.LOAD, Leave.DROP),
        Residency(A, 0, 4, 1024, Arrive.PRODUCE, Leave.DROP),
        Residency(B, 1, 3, 4096, Arrive.PRODUCE, Leave.DROP),
        Residency(C, 2, 4, 8192, Arrive.PRODUCE, Leave.DROP),
        Residency(D, 3, 4, 12288, Arrive.PRODUCE, Leave.STORE),
    ]
    if scope is Scope.ALL:
        residencies.append(Residency(W, 1, 2, 14336, Arrive.LOAD, Leave.DROP))
    return residencies


def hand_plan(scope: Scope = Scope.ACTIVATIONS) -> Plan:
    """The valid hand plan."""
    return Plan.make([0, 1, 2, 3], hand_residencies(scope))
