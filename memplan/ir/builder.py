"""Building a :class:`~memplan.ir.graph.Graph` one tensor and one op at a time
(:class:`GraphBuilder`), every argument checked as it comes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from memplan.errors import GraphError

if TYPE_CHECKING:
    pass
from memplan.ir.graph import Graph, Op, OpId, Tensor, TensorId, TensorKind, is_whole

_KIND_VALUES = frozenset(k.value for k in TensorKind)  # "activation", "input", "weight"


class GraphBuilder:
    """Incremental construction of a :class:`Graph`.

    Example:
        >>> b = GraphBuilder("tiny")
        >>> x = b.tensor("x", 1024, TensorKind.INPUT)
        >>> y = b.tensor("y", 1024, is_output=True)
        >>> _ = b.op("relu", "Relu", [x], [y])
        >>> b.build().num_ops
        1
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tensors: list[Tensor] = []
        self._ops: list[Op] = []
        self._by_name: dict[str, TensorId] = {}

    def tensor(
        self,
        name: str,
        size_bytes: int,
        kind: TensorKind = TensorKind.ACTIVATION,
        *,
        is_output: bool = False,
        shape: Iterable[int] = (),
        dtype: str = "",
    ) -> TensorId:
        """Add a tensor and return its id.

        Args:
            name: unique tensor name.
            size_bytes: bytes, a whole number > 0.
            kind: a TensorKind, or its value as a string ("activation", "input", "weight").
            is_output: a graph output (must be in DRAM when the run ends).
            shape: element shape, informative only.
            dtype: element type name, informative only.

        Raises:
            GraphError: a name used twice, or a field of the wrong type or value.
        """
        if not isinstance(name, str):
            raise GraphError(f"graph {self.name!r}: a tensor name must be a string, got {name!r}")
        where = f"graph {self.name!r}: tensor {name!r}"
        if name in self._by_name:
            raise GraphError(f"{where} is defined twice")
        if not is_whole(size_bytes):
            raise GraphError(
                f"{where}: size_bytes {size_bytes!r} is not a whole number of bytes (an int)"
            )
        if isinstance(kind, str) and kind in _KIND_VALUES:
            kind = TensorKind(kind)
        if not isinstance(kind, TensorKind):
            raise GraphError(
                f"{where}: kind {kind!r} is not a TensorKind; use one of "
                f"{', '.join(k.value for k in TensorKind)}"
            )
        if isinstance(shape, str | bytes) or not isinstance(shape, Iterable):
            raise GraphError(
                f"{where}: shape {shape!r} is not a sequence of ints, e.g. (1, 3, 224, 224)"
            )
        dims = tuple(shape)
        tid = TensorId(len(self._tensors))
        self._tensors.append(
            Tensor(tid, name, int(size_bytes), kind, bool(is_output), dims, str(dtype))
        )
        self._by_name[name] = tid
        return tid

    def tensor_id(self, name: str) -> TensorId:
        """Id of a tensor added earlier."""
        try:
            return self._by_name[name]
        except KeyError:
            raise GraphError(f"graph {self.name!r}: no tensor named {name!r}") from None

    def has_tensor(self, name: str) -> bool:
        """Whether a tensor of this name was added."""
        return name in self._by_name

    def mark_output(self, tensor: TensorId) -> None:
        """Mark an existing tensor as a graph output.

        Raises:
            GraphError: ``tensor`` is not the id of a tensor added earlier.
        """
        if not is_whole(tensor) or not 0 <= tensor < len(self._tensors):
            raise GraphError(
                f"graph {self.name!r}: mark_output({tensor!r}): not the id of a tensor added "
                "earlier (GraphBuilder.tensor returns it; tensor_id(name) looks one up)"
            )
        old = self._tensors[tensor]
        self._tensors[tensor] = Tensor(
            old.id, old.name, old.size_bytes, old.kind, True, old.shape, old.dtype
        )

    def op(
        self,
        name: str,
        op_type: str,
        inputs: Iterable[TensorId],
        outputs: Iterable[TensorId],
        macs: int = 0,
    ) -> OpId:
        """Add an op (ops must be added in a topological order) and return its id.

        ``inputs`` and ``outputs`` are lists of tensor ids (what :meth:`tensor` returns);
        ``macs`` is a whole number of multiply-accumulates. Wrong types are refused
        here, other invariants by :meth:`build`.

        Raises:
            GraphError: naming the op and the argument of the wrong type.
        """
        where = f"graph {self.name!r}: op {name!r}"
        lists: list[tuple[TensorId, ...]] = []
        for field_name, ids in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
                raise GraphError(
                    f"{where}: {field_name} must be a list of tensor ids, got {ids!r} "
                    f"(write [{ids!r}] for one)"
                )
            values = tuple(ids)
            bad = [t for t in values if not is_whole(t)]
            if bad:
                hint = f" (tensor_id({bad[0]!r}) looks it up)" if isinstance(bad[0], str) else ""
                raise GraphError(f"{where}: {field_name} lists {bad[0]!r}, not a tensor id{hint}")
            lists.append(values)
        if not is_whole(macs):
            raise GraphError(f"{where}: macs {macs!r} is not a whole number (an int)")
        oid = OpId(len(self._ops))
        self._ops.append(Op(oid, name, op_type, lists[0], lists[1], int(macs)))
        return oid

    def build(self) -> Graph:
        """Verify and return the graph."""
        return Graph(self.name, tuple(self._ops), tuple(self._tensors))
