"""Tests of Graph.subgraph: a part of a graph as a graph of its own, with id maps."""

from __future__ import annotations

import random

import pytest
from helpers import random_graph

from memplan.errors import GraphError
from memplan.ir import GraphBuilder, OpId, TensorKind


@pytest.mark.parametrize("seed", range(12))
def test_subgraph_maps_ids_both_ways_and_keeps_the_ops(seed):
    graph = random_graph(seed, 14)
    rng = random.Random(seed)
    chosen = rng.sample(range(graph.num_ops), rng.randint(1, graph.num_ops))
    part = graph.subgraph(chosen)
    assert sorted(part.parent_ops) == sorted(chosen)
    assert list(part.parent_ops) == sorted(part.parent_ops)  # the model's order is kept
    for i, parent in enumerate(part.parent_ops):
        assert part.op_in_part(parent) == i
        sub_op, op = part.graph.ops[i], graph.ops[parent]
        assert sub_op.name == op.name and sub_op.op_type == op.op_type
        assert [part.parent_tensors[t] for t in sub_op.inputs] == list(op.inputs)
        assert [part.parent_tensors[t] for t in sub_op.outputs] == list(op.outputs)
    touched = {t for o in chosen for t in (*graph.ops[o].inputs, *graph.ops[o].outputs)}
    assert set(part.parent_tensors) == touched
    for j, parent in enumerate(part.parent_tensors):
        assert part.tensor_in_part(parent) == j
        assert part.graph.tensors[j].size_bytes == graph.tensors[parent].size_bytes
    assert part.op_in_part(next(iter(set(range(graph.num_ops)) - set(chosen)), -1)) is None


@pytest.mark.parametrize("seed", range(12))
def test_tensors_from_outside_become_inputs_and_leaving_ones_are_listed(seed):
    graph = random_graph(seed, 16)
    rng = random.Random(100 + seed)
    chosen = set(rng.sample(range(graph.num_ops), graph.num_ops // 2))
    part = graph.subgraph(chosen)
    for j, parent in enumerate(part.parent_tensors):
        original, inside = graph.tensors[parent], part.graph.tensors[j]
        produced_outside = graph.producer[parent] not in chosen
        if original.kind is TensorKind.ACTIVATION and produced_outside:
            assert inside.kind is TensorKind.INPUT and j in part.entering
        else:
            assert inside.kind is original.kind and j not in part.entering
        read_outside = any(c not in chosen for c in graph.consumers[parent])
        is_leaving = original.kind is TensorKind.ACTIVATION and not produced_outside
        assert (j in part.leaving) == (is_leaving and read_outside)
        assert inside.is_output == original.is_output


def test_subgraph_of_a_chain_middle():
    b = GraphBuilder("chain")
    x = b.tensor("x", 64, TensorKind.INPUT)
    a = b.tensor("a", 128)
    c = b.tensor("c", 256)
    y = b.tensor("y", 64, is_output=True)
    b.op("f", "Relu", [x], [a])
    b.op("g", "Relu", [a], [c])
    b.op("h", "Add", [c, x], [y])
    part = b.build().subgraph([OpId(1)])
    assert part.graph.num_ops == 1 and part.graph.ops[0].name == "g"
    assert [t.name for t in part.graph.tensors] == ["a", "c"]
    assert part.graph.tensors[0].kind is TensorKind.INPUT
    assert part.entering == (0,) and part.leaving == (1,)


@pytest.mark.parametrize("ops", [[], [0, 0], [99], [-1]])
def test_subgraph_rejects_bad_op_sets(ops):
    graph = random_graph(1, 5)
    with pytest.raises(GraphError, match="subgraph"):
        graph.subgraph(ops)


def test_kept_tensors_join_the_part_as_inputs():
    graph = random_graph(4, 12)
    part = graph.subgraph([OpId(8), OpId(9)], keep=[0])
    assert part.tensor_in_part(0) is not None
    kept = part.graph.tensors[part.tensor_in_part(0)]
    assert kept.kind in (TensorKind.INPUT, TensorKind.WEIGHT)
    with pytest.raises(GraphError, match="keeps unknown tensor"):
        graph.subgraph([OpId(1)], keep=[10_000])


@pytest.mark.parametrize("seed", range(8))
def test_unread_tensors_are_read_by_no_op_of_the_part(seed):
    """``unread`` (the bound of parts that own disjoint tensors): the part's ops no longer
    read those tensors; one produced inside stays its producer's output, one produced
    outside is not part of it at all; everything else is as without ``unread``."""
    graph = random_graph(seed, 16)
    rng = random.Random(200 + seed)
    chosen = sorted(rng.sample(range(graph.num_ops), graph.num_ops // 2))
    touched = sorted({t for o in chosen for t in (*graph.ops[o].inputs, *graph.ops[o].outputs)})
    unread = set(rng.sample(touched, len(touched) // 2))
    part = graph.subgraph(chosen, unread=unread)
    produced = {t for o in chosen for t in graph.ops[o].outputs}
    for i, parent in enumerate(part.parent_ops):
        op, sub_op = graph.ops[parent], part.graph.ops[i]
        assert [part.parent_tensors[t] for t in sub_op.inputs] == [
            t for t in op.inputs if t not in unread
        ]
        assert [part.parent_tensors[t] for t in sub_op.outputs] == list(op.outputs)
    kept = set(part.parent_tensors)
    for t in unread:
        if t in produced:
            assert t in kept and not part.graph.consumers[part.tensor_in_part(t)]
        else:
            assert t not in kept
    plain = graph.subgraph(chosen)
    assert set(plain.parent_tensors) - kept == unread - produced
