"""The plan every solver can fall back on: spill everything.

Each op's in-scope working set is on chip for the op's own step only, packed side by
side from offset 0. An activation that is read later (or is a graph output) is stored
right after its producer runs, and every read loads it again::

    step:         0          1          2
    order:       op0        op1        op2
    offset 0     x (load)   a (load)   a (load)
    offset |x|   a (prod, store) b (prod, store) c (prod)

At any capacity >= M_R (the largest aligned working set) the residencies of one step
fit, so this plan is valid for every order; it is the most traffic a sensible plan
moves, and the answer a solver returns when it has nothing better in time.
"""

from __future__ import annotations

from collections.abc import Sequence

from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem


def spill_everything_plan(problem: Problem, order: Sequence[int]) -> Plan:
    """The step-by-step plan of ``order`` described in the module docstring.

    Args:
        problem: the problem; its capacity must be at least M_R for the plan to be valid.
        order: a topological order of all ops.

    Returns:
        A plan that passes the validator whenever ``problem.capacity_bytes`` >= M_R.
    """
    graph = problem.graph
    sizes = problem.aligned_sizes_bytes
    residencies: list[Residency] = []
    for step, op_id in enumerate(order):
        op = graph.ops[op_id]
        offset = 0
        for tensor in dict.fromkeys((*op.inputs, *op.outputs)):
            if not problem.in_scope[tensor]:
                continue
            if graph.producer[tensor] == op_id:
                info = graph.tensors[tensor]
                store = info.is_output or bool(graph.consumers[tensor])
                arrive, leave = Arrive.PRODUCE, (Leave.STORE if store else Leave.DROP)
            else:
                arrive, leave = Arrive.LOAD, Leave.DROP
            residencies.append(Residency(tensor, step, step + 1, offset, arrive, leave))
            offset += sizes[tensor]
    return Plan.make(order, residencies)
