"""The workload generators build the structures they claim: cells, random DAGs, attention."""

from __future__ import annotations

from collections import Counter

import onnx
import pytest
from onnx import TensorProto, helper

from memplan.errors import ConfigError, GraphError
from memplan.graphs import cnn, nas, randwire, transformers
from memplan.graphs.onnx_builder import OnnxBuilder, compute_node_count


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    values = [*model.graph.value_info, *model.graph.output, *model.graph.input]
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim) for v in values}


def _op_counts(model: onnx.ModelProto) -> Counter[str]:
    return Counter(node.op_type for node in model.graph.node)


# ----------------------------------------------------------------- builder


def test_compute_node_count_skips_weight_making_nodes() -> None:
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [4])
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["w"]),
        helper.make_node("Constant", [], ["c"], value=helper.make_tensor("v", 1, [1], [1.0])),
        helper.make_node("Add", ["w", "c"], ["w2"]),  # constants only: a weight
        helper.make_node("Mul", ["x", "w2"], ["y"]),  # reads the input: computes
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])],
        initializer=[shape],
    )
    assert compute_node_count(helper.make_model(graph)) == 2


def test_builder_infers_shapes_and_names_uniquely() -> None:
    b = OnnxBuilder("t")
    x = b.add_input("x", [1, 8, 10, 10])
    w = b.weight([4, 8, 3, 3])
    with b.scope("block"):
        y = b.op("Conv", [x, w], "conv", pads=[1, 1, 1, 1])
        z = b.op("Conv", [y, b.weight([2, 4, 1, 1])], "conv")
    assert b.shape(y) == (1, 4, 10, 10)
    assert b.shape(z) == (1, 2, 10, 10)
    assert y == "block/conv" and z == "block/conv_1"
    assert b.is_weight(w) and not b.is_weight(y)
    b.add_output(z)
    model = b.build()
    onnx.checker.check_model(model, full_check=True)
    assert compute_node_count(model) == 2
    assert _op_counts(model)["ConstantOfShape"] == 2


def test_builder_errors_name_the_node() -> None:
    b = OnnxBuilder("t")
    x = b.add_input("x", [1, 8])
    with pytest.raises(GraphError, match="unknown tensor"):
        b.op("Relu", ["nope"])
    with pytest.raises(GraphError, match=r"matmul.*shape inference"):
        b.op("MatMul", [x, b.weight([3, 4])], "matmul")
    with pytest.raises(GraphError, match="bad shape"):
        b.weight([0, 3])
    with pytest.raises(GraphError, match="already used"):
        b.add_input("x", [1])
    with pytest.raises(GraphError, match="no graph output"):
        b.build()


# ---------------------------------------------------------------- NAS cells


@pytest.mark.parametrize("genotype", sorted(nas.GENOTYPES))
def test_genotypes_are_well_formed(genotype: str) -> None:
    geno = nas.GENOTYPES[genotype]
    for pairs, concat in ((geno.normal, geno.normal_concat), (geno.reduce, geno.reduce_concat)):
        assert len(pairs) % 2 == 0
        nodes = len(pairs) // 2
        for index, (op_name, source) in enumerate(pairs):
            assert op_name in nas.OPERATIONS
            assert 0 <= source < 2 + index // 2  # reads a cell input or an earlier node
        assert all(2 <= i < 2 + nodes for i in concat)


def test_parse_cells() -> None:
    assert nas.parse_cells("N36x2 R72") == [("N", 36), ("N", 36), ("R", 72)]
    for bad in ("", "X36", "N", "N0", "N36x", "n36"):
        with pytest.raises(ConfigError):
            nas.parse_cells(bad)


@pytest.mark.parametrize("genotype", sorted(nas.GENOTYPES))
def test_cells_halve_resolution_at_reductions(genotype: str) -> None:
    model = nas.nas_network(
        name="t", genotype=genotype, cells="N8 R16 N16 R32", stem_channels=24, image_size=32
    )
    onnx.checker.check_model(model, full_check=True)
    geno = nas.GENOTYPES[genotype]
    shapes = _shapes(model)
    expected = [
        ("normal", 8 * len(geno.normal_concat), 32),
        ("reduce", 16 * len(geno.reduce_concat), 16),
        ("normal", 16 * len(geno.normal_concat), 16),
        ("reduce", 32 * len(geno.reduce_concat), 8),
    ]
    for index, (kind, channels, height) in enumerate(expected):
        assert shapes[f"cell{index}_{kind}/concat"] == (1, channels, height, height)
    # Every cell reads the two cells before it: both preprocess paths exist.
    names = {node.name for node in model.graph.node}
    for index in range(4):
        assert any(n.startswith(f"cell{index}_") and "/pre0/" in n for n in names)
        assert any(n.startswith(f"cell{index}_") and "/pre1/" in n for n in names)


def test_sep_conv_is_two_relu_dw_pw_bn_blocks() -> None:
    model = nas.nas_network(name="t", genotype="DARTS_V2", cells="N8", stem_channels=8)
    # DARTS-V2 normal cell: 5 sep_conv_3x3 (2 blocks each) + 1 dil_conv_3x3 (1 block).
    counts = _op_counts(model)
    blocks = 5 * 2 + 1
    assert counts["Relu"] == blocks + 2  # plus the two preprocess ReLUs
    assert counts["Conv"] == 2 * blocks + 2 + 1  # dw + pw per block, preprocess, stem
    assert counts["Add"] == 4 and counts["Concat"] == 1
    dilated = [n for n in model.graph.node if any(a.name == "dilations" for a in n.attribute)]
    assert len(dilated) == 1


def test_nas_network_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="DARTS_V2"):
        nas.nas_network(name="t", genotype="DARTS_V9", cells="N8")
    with pytest.raises(ConfigError, match="cifar"):
        nas.nas_network(name="t", genotype="DARTS_V2", cells="N8", stem="huge")


# ---------------------------------------------------------------- RandWire


def test_ws_dag_is_seeded_and_acyclic() -> None:
    preds = randwire.ws_dag(32, 4, 0.75, seed=7)
    assert preds == randwire.ws_dag(32, 4, 0.75, seed=7)
    assert preds != randwire.ws_dag(32, 4, 0.75, seed=8)
    assert all(u < v for v, node_preds in enumerate(preds) for u in node_preds)
    assert sum(len(p) for p in preds) == 32 * 4 // 2  # WS keeps the edge count
    with pytest.raises(ConfigError):
        randwire.ws_dag(4, 4, 0.75, seed=0)


def test_randwire_weights_every_edge_and_averages_the_sinks() -> None:
    preds = randwire.ws_dag(12, 4, 0.75, seed=3)
    model = randwire.randwire_network(
        name="t", stage_nodes=[12], channels=8, seed=3, image_size=32, head_channels=0
    )
    onnx.checker.check_model(model, full_check=True)
    edge_muls = [n for n in model.graph.node if n.op_type == "Mul" and "/mul" in n.name]
    assert len(edge_muls) == sum(len(p) for p in preds)
    sources = sum(1 for p in preds if not p)
    strided = [
        n
        for n in model.graph.node
        if n.name.endswith("/dw")
        and any(a.name == "strides" and a.ints[0] == 2 for a in n.attribute)
    ]
    assert len(strided) == sources  # nodes without predecessors read the stage input, stride 2
    sinks = sum(1 for v in range(12) if all(v not in p for p in preds))
    mean = [n for n in model.graph.node if n.name == "stage0/out/mean"]
    assert len(mean) == (1 if sinks > 1 else 0)


# ------------------------------------------------------------- transformers


def test_bert_attention_shapes() -> None:
    model = transformers.bert_encoder(
        name="t", layers=2, hidden=64, heads=4, intermediate=128, seq_len=16, vocab=100
    )
    onnx.checker.check_model(model, full_check=True)
    shapes = _shapes(model)
    assert shapes["layer0/scores"] == (1, 4, 16, 16)
    assert shapes["layer1/softmax"] == (1, 4, 16, 16)
    assert shapes["pooler/tanh"] == (1, 64)
    assert _op_counts(model)["LayerNormalization"] == 1 + 2 * 2
    with pytest.raises(ConfigError, match="multiple"):
        transformers.bert_encoder(name="t", hidden=64, heads=5)


def test_gpt2_causal_mask_is_a_weight() -> None:
    model = transformers.gpt2_decoder(name="t", layers=1, hidden=32, heads=2, seq_len=8, vocab=50)
    onnx.checker.check_model(model, full_check=True)
    assert _shapes(model)["head/lm_head"] == (1, 8, 50)
    counts = _op_counts(model)
    assert counts["Trilu"] == 1 and counts["Split"] == 1
    # Trilu reads only constants, so it is not counted as a compute node.
    non_weight = compute_node_count(model)
    with_trilu = sum(1 for n in model.graph.node if n.op_type not in ("ConstantOfShape",))
    assert non_weight == with_trilu - 1


def test_vit_has_a_class_token() -> None:
    model = transformers.vit_encoder(
        name="t", image_size=32, patch=8, layers=1, hidden=32, heads=2, mlp=64, num_classes=5
    )
    onnx.checker.check_model(model, full_check=True)
    shapes = _shapes(model)
    assert shapes["embeddings/add_position"] == (1, 17, 32)
    assert shapes["head/fc/bias_add"] == (1, 5)
    with pytest.raises(ConfigError, match="patch"):
        transformers.vit_encoder(name="t", image_size=30, patch=8)


# ---------------------------------------------------------------------- CNNs


def test_mobilenet_v2_has_ten_residual_adds() -> None:
    model = cnn.mobilenet_v2(name="t", image_size=64, num_classes=7)
    onnx.checker.check_model(model, full_check=True)
    counts = _op_counts(model)
    assert counts["Add"] == 10
    assert counts["Conv"] == 1 + 17 * 3 - 1 + 1  # stem, 17 blocks (first has no expand), head
    assert _shapes(model)["classifier/fc"] == (1, 7)


def test_unet_long_skips() -> None:
    model = cnn.unet(name="t", depth=3, base_channels=4, image_size=32, batch_norm=False)
    onnx.checker.check_model(model, full_check=True)
    shapes = _shapes(model)
    assert _op_counts(model)["Concat"] == 3
    for level in range(3):
        size = 32 >> level
        assert shapes[f"dec{level}/concat"] == (1, 8 << level, size, size)
    assert shapes["out/conv"] == (1, 2, 32, 32)
    with pytest.raises(ConfigError, match="divisible"):
        cnn.unet(name="t", depth=3, image_size=20)
