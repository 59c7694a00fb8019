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

import operator
from collections.abc import Sequence

from memplan.errors import ConfigError
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, require_problem
from memplan.units import brief_repr


def spill_everything_plan(problem: Problem, order: Sequence[int]) -> Plan:
    """The step-by-step plan of ``order`` described in the module docstring.

    Args:
        problem: the problem; its capacity must be at least M_R for the plan to be valid.
        order: a topological order of all ops.

    Returns:
        A plan that passes the validator whenever ``problem.capacity_bytes`` >= M_R.

    Raises:
        ConfigError: ``problem`` is not a Problem, or ``order`` does not list every op
            exactly once (a plan of part of the graph would be silently invalid).
    """
    graph = require_problem(problem, "spill_everything_plan").graph
    try:
        order = [operator.index(op) for op in order]
    except TypeError:
        raise ConfigError(
            "spill_everything_plan: order must be a sequence of op ids (ints), "
            f"got {brief_repr(order)}"
        ) from None
    if sorted(order) != list(range(graph.num_ops)):
        raise ConfigError(
            f"spill_everything_plan: order has {len(order)} entries; it must list each of "
            f"the {graph.num_ops} ops of {graph.name!r} exactly once (ids 0 .. "
            f"{graph.num_ops - 1}), e.g. range(graph.num_ops) for the model's order"
        )
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


def is_spill_everything(problem: Problem, plan: Plan) -> bool:
    """Whether ``plan`` is the spill-everything plan of its own order (a solver that ran
    out of time returns it; it must then be named so, not after the solver that gave up)."""

    def key(r: Residency) -> tuple[int, int, int]:
        return (r.tensor, r.start, r.offset)

    fallback = spill_everything_plan(problem, plan.order).residencies
    return sorted(plan.residencies, key=key) == sorted(fallback, key=key)


def plan_source(problem: Problem, plan: Plan, solver: str, order: str) -> str:
    """Where ``plan`` came from, for messages: ``"greedy (rpo order)"``, or the fallback's
    name when the solver ran out of time and gave the spill-everything plan."""
    if is_spill_everything(problem, plan):
        return f"spill everything ({solver}'s fallback, {order} order)"
    return f"{solver} ({order} order)"
