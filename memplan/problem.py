"""A planning problem: a graph, an accelerator and a scope (PROBLEM.md sections 1, 2, 5).

:class:`Problem` precomputes what every solver, the validator and the cost model need:
which tensors compete for the scratchpad (``in_scope``), their sizes rounded up to the
alignment (``aligned_sizes_bytes``), each op's working set and M_R.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

from memplan.accelerator import Accelerator
from memplan.analysis import working_set_bytes
from memplan.errors import ConfigError
from memplan.frozen import refuse_assignment
from memplan.ir import Graph, OpId, TensorId, TensorKind
from memplan.units import align_up


class Scope(enum.Enum):
    """Which tensors are placed in the scratchpad."""

    ACTIVATIONS = "activations"  # activations and graph inputs; weights stream from DRAM
    ALL = "all"  # weights are placed like any other tensor

    @staticmethod
    def parse(text: str | Scope) -> Scope:
        """Parse ``activations`` or ``all``; :class:`ConfigError` lists the choices."""
        if isinstance(text, Scope):
            return text
        try:
            return Scope(text)
        except ValueError:
            raise ConfigError(
                f"unknown scope {text!r}; use one of {', '.join(s.value for s in Scope)}"
            ) from None


@refuse_assignment(
    "make another: problem.with_capacity(n), dataclasses.replace(problem, scope=...)"
)
@dataclass(frozen=True, slots=True)
class Problem:
    """What a solver answers: place ``graph`` on ``accelerator`` for tensors in ``scope``."""

    graph: Graph  # the scheduling IR
    accelerator: Accelerator  # scratchpad capacity, alignment, rates, energies
    scope: Scope = Scope.ACTIVATIONS  # which tensors compete (a string is parsed)
    in_scope: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    aligned_sizes_bytes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    working_set_bytes: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A notebook user writes Problem(graph, acc, "all"): a string is parsed (it was
        # kept as given and read as activations scope), anything else is refused here,
        # not as an AttributeError deep inside.
        if not isinstance(self.graph, Graph):
            hint = " (pass load_model(...).graph)" if hasattr(self.graph, "graph") else ""
            raise ConfigError(
                f"Problem: graph must be a memplan Graph, got {type(self.graph).__name__}{hint}"
            )
        if not isinstance(self.accelerator, Accelerator):
            raise ConfigError(
                "Problem: accelerator must be an Accelerator (e.g. load_accelerator('edge-npu')),"
                f" got {type(self.accelerator).__name__}"
            )
        if not isinstance(self.scope, Scope):
            if not isinstance(self.scope, str):
                raise ConfigError(
                    f"Problem: scope must be 'activations', 'all' or a Scope, got {self.scope!r}"
                )
            object.__setattr__(self, "scope", Scope.parse(self.scope))
        if self.scope is Scope.ALL:
            in_scope = tuple(True for _ in self.graph.tensors)
        else:
            in_scope = tuple(t.kind is not TensorKind.WEIGHT for t in self.graph.tensors)
        alignment = self.accelerator.alignment_bytes
        aligned = tuple(align_up(t.size_bytes, alignment) for t in self.graph.tensors)
        object.__setattr__(self, "in_scope", in_scope)
        object.__setattr__(self, "aligned_sizes_bytes", aligned)
        object.__setattr__(
            self, "working_set_bytes", tuple(working_set_bytes(self.graph, aligned, in_scope))
        )

    @property
    def capacity_bytes(self) -> int:
        """Scratchpad size in bytes."""
        return self.accelerator.capacity_bytes

    @property
    def alignment_bytes(self) -> int:
        """Offset alignment in bytes."""
        return self.accelerator.alignment_bytes

    @property
    def min_resident_bytes(self) -> int:
        """M_R: the largest aligned working set of one op; below it no plan exists."""
        return max(self.working_set_bytes, default=0)

    @property
    def least_capacity_bytes(self) -> int:
        """The least capacity any valid plan needs: per op, its aligned working set less
        the largest alignment padding of its tensors, the most over ops.

        Every op's tensors sit on chip together at aligned offsets, so all but the top one
        take their aligned sizes; the top one needs only its own size, since PROBLEM.md
        rule 6 bounds ``offset + size_bytes``. It equals M_R up to a capacity that is a
        multiple of the alignment: at such a capacity, below M_R no plan exists.
        """
        aligned, sizes = self.aligned_sizes_bytes, [t.size_bytes for t in self.graph.tensors]
        least = 0
        for op, working_set in zip(self.graph.ops, self.working_set_bytes, strict=True):
            touched = [t for t in dict.fromkeys((*op.inputs, *op.outputs)) if self.in_scope[t]]
            padding = max((aligned[t] - sizes[t] for t in touched), default=0)
            least = max(least, working_set - padding)
        return least

    @property
    def capacity_is_aligned(self) -> bool:
        """Whether the capacity is a multiple of the alignment (every budget memplan
        resolves is): then the solvers' lower bounds, made with aligned sizes, hold."""
        return self.capacity_bytes % self.alignment_bytes == 0

    @property
    def min_resident_op(self) -> OpId | None:
        """The op whose working set sets M_R (the first one if several tie)."""
        if not self.working_set_bytes:
            return None
        return OpId(self.working_set_bytes.index(self.min_resident_bytes))

    def __repr__(self) -> str:
        # Short, not the dataclass repr that prints the whole graph.
        acc = self.accelerator
        return (
            f"Problem({self.graph!r}, accelerator {acc.name!r}: capacity "
            f"{acc.capacity_bytes} B, alignment {acc.alignment_bytes} B; scope "
            f"{self.scope.value})"
        )

    def with_capacity(self, capacity_bytes: int) -> Problem:
        """The same problem with another scratchpad size."""
        return dataclasses.replace(self, accelerator=self.accelerator.with_capacity(capacity_bytes))

    def scoped_tensors(self) -> list[TensorId]:
        """Ids of the tensors that compete for the scratchpad."""
        return [TensorId(i) for i, s in enumerate(self.in_scope) if s]

    def streamed_weight_bytes(self, op: OpId) -> int:
        """Weight bytes op ``op`` streams from DRAM (``activations`` scope only)."""
        if self.scope is Scope.ALL:
            return 0
        tensors = self.graph.tensors
        return sum(
            tensors[t].size_bytes
            for t in dict.fromkeys(self.graph.ops[op].inputs)
            if tensors[t].kind is TensorKind.WEIGHT
        )

    def compulsory_bytes(self) -> int:
        """Traffic any valid plan must move (PROBLEM.md section 4)."""
        graph = self.graph
        total = 0
        for tensor in graph.tensors:
            if not self.in_scope[tensor.id]:
                continue
            used = bool(graph.consumers[tensor.id])
            if tensor.kind is not TensorKind.ACTIVATION and used:
                total += tensor.size_bytes  # loaded once
            if tensor.kind is TensorKind.ACTIVATION and tensor.is_output:
                total += tensor.size_bytes  # stored once
        total += sum(self.streamed_weight_bytes(OpId(i)) for i in range(graph.num_ops))
        return total

    def describe_capacity_error(self) -> str:
        """One line explaining why the capacity is below M_R."""
        op = self.min_resident_op
        op_name = self.graph.ops[op].name if op is not None else "?"
        return (
            f"scratchpad {self.capacity_bytes} B is below M_R = {self.min_resident_bytes} B "
            f"(the working set of op {op_name!r}); no plan exists without tiling: "
            f"use --scratchpad MR or at least {self.min_resident_bytes}"
        )


def require_problem(value: object, where: str) -> Problem:
    """``value`` if it is a :class:`Problem`, else a :class:`ConfigError` naming ``where``.

    The public functions that take a problem call it first, so a notebook's
    ``evaluate(graph, plan)`` gets one line saying what to pass, not an
    AttributeError from deep inside.
    """
    if isinstance(value, Problem):
        return value
    hint = ""
    if isinstance(value, Graph):
        hint = ": wrap the graph, Problem(graph, load_accelerator('edge-npu'))"
    elif hasattr(value, "graph"):
        hint = ": build one, Problem(loaded.graph, load_accelerator('edge-npu'))"
    raise ConfigError(
        f"{where}: problem must be a memplan Problem, got {type(value).__name__}{hint}"
    )
