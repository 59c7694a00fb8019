"""The workload catalog: every workload loads, passes the ONNX checker, is deterministic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest

from memplan.errors import ConfigError, InputFormatError
from memplan.graphs import catalog
from memplan.graphs.catalog import (
    build_model_bytes,
    count_ops,
    export_model,
    get_workload,
    list_workloads,
    load_model,
    read_index,
    suite_names,
)

ALL = list_workloads()
NAS_FAMILIES = {"nasnet", "amoebanet", "darts", "pnasnet"}


def test_suite_has_enough_variety() -> None:
    assert len(ALL) >= 20
    assert len({w.name for w in ALL}) == len(ALL)
    nas = list_workloads("nas")
    assert {w.family for w in nas} >= NAS_FAMILIES
    ops = [w.ops for w in ALL]
    assert min(ops) <= 40
    assert max(ops) >= 2000
    assert sum(1 for w in ALL if w.ops >= 1000) >= 4


def test_suites_are_named_and_consistent() -> None:
    names = suite_names()
    assert names[0] == "all"
    for required in ("light", "small", "nas", "large"):
        assert required in names
    assert [w.name for w in list_workloads("all")] == [w.name for w in ALL]
    assert list_workloads(None) == list_workloads("all")
    light = list_workloads("light")
    assert len(light) == 9
    assert all(w.name.startswith("light_") and not w.is_generated for w in light)
    for info in list_workloads("small"):
        assert 20 <= info.ops <= 150, info.name
        assert "small" in info.suites
    for info in list_workloads("large"):
        assert info.ops >= 1000, info.name
    for info in list_workloads("nas"):
        assert info.family in NAS_FAMILIES
    # Every NAS family has a small variant for exact solvers.
    small_families = {w.family for w in list_workloads("small")}
    assert small_families >= NAS_FAMILIES


@pytest.mark.parametrize("name", [w.name for w in ALL])
def test_workload_loads_checks_and_is_deterministic(name: str) -> None:
    info = get_workload(name)
    first = build_model_bytes(info)
    second = build_model_bytes(info)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
    model = onnx.load_from_string(first)
    onnx.checker.check_model(model, full_check=True)
    assert count_ops(model) == info.ops
    # The cached path returns the same bytes and a fresh, equal ModelProto each time.
    assert catalog.model_bytes(name) == first
    assert load_model(name) is not load_model(name)
    if info.is_generated:
        assert model.opset_import[0].version == 17
        assert not model.graph.initializer or all(
            init.ByteSize() < 4096 for init in model.graph.initializer
        ), "generated weights must be ConstantOfShape, not stored data"
        assert len(first) < 2_000_000


def test_stored_light_models_match_their_sha256() -> None:
    for info in list_workloads("light"):
        path = info.stored_file()
        assert path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
        assert info.package == "onnx"
        assert "Apache-2.0" in info.licence


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="darts_v2_cifar_small") as error:
        get_workload("darts_v2_cifar_smal")
    assert "did you mean" in str(error.value)
    with pytest.raises(ConfigError, match="light_resnet50"):
        load_model("resnet_unknown")
    with pytest.raises(ConfigError, match="small"):
        list_workloads("tiny-suite")


def test_export_writes_the_model_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "unet.onnx"
    written = export_model("unet_small", target)
    assert written == target
    assert target.read_bytes() == catalog.model_bytes("unet_small")
    assert [p.name for p in target.parent.iterdir()] == ["unet.onnx"]
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)


INDEX_HEAD = 'format_version = 1\n[suites.s]\nworkloads = ["a"]\n'
STORED = """
[[workload]]
name = "a"
family = "f"
description = "d"
source = "s"
licence = "MIT"
ops = 1
path = "stored/a.onnx"
sha256 = "{sha}"
"""


def _write_index(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "index.toml"
    path.write_text(text)
    return path


def test_stored_sha256_mismatch_and_missing_file_are_reported(tmp_path: Path) -> None:
    index = read_index(_write_index(tmp_path, INDEX_HEAD + STORED.format(sha="0" * 64)))
    (info,) = index.workloads
    assert info.suites == ("s",)
    assert info.stored_file().name == "a.onnx"
    with pytest.raises(ConfigError, match="missing"):
        build_model_bytes(info)
    light = get_workload("light_squeezenet")
    wrong = type(light)(**{**_fields(light), "sha256": "0" * 64})
    with pytest.raises(InputFormatError, match="sha256"):
        build_model_bytes(wrong)


def _fields(info: catalog.WorkloadInfo) -> dict[str, object]:
    return {name: getattr(info, name) for name in info.__dataclass_fields__}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format_version = 1\n[[workload]\n", "not valid TOML"),
        ("format_version = 2\n", "format_version"),
        (INDEX_HEAD + STORED.format(sha="0" * 64) + "colour = 1\n", "unknown field"),
        (INDEX_HEAD + STORED.format(sha="abc"), "sha256"),
        (INDEX_HEAD + STORED.format(sha="0" * 64).replace("ops = 1\n", ""), "missing field"),
        (
            'format_version = 1\n[suites.s]\nworkloads = ["a", "b"]\n'
            + STORED.format(sha="0" * 64),
            "unknown workloads",
        ),
        (
            INDEX_HEAD
            + STORED.format(sha="0" * 64).replace(
                'path = "stored/a.onnx"', 'generator = "os.system"'
            ),
            "either generator",
        ),
        (
            INDEX_HEAD
            + STORED.format(sha="0" * 64)
            .replace('path = "stored/a.onnx"\n', "")
            .replace('sha256 = "' + "0" * 64 + '"', 'generator = "os.system"'),
            "not one of",
        ),
        (INDEX_HEAD + STORED.format(sha="0" * 64) * 2, "listed twice"),
        (
            "format_version = 1\n[suites.all]\nworkloads = []\n" + STORED.format(sha="0" * 64),
            "implicit",
        ),
    ],
)
def test_malformed_index_is_rejected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        read_index(_write_index(tmp_path, text))


def test_bad_generator_parameters_raise_config_error() -> None:
    info = get_workload("unet_small")
    broken = type(info)(**{**_fields(info), "params": {"depth": 3, "colour": "red"}})
    with pytest.raises(ConfigError, match="colour"):
        build_model_bytes(broken)


@pytest.mark.parametrize("name", [w.name for w in ALL])
def test_every_workload_imports_into_memplan(name: str) -> None:
    from memplan.io.loading import load_model as load_graph
    from memplan.ir import TensorKind

    info = get_workload(name)
    graph = load_graph(load_model(name)).graph
    # Views (Reshape, Flatten, Dropout...) become aliases, so memplan has at most as
    # many ops as the model has compute nodes, and never fewer than half of them here.
    assert info.ops // 2 <= graph.num_ops <= info.ops
    kinds = {t.kind for t in graph.tensors}
    assert TensorKind.WEIGHT in kinds and TensorKind.INPUT in kinds
    assert any(t.is_output for t in graph.tensors)
