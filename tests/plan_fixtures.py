"""Small graphs and hand-built valid plans shared by the planfile, plots, display and CLI tests.

The plans here are built by plain rules, not by a solver, so the tests of the
user-facing modules do not depend on any solver being installed.
"""

from __future__ import annotations

from memplan.accelerator import Accelerator
from memplan.analysis import steps_of, tensor_lifetimes
from memplan.ir import Graph, GraphBuilder, TensorKind
from memplan.plan import Arrive, Leave, Plan, Residency
from memplan.problem import Problem, Scope
from memplan.units import align_up

KIB = 1024


def diamond_graph(name: str = "diamond") -> Graph:
    """x -> a -> {b, c} -> d (output); weights on a and d; 6 ops incl. a long-lived tensor."""
    g = GraphBuilder(name)
    x = g.tensor("x", 4 * KIB, TensorKind.INPUT)
    w1 = g.tensor("w1", 2 * KIB, TensorKind.WEIGHT)
    w2 = g.tensor("w2", 1 * KIB, TensorKind.WEIGHT)
    a = g.tensor("a", 8 * KIB)
    b = g.tensor("b", 4 * KIB)
    c = g.tensor("c", 6 * KIB)
    e = g.tensor("e", 2 * KIB)
    f = g.tensor("f", 2 * KIB)
    d = g.tensor("d", 3 * KIB, is_output=True)
    g.op("conv_a", "Conv", [x, w1], [a], macs=1000)
    g.op("relu_b", "Relu", [a], [b])
    g.op("conv_c", "Conv", [a, w2], [c], macs=500)
    g.op("pool_e", "MaxPool", [b], [e])
    g.op("pool_f", "MaxPool", [c], [f])
    g.op("add_d", "Add", [e, f, a], [d])
    return g.build()


def naive_plan(problem: Problem) -> Plan:
    """Model order; every in-scope tensor stays on chip for its whole life at its own offset.

    Inputs and weights are loaded, graph outputs are stored. Needs a capacity of at least
    the sum of aligned in-scope sizes (see :func:`naive_capacity`).
    """
    graph = problem.graph
    order = list(range(graph.num_ops))
    residencies = []
    offset = 0
    for tid, span in enumerate(tensor_lifetimes(graph, order, problem.in_scope)):
        if span is None:
            continue
        tensor = graph.tensors[tid]
        arrive = Arrive.PRODUCE if tensor.kind is TensorKind.ACTIVATION else Arrive.LOAD
        leave = Leave.STORE if tensor.is_output else Leave.DROP
        residencies.append(Residency(tid, span[0], span[1], offset, arrive, leave))  # type: ignore[arg-type]
        offset += problem.aligned_sizes_bytes[tid]
    return Plan.make(order, residencies)


def naive_capacity(problem: Problem) -> int:
    """Bytes :func:`naive_plan` needs."""
    return sum(
        problem.aligned_sizes_bytes[t]
        for t, span in enumerate(
            tensor_lifetimes(problem.graph, range(problem.graph.num_ops), problem.in_scope)
        )
        if span is not None
    )


def spill_plan(problem: Problem, tensor_name: str = "a") -> Plan:
    """Like :func:`naive_plan`, but ``tensor_name`` is stored after it is produced and
    reloaded just before its next use (two stays, so the plan has a store and a load)."""
    graph = problem.graph
    base = naive_plan(problem)
    tid = graph.tensor_by_name(tensor_name).id
    step = steps_of(base.order)
    made = step[graph.producer[tid]]  # type: ignore[index]
    uses = sorted(step[c] for c in graph.consumers[tid])
    rest = [r for r in base.residencies if r.tensor != tid]
    [old] = base.residencies_of(tid)
    first = Residency(tid, made, made + 1, old.offset, Arrive.PRODUCE, Leave.STORE)
    second = Residency(tid, uses[0], uses[-1] + 1, old.offset, Arrive.LOAD, Leave.DROP)
    assert uses[0] >= made + 1
    return Plan.make(base.order, [*rest, first, second])


def diamond_problem(scope: Scope = Scope.ACTIVATIONS, alignment_bytes: int = 64) -> Problem:
    """The diamond graph on an accelerator just large enough for the naive plan."""
    probe = Problem(diamond_graph(), Accelerator("test", 1 << 30, alignment_bytes), scope)
    return probe.with_capacity(align_up(naive_capacity(probe), alignment_bytes))


from dataclasses import dataclass, field  # noqa: E402
from typing import ClassVar  # noqa: E402

from memplan.solver import Budget, SolveResult, Status, infeasible_below_mr, make_result  # noqa: E402


@dataclass(frozen=True)
class NaiveSolver:
    """A test solver returning :func:`naive_plan` (or :func:`spill_plan` with ``spill=True``)."""

    name: ClassVar[str] = "naive-test"
    spill: bool = field(default=False, metadata={"help": "store and reload tensor 'a'"})
    seed: int = field(default=0, metadata={"help": "unused"})

    def solve(self, problem: Problem, budget: Budget) -> SolveResult:
        infeasible = infeasible_below_mr(self, problem, budget)
        if infeasible is not None:
            return infeasible
        if problem.capacity_bytes < naive_capacity(problem):
            return make_result(self, problem, Status.INFEASIBLE, None, budget, message="too small")
        plan = spill_plan(problem) if self.spill else naive_plan(problem)
        return make_result(
            self, problem, Status.FEASIBLE, plan, budget, lower_bound_bytes=0, stats={"rules": 1}
        )
