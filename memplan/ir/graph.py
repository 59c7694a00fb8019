"""The graph and its parts: ids, tensors, ops, :class:`Graph` (verified when built) and
:class:`Subgraph`, and the graph's text form. See :mod:`memplan.ir`.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import TYPE_CHECKING, NewType

from memplan.errors import GraphError
from memplan.frozen import refuse_assignment

if TYPE_CHECKING:
    import networkx as nx

OpId = NewType("OpId", int)
TensorId = NewType("TensorId", int)


class TensorKind(enum.Enum):
    """Where a tensor's first copy comes from."""

    ACTIVATION = "activation"  # produced on chip by exactly one op
    INPUT = "input"  # a graph input: starts in DRAM
    WEIGHT = "weight"  # an initializer or constant-computable tensor: starts in DRAM


@refuse_assignment("build another graph with GraphBuilder")
@dataclass(frozen=True, slots=True)
class Tensor:
    """One buffer of the graph."""

    id: TensorId  # dense index into Graph.tensors
    name: str  # name in the source model (unique)
    size_bytes: int  # elements x element size, > 0
    kind: TensorKind  # activation, graph input or weight
    is_output: bool = False  # a graph output: must be in DRAM when the run ends
    shape: tuple[int, ...] = ()  # element shape, informative only
    dtype: str = ""  # element type name (e.g. "float32"), informative only


@refuse_assignment("build another graph with GraphBuilder")
@dataclass(frozen=True, slots=True)
class Op:
    """One executable operator."""

    id: OpId  # dense index into Graph.ops; also its position in the model's order
    name: str  # node name in the source model (unique)
    op_type: str  # e.g. "Conv"
    inputs: tuple[TensorId, ...]  # ordered inputs (a tensor may appear twice)
    outputs: tuple[TensorId, ...]  # ordered outputs
    macs: int = 0  # multiply-accumulates; 0 for data movement ops


@refuse_assignment("build another with GraphBuilder")
@dataclass(frozen=True, slots=True)
class Graph:
    """An immutable, verified scheduling graph.

    Ops are stored in the model's own (topological) order. Derived tables
    (producer and consumers of every tensor) are computed once on construction.
    """

    name: str  # model name
    ops: tuple[Op, ...]  # op i has id i, in the model's order
    tensors: tuple[Tensor, ...]  # tensor j has id j
    producer: tuple[OpId | None, ...] = field(init=False, repr=False, compare=False)
    consumers: tuple[tuple[OpId, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        producer, consumers = _verify(self.name, self.ops, self.tensors)
        object.__setattr__(self, "producer", producer)
        object.__setattr__(self, "consumers", consumers)

    # ----------------------------------------------------------------- queries
    @property
    def num_ops(self) -> int:
        """Number of ops (= number of steps of any schedule)."""
        return len(self.ops)

    @property
    def num_tensors(self) -> int:
        """Number of tensors of every kind."""
        return len(self.tensors)

    def tensor_by_name(self, name: str) -> Tensor:
        """Return the tensor called ``name``; :class:`GraphError` if there is none."""
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise GraphError(f"graph {self.name!r} has no tensor named {name!r}")

    def op_by_name(self, name: str) -> Op:
        """Return the op called ``name``; :class:`GraphError` if there is none."""
        for op in self.ops:
            if op.name == name:
                return op
        raise GraphError(f"graph {self.name!r} has no op named {name!r}")

    def predecessors(self, op: OpId) -> tuple[OpId, ...]:
        """Ops producing an input of ``op`` (each once, sorted)."""
        preds = {self.producer[t] for t in self._op(op, "predecessors").inputs}
        return tuple(sorted(p for p in preds if p is not None))

    def successors(self, op: OpId) -> tuple[OpId, ...]:
        """Ops consuming an output of ``op`` (each once, sorted)."""
        succs = {c for t in self._op(op, "successors").outputs for c in self.consumers[t]}
        return tuple(sorted(succs))

    def _op(self, op: object, where: str) -> Op:
        """Op ``op`` (an id), or a :class:`GraphError` naming the ids there are."""
        index = operator.index(op) if is_whole(op) else -1  # type: ignore[arg-type]
        if not 0 <= index < self.num_ops:
            raise GraphError(
                f"{where}: graph {self.name!r} has no op {op!r}; op ids are 0 .. "
                f"{self.num_ops - 1} (graph.op_by_name(name).id for a name)"
            )
        return self.ops[index]

    def op_histogram(self) -> dict[str, int]:
        """Count of ops per op type, most frequent first."""
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def bytes_of_kind(self, kind: TensorKind) -> int:
        """Total size of all tensors of one kind."""
        return sum(t.size_bytes for t in self.tensors if t.kind is kind)

    # ----------------------------------------------------------------- parts
    def subgraph(
        self, ops: Iterable[int], keep: Iterable[int] = (), unread: Iterable[int] = ()
    ) -> Subgraph:
        """The part of the graph made of ``ops``, as a graph of its own, with id maps.

        The part keeps the ops in the model's order (so it is verified like any graph)
        and every tensor they touch, under the same names. A tensor produced outside the
        part and read inside becomes a graph input of the part (weights stay weights):
        the part cannot produce it, and a D&C boundary (:mod:`memplan.cut`) says where
        it is when the part starts. Graph outputs stay outputs; tensors produced inside
        and read by ops outside are listed in :attr:`Subgraph.leaving`. Tensors of
        ``keep`` are part of it even when no op of the part touches them (e.g. tensors on
        chip across the whole part); produced outside, they become inputs too. Tensors of
        ``unread`` are no longer read by the part's ops (a relaxation for lower bounds:
        :mod:`memplan.solvers.dnc.bound`); one that no op of the part then touches is not
        part of it, one produced inside stays an output of its producer.

        Raises:
            GraphError: an op id is unknown, listed twice, or the set is empty.
        """
        chosen = list(ops)
        unknown = [o for o in chosen if not 0 <= o < self.num_ops]
        if unknown:
            raise GraphError(f"graph {self.name!r}: subgraph names unknown op id {unknown[0]}")
        if len(set(chosen)) != len(chosen):
            raise GraphError(f"graph {self.name!r}: subgraph lists an op twice")
        if not chosen:
            raise GraphError(f"graph {self.name!r}: a subgraph needs at least one op")
        parent_ops = tuple(OpId(o) for o in sorted(chosen))
        inside = frozenset(parent_ops)
        unread_set = frozenset(int(t) for t in unread)
        reads = {o: tuple(t for t in self.ops[o].inputs if t not in unread_set) for o in inside}
        parent_tensors: list[TensorId] = []
        for o in parent_ops:
            for t in (*reads[o], *self.ops[o].outputs):
                parent_tensors.append(t)
        parent_tensors.extend(TensorId(int(t)) for t in keep)
        unknown = [t for t in parent_tensors if not 0 <= t < self.num_tensors]
        if unknown:
            raise GraphError(f"graph {self.name!r}: subgraph keeps unknown tensor {unknown[0]}")
        parent_tensors = sorted(dict.fromkeys(parent_tensors))
        tensor_in_part = {t: TensorId(i) for i, t in enumerate(parent_tensors)}
        tensors = []
        entering, leaving = [], []
        for t in parent_tensors:
            tensor = self.tensors[t]
            kind = tensor.kind
            if kind is TensorKind.ACTIVATION and self.producer[t] not in inside:
                kind = TensorKind.INPUT
                entering.append(tensor_in_part[t])
            elif kind is TensorKind.ACTIVATION and any(c not in inside for c in self.consumers[t]):
                leaving.append(tensor_in_part[t])
            tensors.append(
                Tensor(
                    tensor_in_part[t],
                    tensor.name,
                    tensor.size_bytes,
                    kind,
                    tensor.is_output,
                    tensor.shape,
                    tensor.dtype,
                )
            )
        part_ops = tuple(
            Op(
                OpId(i),
                self.ops[o].name,
                self.ops[o].op_type,
                tuple(tensor_in_part[t] for t in reads[o]),
                tuple(tensor_in_part[t] for t in self.ops[o].outputs),
                self.ops[o].macs,
            )
            for i, o in enumerate(parent_ops)
        )
        return Subgraph(
            graph=Graph(f"{self.name}[{len(parent_ops)} ops]", part_ops, tuple(tensors)),
            parent_ops=parent_ops,
            parent_tensors=tuple(parent_tensors),
            entering=tuple(entering),
            leaving=tuple(leaving),
        )

    # ----------------------------------------------------------------- views
    def to_networkx(self) -> nx.DiGraph:
        """Op-level dependency graph: nodes are op ids, an edge per producer->consumer.

        Edge attribute ``tensors`` lists the tensor ids carried along the edge.
        """
        import networkx as nx

        dag = nx.DiGraph()
        for op in self.ops:
            dag.add_node(op.id, name=op.name, op_type=op.op_type, macs=op.macs)
        for op in self.ops:
            for t in op.inputs:
                src = self.producer[t]
                if src is None:
                    continue
                if dag.has_edge(src, op.id):
                    if t not in dag.edges[src, op.id]["tensors"]:
                        dag.edges[src, op.id]["tensors"].append(t)
                else:
                    dag.add_edge(src, op.id, tensors=[t])
        return dag

    def __repr__(self) -> str:
        # Not the dataclass repr: every op and tensor (280 KB for DenseNet) in a
        # notebook cell or a log line. str() is the full text form.
        return f"Graph({self.name!r}: {self.num_ops} ops, {self.num_tensors} tensors)"

    def __str__(self) -> str:
        return to_text(self)

    def _repr_html_(self) -> str:
        from memplan.views import html_of

        return html_of(self, "graph")


@refuse_assignment("take another with graph.subgraph(...)")
@dataclass(frozen=True, slots=True)
class Subgraph:
    """A part of a graph as a graph of its own (:meth:`Graph.subgraph`), with id maps.

    Part op ``i`` is parent op ``parent_ops[i]`` and part tensor ``j`` is parent tensor
    ``parent_tensors[j]``; :meth:`op_in_part` and :meth:`tensor_in_part` map back.
    """

    graph: Graph  # the part: its ops in the parent's order, the tensors they touch
    parent_ops: tuple[OpId, ...]  # part op id -> parent op id (increasing)
    parent_tensors: tuple[TensorId, ...]  # part tensor id -> parent tensor id (increasing)
    entering: tuple[TensorId, ...]  # part ids of activations produced outside (read or kept)
    leaving: tuple[TensorId, ...]  # part ids of activations produced inside, read outside
    _op_index: dict[OpId, OpId] = field(init=False, repr=False, compare=False)
    _tensor_index: dict[TensorId, TensorId] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ops = {o: OpId(i) for i, o in enumerate(self.parent_ops)}
        tensors = {t: TensorId(i) for i, t in enumerate(self.parent_tensors)}
        object.__setattr__(self, "_op_index", ops)
        object.__setattr__(self, "_tensor_index", tensors)

    def op_in_part(self, parent_op: int) -> OpId | None:
        """The part's id of a parent op, or None when the op is not in the part."""
        return self._op_index.get(OpId(parent_op))

    def tensor_in_part(self, parent_tensor: int) -> TensorId | None:
        """The part's id of a parent tensor, or None when no op of the part touches it."""
        return self._tensor_index.get(TensorId(parent_tensor))


#: The most bytes all tensors of a graph may hold together (1 PiB): peaks, traffic and
#: costs are summed in 64-bit integers (numpy), which this keeps far from overflow.
MAX_GRAPH_BYTES = 1 << 50

#: The most multiply-accumulates one op may have (2^100). An op of tensors within
#: :data:`MAX_GRAPH_BYTES` has fewer (a convolution: below 2^50 outputs times 2^50 weights),
#: and the limit keeps the timing and energy models (float64 seconds and joules) finite:
#: an op of 10^400 MACs made every cost computation fail with an OverflowError.
MAX_OP_MACS = 1 << 100


def _verify(
    name: str, ops: Sequence[Op], tensors: Sequence[Tensor]
) -> tuple[tuple[OpId | None, ...], tuple[tuple[OpId, ...], ...]]:
    """Check the IR invariants and return (producer, consumers) tables."""
    where = f"graph {name!r}"
    _check_types(where, ops, tensors)
    total_bytes = sum(t.size_bytes for t in tensors)
    if total_bytes > MAX_GRAPH_BYTES:
        largest = max(tensors, key=lambda t: t.size_bytes)
        raise GraphError(
            f"{where}: its tensors hold {total_bytes:,} bytes (the largest, "
            f"{largest.name!r}, {largest.size_bytes:,}), above memplan's limit of 1 PiB, "
            "where 64-bit sums of sizes would overflow; check the model's shapes (or set "
            "symbolic dimensions with --dim)"
        )
    for index, tensor in enumerate(tensors):
        if tensor.id != index:
            raise GraphError(
                f"{where}: tensor {tensor.name!r} has id {tensor.id}, expected {index}"
            )
        if tensor.size_bytes <= 0:
            raise GraphError(
                f"{where}: tensor {tensor.name!r} has size {tensor.size_bytes} bytes; "
                "sizes must be positive"
            )
    for index, op in enumerate(ops):
        if op.id != index:
            raise GraphError(f"{where}: op {op.name!r} has id {op.id}, expected {index}")
        if op.macs < 0:
            raise GraphError(f"{where}: op {op.name!r} has negative macs {op.macs}")
        if op.macs > MAX_OP_MACS:
            raise GraphError(
                f"{where}: op {op.name!r} has macs of {len(str(op.macs))} digits, above "
                f"memplan's limit of 2^100 = {MAX_OP_MACS} multiply-accumulates per op; "
                "give its real count"
            )
        if not op.outputs:
            raise GraphError(f"{where}: op {op.name!r} ({op.op_type}) has no outputs")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise GraphError(f"{where}: two tensors are named {dup!r}; names must be unique")
    op_names = [o.name for o in ops]
    if len(set(op_names)) != len(op_names):
        dup = next(n for n in op_names if op_names.count(n) > 1)
        raise GraphError(f"{where}: two ops are named {dup!r}; names must be unique")

    n_tensors = len(tensors)
    producer: list[OpId | None] = [None] * n_tensors
    consumers: list[list[OpId]] = [[] for _ in range(n_tensors)]
    for op in ops:
        for t in (*op.inputs, *op.outputs):
            if not 0 <= t < n_tensors:
                raise GraphError(f"{where}: op {op.name!r} refers to unknown tensor id {t}")
        if len(set(op.outputs)) != len(op.outputs):
            raise GraphError(f"{where}: op {op.name!r} lists an output twice")
        for t in op.outputs:
            tensor = tensors[t]
            if tensor.kind is not TensorKind.ACTIVATION:
                raise GraphError(
                    f"{where}: op {op.name!r} produces {tensor.name!r}, which is a "
                    f"{tensor.kind.value}; only activations are produced by ops"
                )
            if producer[t] is not None:
                first = ops[producer[t]].name  # type: ignore[index]
                raise GraphError(
                    f"{where}: tensor {tensor.name!r} is produced by both {first!r} and "
                    f"{op.name!r}; an activation has exactly one producer"
                )
            producer[t] = op.id
        for t in dict.fromkeys(op.inputs):
            consumers[t].append(op.id)
    for tensor in tensors:
        if tensor.kind is TensorKind.ACTIVATION and producer[tensor.id] is None:
            raise GraphError(f"{where}: activation {tensor.name!r} has no producer")
    # The stored op order must be topological; otherwise report one op on a cycle
    # or an op that reads a tensor produced later.
    for op in ops:
        for t in op.inputs:
            src = producer[t]
            if src is not None and src >= op.id:
                _raise_order_error(where, ops, tensors, producer, op, t)
    return tuple(producer), tuple(tuple(c) for c in consumers)


def is_whole(value: object) -> bool:
    """True for an int (or numpy integer), False for a bool, float, string or None."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_types(where: str, ops: Sequence[Op], tensors: Sequence[Tensor]) -> None:
    """Refuse fields of the wrong type (a Graph built by hand in a notebook) with a
    GraphError naming the tensor or op, before any arithmetic trips over them."""
    for index, tensor in enumerate(tensors):
        if not isinstance(tensor, Tensor):
            kind_name = type(tensor).__name__
            raise GraphError(f"{where}: tensors[{index}] is a {kind_name}, not a Tensor")
        if not is_whole(tensor.size_bytes):
            raise GraphError(
                f"{where}: tensor {tensor.name!r} has size_bytes {tensor.size_bytes!r}; "
                "give a whole number of bytes (an int)"
            )
        if not isinstance(tensor.kind, TensorKind):
            raise GraphError(
                f"{where}: tensor {tensor.name!r} has kind {tensor.kind!r}; use a TensorKind "
                f"({', '.join(k.name for k in TensorKind)})"
            )
    for index, op in enumerate(ops):
        if not isinstance(op, Op):
            raise GraphError(f"{where}: ops[{index}] is a {type(op).__name__}, not an Op")
        for field_name, ids in (("inputs", op.inputs), ("outputs", op.outputs)):
            bad = [t for t in ids if not is_whole(t)]
            if bad:
                raise GraphError(
                    f"{where}: op {op.name!r} lists {bad[0]!r} in its {field_name}; list "
                    "tensor ids (the ints GraphBuilder.tensor returns; "
                    "GraphBuilder.tensor_id(name) looks one up)"
                )
        if not is_whole(op.macs):
            raise GraphError(
                f"{where}: op {op.name!r} has macs {op.macs!r}; give a whole number (an int)"
            )


def _raise_order_error(
    where: str,
    ops: Sequence[Op],
    tensors: Sequence[Tensor],
    producer: Sequence[OpId | None],
    op: Op,
    tensor: TensorId,
) -> None:
    import networkx as nx

    dag = nx.DiGraph()
    for o in ops:
        for t in o.inputs:
            src = producer[t]
            if src is not None:
                dag.add_edge(src, o.id)
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        raise GraphError(
            f"{where}: op {op.name!r} reads {tensors[tensor].name!r} before its producer "
            f"{ops[producer[tensor]].name!r} runs; list ops in a topological order"  # type: ignore[index]
        ) from None
    names = " -> ".join(ops[a].name for a, _ in cycle) + f" -> {ops[cycle[0][0]].name}"
    raise GraphError(f"{where}: the ops form a cycle: {names}; a model must be acyclic")


# --------------------------------------------------------------------- text form
def _fmt_bytes(n: int) -> str:
    from memplan.units import format_bytes

    return format_bytes(n)


def to_text(graph: Graph) -> str:
    """Readable text form: one op per line with its tensors and their sizes."""
    lines = [
        f"graph {graph.name}: {graph.num_ops} ops, {graph.num_tensors} tensors "
        f"(weights {_fmt_bytes(graph.bytes_of_kind(TensorKind.WEIGHT))}, "
        f"activations {_fmt_bytes(graph.bytes_of_kind(TensorKind.ACTIVATION))})"
    ]
    inputs = [t for t in graph.tensors if t.kind is TensorKind.INPUT]
    if inputs:
        lines.append(
            "  inputs: " + ", ".join(f"{t.name}[{_fmt_bytes(t.size_bytes)}]" for t in inputs)
        )

    def tensor_text(t: TensorId) -> str:
        tensor = graph.tensors[t]
        mark = {TensorKind.WEIGHT: "w:", TensorKind.INPUT: "in:"}.get(tensor.kind, "")
        out = "*" if tensor.is_output else ""
        return f"{mark}{tensor.name}{out}[{_fmt_bytes(tensor.size_bytes)}]"

    width = len(str(max(graph.num_ops - 1, 0)))
    for op in graph.ops:
        ins = ", ".join(tensor_text(t) for t in op.inputs)
        outs = ", ".join(tensor_text(t) for t in op.outputs)
        macs = f"  macs={op.macs}" if op.macs else ""
        lines.append(f"  {op.id:>{width}} {op.name} {op.op_type}({ins}) -> {outs}{macs}")
    return "\n".join(lines)
