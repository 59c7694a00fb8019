"""Tests of the scheduling IR: invariants, errors, text, JSON and networkx forms."""

from __future__ import annotations

import json
import re

import networkx as nx
import pytest
from helpers import random_graph

from memplan.errors import GraphError, InputFormatError
from memplan.ir import (
    MAX_OP_MACS,
    Graph,
    GraphBuilder,
    Op,
    OpId,
    Tensor,
    TensorId,
    TensorKind,
    graph_from_dict,
    graph_from_json,
    graph_to_dict,
    graph_to_json,
    to_text,
)


def small() -> Graph:
    b = GraphBuilder("small")
    x = b.tensor("x", 100, TensorKind.INPUT, shape=(1, 25), dtype="float32")
    w = b.tensor("w", 40, TensorKind.WEIGHT)
    a = b.tensor("a", 60)
    c = b.tensor("c", 30)
    y = b.tensor("y", 10, is_output=True)
    b.op("conv", "Conv", [x, w], [a], macs=1000)
    b.op("split", "Split", [a], [c, b.tensor("d", 30)])
    b.op("add", "Add", [c, c, x], [y], macs=10)
    return b.build()


def test_dense_ids_and_derived_tables():
    g = small()
    assert [op.id for op in g.ops] == list(range(g.num_ops))
    assert [t.id for t in g.tensors] == list(range(g.num_tensors))
    x, w, a, c, d = (g.tensor_by_name(n).id for n in "xwacd")
    assert g.producer[x] is None and g.producer[w] is None
    assert g.producer[a] == 0 and g.producer[c] == 1 and g.producer[d] == 1
    assert g.consumers[x] == (0, 2)  # each consumer once
    assert g.consumers[c] == (2,)  # read twice by one op: listed once
    assert g.consumers[d] == ()
    assert g.predecessors(OpId(2)) == (1,)
    assert g.successors(OpId(0)) == (1,)
    assert g.op_histogram() == {"Add": 1, "Conv": 1, "Split": 1}
    assert g.bytes_of_kind(TensorKind.ACTIVATION) == 60 + 30 + 30 + 10
    assert g.op_by_name("add").inputs == (c, c, x)


@pytest.mark.parametrize("seed", range(20))
def test_random_graphs_satisfy_the_invariants(seed):
    g = random_graph(seed, 5 + seed * 3)
    for t in g.tensors:
        assert t.size_bytes > 0
        if t.kind is TensorKind.ACTIVATION:
            assert g.producer[t.id] is not None
        else:
            assert g.producer[t.id] is None
    for op in g.ops:
        for t in op.inputs:
            p = g.producer[t]
            assert p is None or p < op.id  # the stored order is topological
        for t in op.outputs:
            assert g.producer[t] == op.id


def bad(build) -> str:
    with pytest.raises(GraphError) as info:
        build()
    return str(info.value)


def test_invariant_violations_have_clear_messages():
    def zero_size():
        b = GraphBuilder("g")
        b.tensor("x", 0, TensorKind.INPUT)
        b.build()

    assert "'x' has size 0 bytes" in bad(zero_size)

    def two_producers():
        b = GraphBuilder("g")
        x = b.tensor("x", 4, TensorKind.INPUT)
        y = b.tensor("y", 4)
        b.op("p1", "Relu", [x], [y])
        b.op("p2", "Relu", [x], [y])
        b.build()

    assert "produced by both 'p1' and 'p2'" in bad(two_producers)

    def producing_a_weight():
        b = GraphBuilder("g")
        x = b.tensor("x", 4, TensorKind.INPUT)
        w = b.tensor("w", 4, TensorKind.WEIGHT)
        b.op("p", "Relu", [x], [w])
        b.build()

    assert "only activations are produced" in bad(producing_a_weight)

    def orphan():
        b = GraphBuilder("g")
        b.tensor("lonely", 4)
        b.build()

    assert "activation 'lonely' has no producer" in bad(orphan)

    def duplicate_name():
        b = GraphBuilder("g")
        b.tensor("x", 4)
        b.tensor("x", 4)

    assert "'x' is defined twice" in bad(duplicate_name)

    def no_outputs():
        b = GraphBuilder("g")
        x = b.tensor("x", 4, TensorKind.INPUT)
        b.op("p", "Relu", [x], [])
        b.build()

    assert "has no outputs" in bad(no_outputs)

    def unknown_tensor():
        Graph("g", (Op(OpId(0), "p", "Relu", (TensorId(5),), (TensorId(0),)),),
              (Tensor(TensorId(0), "y", 4, TensorKind.ACTIVATION),))  # fmt: skip

    assert "unknown tensor id 5" in bad(unknown_tensor)

    def bad_ids():
        Graph("g", (), (Tensor(TensorId(1), "y", 4, TensorKind.INPUT),))

    assert "has id 1, expected 0" in bad(bad_ids)


def test_cycle_and_bad_order_are_detected():
    b = GraphBuilder("cyc")
    x = b.tensor("x", 4, TensorKind.INPUT)
    a = b.tensor("a", 4)
    c = b.tensor("c", 4)
    b.op("first", "Add", [x, c], [a])
    b.op("second", "Relu", [a], [c])
    message = bad(b.build)
    assert "cycle" in message and "first" in message and "second" in message
    assert "acyclic" in message

    b = GraphBuilder("late")
    x = b.tensor("x", 4, TensorKind.INPUT)
    a = b.tensor("a", 4)
    c = b.tensor("c", 4)
    b.op("reader", "Relu", [a], [c])
    b.op("writer", "Relu", [x], [a])
    message = bad(b.build)
    assert "'reader' reads 'a' before its producer 'writer'" in message


@pytest.mark.parametrize("seed", range(10))
def test_json_round_trip(seed):
    g = random_graph(seed, 30) if seed else small()
    text = graph_to_json(g)
    again = graph_from_json(text)
    assert again == g
    assert graph_to_json(again) == text
    assert again.tensors == g.tensors and again.ops == g.ops
    assert graph_from_dict(graph_to_dict(g)) == g


def test_json_errors_name_the_source():
    with pytest.raises(InputFormatError, match=r"f\.json: line 1"):
        graph_from_json("{", "f.json")
    with pytest.raises(InputFormatError, match="not a memplan graph"):
        graph_from_json('{"a": 1}', "f.json")
    data = graph_to_dict(small())
    data["version"] = 99
    with pytest.raises(InputFormatError, match="version 99"):
        graph_from_dict(data, "f.json")
    data = graph_to_dict(small())
    data["tensors"][0]["kind"] = "bogus"
    with pytest.raises(InputFormatError, match="kind 'bogus'"):
        graph_from_dict(data, "f.json")
    data = graph_to_dict(small())
    del data["ops"][0]["inputs"]
    with pytest.raises(InputFormatError, match=r"f\.json: op #0 'conv': the field 'inputs' is"):
        graph_from_dict(data, "f.json")
    data = graph_to_dict(small())
    data["ops"][0]["inputs"] = ["nope"]  # it was "graph 'small': no tensor named 'nope'"
    with pytest.raises(
        InputFormatError,
        match=r"f\.json: op #0 'conv': the field 'inputs' names tensor 'nope', which the "
        r"file's 'tensors' list does not have; add it there or correct the name",
    ):
        graph_from_dict(json.loads(json.dumps(data)), "f.json")


def _graph_text(op_fields: str = "", tensor_fields: str = "") -> str:
    """A two-tensor graph file as text, so values like 1e400 go through json.loads;
    ``tensor_fields`` may set tensor b's size_bytes and is_output (10 and true otherwise)."""
    size = "" if "size_bytes" in tensor_fields else ', "size_bytes": 10'
    output = "" if "is_output" in tensor_fields else ', "is_output": true'
    return (
        '{"format": "memplan.graph", "version": 1, "name": "x", "tensors": ['
        '{"name": "a", "size_bytes": 10, "kind": "input"}, '
        f'{{"name": "b"{size}, "kind": "activation"{output}{tensor_fields}}}'
        '], "ops": [{"name": "o", "op_type": "X", "inputs": ["a"], "outputs": ["b"]'
        f"{op_fields}}}]}}"
    )


@pytest.mark.parametrize(
    ("op_fields", "tensor_fields", "message"),
    [
        (', "macs": 1e400', "", "op #0 'o': field 'macs' must be a whole number (a JSON integer), "
         "got infinity"),
        (', "macs": NaN', "", "op #0 'o': field 'macs' must be a whole number (a JSON integer), "
         "got NaN"),
        (', "macs": 1.5', "", "op #0 'o': field 'macs' must be a whole number (a JSON integer), "
         "got 1.5"),
        (', "macs": "7"', "", "op #0 'o': field 'macs' must be a whole number (a JSON integer), "
         "got '7'"),
        (', "macs": true', "", "field 'macs' must be a whole number (a JSON integer), got true"),
        # A whole float too large to be exact was taken (as 10^30 + 19884624838656).
        (', "macs": 1e+30', "", "op #0 'o': field 'macs' must be a whole number (a JSON "
         "integer), got 1e+30, a float too large to be exact (over 2^53; write the number"),
        ("", ', "size_bytes": 9007199254740994.0', "tensor #1 'b': field 'size_bytes' must be "
         "a whole number (a JSON integer), got 9007199254740994.0, a float too large"),
        ("", ', "size_bytes": 1e400', "tensor #1 'b': field 'size_bytes' must be a whole number"),
        ("", ', "size_bytes": 10.5', "tensor #1 'b': field 'size_bytes' must be a whole number"),
        ("", ', "shape": [2, -Infinity]', "tensor #1 'b': field 'shape' must be a whole number"),
        ("", ', "shape": [2.5, 4]', "tensor #1 'b': field 'shape' must be a whole number"),
        ("", ', "is_output": "false"', "tensor #1 'b': field 'is_output' must be true or false"),
    ],
)  # fmt: skip
def test_json_numbers_must_be_whole_and_finite(op_fields, tensor_fields, message):
    """1e400 (infinity) was an OverflowError traceback, 1.5 was truncated to 1 and "7" or
    true taken as numbers; each is now one line naming the file, the op or tensor and the
    field."""
    with pytest.raises(InputFormatError) as info:
        graph_from_json(_graph_text(op_fields, tensor_fields), "g.json")
    assert str(info.value).startswith("g.json: ")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_json_numbers_without_a_fraction_are_whole():
    """A float with no fraction (1e6 MACs, as tools write them) is that whole number, up
    to 2^53, where every whole number is exact in a double."""
    g = graph_from_json(_graph_text(', "macs": 1e6', ', "shape": [2.0, 5]'), "g.json")
    assert g.ops[0].macs == 1_000_000 and isinstance(g.ops[0].macs, int)
    assert g.tensor_by_name("b").shape == (2, 5)
    exact = graph_from_json(_graph_text(', "macs": 9007199254740992.0'), "g.json")
    assert exact.ops[0].macs == 2**53
    assert graph_from_json(graph_to_json(g), "again.json") == g


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A repeated key was read as its last value: a 1 GB tensor, without a word.
        (_graph_text(tensor_fields=', "size_bytes": 10, "size_bytes": 1000000000'),
         "g.json: field 'size_bytes' is given more than once in one JSON object"),
        # These two were a RecursionError and a ValueError traceback.
        ("[" * 100_000 + "]" * 100_000, "g.json: lists or objects nested too deeply to read"),
        (_graph_text(', "macs": ' + "9" * 5000),
         "g.json: an integer of more than 4,300 digits, too long to read"),
    ],
)  # fmt: skip
def test_json_text_the_reader_got_wrong_is_one_line(text, message):
    with pytest.raises(InputFormatError) as info:
        graph_from_json(text, "g.json")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_json_tensors_and_ops_must_be_objects():
    data = graph_to_dict(small())
    data["tensors"][1] = 1
    with pytest.raises(InputFormatError, match=r"f\.json: tensor #1 must be an object, got 1"):
        graph_from_dict(data, "f.json")
    data = graph_to_dict(small())
    data["ops"][0] = "conv"
    with pytest.raises(InputFormatError, match=r"f\.json: op #0 must be an object, got 'conv'"):
        graph_from_dict(data, "f.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # These said "malformed graph JSON (KeyError('outputs'))", naming no op.
        (lambda d: d["ops"][1].pop("outputs"), "op #1 'split': the field 'outputs' is missing"),
        (lambda d: d["tensors"][0].pop("size_bytes"), "tensor #0 'x': the field 'size_bytes' is"),
        (lambda d: d.pop("tensors"), "f.json: the field 'tensors' is missing; add it"),
        # "ops": {} read as no ops and was reported as a tensor without a producer.
        (lambda d: d.update(ops={}), "f.json: the field 'ops' must be a list, got an object"),
        (lambda d: d["ops"][0].update(inputs="x"), "op #0 'conv': the field 'inputs' must be a"),
        (lambda d: d["tensors"][0].update(shape=7), "'x': the field 'shape' must be a list, got 7"),
        # Fields graph_to_dict does not write were ignored: a misspelt is_output silently.
        (
            lambda d: d["tensors"][4].update(is_ouput=True),
            "tensor #4 'y': unknown field 'is_ouput' (known: name, size_bytes, kind, is_output, "
            "shape, dtype); remove it or correct its spelling",
        ),
        (lambda d: d["ops"][0].update(mac=5), "op #0 'conv': unknown field 'mac' (known: name, "),
        (lambda d: d.update(nmae="x"), "f.json: unknown field 'nmae' (known: format, version, "),
        # Names were str()-ed: [1, 2] named the graph '[1, 2]', null a tensor 'None'.
        (lambda d: d.update(name=[1, 2]), "f.json: the field 'name' must be a string, got a list"),
        (
            lambda d: d["tensors"][0].update(name=None),
            "the field 'name' must be a string, got null",
        ),
        (lambda d: d["ops"][0].update(op_type=3), "'conv': the field 'op_type' must be a string"),
        (
            lambda d: d["ops"][0].update(inputs=[None]),
            "op #0 'conv': the field 'inputs': item #0 must be a tensor name (a string), got null",
        ),
        (lambda d: d.update(version=1.0), "f.json: graph format version 1.0 is not supported"),
    ],
)
def test_json_missing_or_mistyped_fields_name_the_item_and_field(change, message):
    data = graph_to_dict(small())
    change(data)
    with pytest.raises(InputFormatError, match=re.escape(message)):
        graph_from_dict(data, "f.json")


def test_text_form_lists_every_op_with_its_tensors():
    g = small()
    text = to_text(g)
    assert str(g) == text
    lines = text.splitlines()
    assert lines[0].startswith("graph small: 3 ops, 6 tensors")
    assert "inputs: x[100 B]" in lines[1]
    assert len([line for line in lines if " Conv(" in line or " Split(" in line]) == 2
    assert "conv Conv(in:x[100 B], w:w[40 B]) -> a[60 B]  macs=1000" in text
    assert "y*[10 B]" in text  # graph outputs are starred


@pytest.mark.parametrize("seed", range(10))
def test_networkx_view(seed):
    g = random_graph(seed, 25)
    dag = g.to_networkx()
    assert dag.number_of_nodes() == g.num_ops
    assert nx.is_directed_acyclic_graph(dag)
    expected = {(p, op.id) for op in g.ops for p in g.predecessors(op.id)}
    assert set(dag.edges) == expected
    for u, v, data in dag.edges(data=True):
        assert data["tensors"]
        for t in data["tensors"]:
            assert g.producer[t] == u and t in g.ops[v].inputs
    assert dag.nodes[0]["op_type"] == g.ops[0].op_type


def test_a_graph_too_large_for_64_bit_sums_is_refused_in_one_message():
    """2^62-byte tensors (shapes such as [2^30, 2^30] of float32) overflowed numpy's
    int64 peaks into negative numbers; 2^93 bytes raised OverflowError deep inside."""
    from memplan.ir import MAX_GRAPH_BYTES

    def huge(size: int):
        def build():
            b = GraphBuilder("big")
            x = b.tensor("x", size, TensorKind.INPUT)
            y = b.tensor("y", size, TensorKind.ACTIVATION, is_output=True)
            b.op("relu", "Relu", [x], [y])
            return b.build()

        return build

    message = bad(huge(1 << 62))
    assert "above memplan's limit of 1 PiB" in message and "'x'" in message
    assert "above" in bad(huge(1 << 93))
    huge(MAX_GRAPH_BYTES // 2)()  # at the limit: accepted


def test_macs_above_two_to_the_100_are_refused():
    """10^400 MACs in a graph file passed the import and then failed every cost
    computation with an OverflowError traceback (float64 cannot hold it)."""
    b = GraphBuilder("big")
    x = b.tensor("x", 64, TensorKind.INPUT)
    y = b.tensor("y", 64, is_output=True)
    b.op("huge", "MatMul", [x], [y], macs=MAX_OP_MACS)
    assert b.build().ops[0].macs == 2**100
    b = GraphBuilder("bigger")
    x = b.tensor("x", 64, TensorKind.INPUT)
    y = b.tensor("y", 64, is_output=True)
    b.op("huge", "MatMul", [x], [y], macs=MAX_OP_MACS + 1)
    with pytest.raises(GraphError, match=r"op 'huge' has macs of 31 digits, above .* 2\^100"):
        b.build()
    with pytest.raises((GraphError, InputFormatError), match=r"op 'o' has macs of 401 digits"):
        graph_from_json(_graph_text(f', "macs": {10**400}'), "g.json")
