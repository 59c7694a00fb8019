"""The scheduling IR: ops, tensors and the graph they form (PROBLEM.md section 1).

A :class:`Graph` is immutable and verified when built: ids are dense (op ``i`` is
``graph.ops[i]``, tensor ``j`` is ``graph.tensors[j]``), every activation has exactly one
producer, sizes are positive and the ops, in the order they are stored, form a
topological order (the model's own order). Build graphs with :class:`GraphBuilder`.

::

    input x ──► op0 Conv ──► t1 ──► op1 Relu ──► t2 (graph output)
                  ▲
    weight w ─────┘

Layout: :mod:`.graph` (ids, :class:`Tensor`, :class:`Op`, :class:`Graph`,
:class:`Subgraph`, the text form), :mod:`.builder` (:class:`GraphBuilder`),
:mod:`.json_form` (the JSON form and :func:`graph_sha256`). Import them from here.
"""

from memplan.ir.builder import GraphBuilder
from memplan.ir.graph import (
    MAX_GRAPH_BYTES,
    MAX_OP_MACS,
    Graph,
    Op,
    OpId,
    Subgraph,
    Tensor,
    TensorId,
    TensorKind,
    to_text,
)
from memplan.ir.json_form import (
    EXACT_FLOAT_MAX,
    GRAPH_JSON_VERSION,
    graph_from_dict,
    graph_from_json,
    graph_sha256,
    graph_to_dict,
    graph_to_json,
)

__all__ = [
    "EXACT_FLOAT_MAX",
    "GRAPH_JSON_VERSION",
    "MAX_GRAPH_BYTES",
    "MAX_OP_MACS",
    "Graph",
    "GraphBuilder",
    "Op",
    "OpId",
    "Subgraph",
    "Tensor",
    "TensorId",
    "TensorKind",
    "graph_from_dict",
    "graph_from_json",
    "graph_sha256",
    "graph_to_dict",
    "graph_to_json",
    "to_text",
]
