"""Hand-timed problems shared by the timing and prefetch tests.

Every accelerator here moves 1000 B/s and computes 100 MAC/s, so a 1500 B load takes
1.5 s and a 100-MAC op 1 s.
"""

from __future__ import annotations

from memplan.accelerator import Accelerator
from memplan.budgets import resolve_budget
from memplan.ir import GraphBuilder, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, Scope
from memplan.testing import random_dag
from memplan.validate import validate

LOAD, PRODUCE = Arrive.LOAD, Arrive.PRODUCE
DROP, STORE = Leave.DROP, Leave.STORE


def hand_rates_accelerator(model: str = "overlap") -> Accelerator:
    """1 MiB scratchpad, 1000 B/s, 100 MAC/s, the given timing model."""
    return Accelerator(
        "hand", 1 << 20, alignment_bytes=64, dram_bytes_per_s=1000.0, mac_per_s=100.0
    ).with_timing_model(model)


def checked_plan(problem: Problem, residencies: list[Residency]) -> Plan:
    """The plan of the model order with ``residencies``; asserts that it is valid."""
    plan = Plan.make(range(problem.graph.num_ops), residencies)
    assert validate(problem, plan) == []
    return plan


def section7_problem() -> Problem:
    """``in0 -> op0 -> a0 -> ... -> op4 -> a4``; ``op5 = b`` reads ``a4`` and input ``x``.

    in0 500 B (0.5 s), x 1500 B (1.5 s), out 200 B (0.2 s); op0..op4 100 MACs (1 s
    each), op5 50 MACs (0.5 s).
    """
    g = GraphBuilder("section7")
    previous = g.tensor("in0", 500, TensorKind.INPUT)
    x = g.tensor("x", 1500, TensorKind.INPUT)
    for i in range(5):
        out = g.tensor(f"a{i}", 100)
        g.op(f"op{i}", "Conv", [previous], [out], macs=100)
        previous = out
    result = g.tensor("out", 200, is_output=True)
    g.op("b", "Add", [previous, x], [result], macs=50)
    return Problem(g.build(), hand_rates_accelerator())


def section7_plan(problem: Problem, x_start: int, x_offset: int = 8192) -> Plan:
    """The model order; ``x`` resident ``[x_start, 6)`` at ``x_offset``."""
    tid = problem.graph.tensor_by_name
    residencies = [Residency(tid("in0").id, 0, 1, 0, LOAD, DROP)]
    for i in range(5):
        residencies.append(Residency(tid(f"a{i}").id, i, i + 2, 1024 * (i + 1), PRODUCE, DROP))
    residencies.append(Residency(tid("x").id, x_start, 6, x_offset, LOAD, DROP))
    residencies.append(Residency(tid("out").id, 5, 6, 12288, PRODUCE, STORE))
    return checked_plan(problem, residencies)


def random_problems() -> list[tuple[str, Problem]]:
    """Random DAGs in both scopes at MR and MH, with varied DMA rates (overlap model)."""
    out = []
    for seed in range(6):
        graph = random_dag(seed, 24 + 4 * seed)
        for scope in (Scope.ACTIVATIONS, Scope.ALL):
            acc = Accelerator(
                "random",
                0,
                dram_bytes_per_s=1e6 * (1 + seed % 3),
                mac_per_s=1e5,
                timing_model="overlap",
            )
            base = Problem(graph, acc, scope)
            for budget in ("MR", "MH"):
                capacity = resolve_budget(budget, base).capacity_bytes
                out.append((f"{seed}-{scope.value}-{budget}", base.with_capacity(capacity)))
    return out
