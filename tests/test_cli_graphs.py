"""``memplan graphs list`` and ``memplan graphs export``."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from memplan.cli import main
from memplan.graphs.catalog import list_workloads, model_bytes


def test_list_json_without_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graphs", "list", "--suite", "light", "--no-stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format_version"] == 1 and data["suite"] == "light"
    rows = data["workloads"]
    assert [r["name"] for r in rows] == [w.name for w in list_workloads("light")]
    for row in rows:
        assert row["package"] == "onnx" and len(row["sha256"]) == 64
        assert row["onnx_ops"] > 0
        assert "m_r_bytes" not in row


def test_list_json_with_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graphs", "list", "--suite", "small", "--json", "--accelerator", "unaligned"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alignment_bytes"] == 1 and data["scope"] == "activations"
    rows = {r["name"]: r for r in data["workloads"]}
    assert set(rows) == {w.name for w in list_workloads("small")}
    for row in rows.values():
        assert 0 < row["ops"] <= row["onnx_ops"]
        assert row["tensors"] > row["ops"]
        assert 0 < row["m_r_bytes"] <= row["model_order_peak_bytes"]
    # The generated DARTS cell pair is a case where M_R < peak (spilling matters).
    darts = rows["darts_v2_cifar_small"]
    assert darts["m_r_bytes"] < darts["model_order_peak_bytes"]
    assert darts["generator"] == "nas.nas_network"
    assert darts["params"]["genotype"] == "DARTS_V2"


def test_list_matches_published_light_figures(capsys: pytest.CaptureFixture[str]) -> None:
    # ANCHORS.md: densenet121 M_R 6.42 MB and model-order peak 8.43 MB (fp32, batch 1,
    # activations scope, no aliasing or alignment).
    args = ["graphs", "list", "--suite", "light", "--json", "--accelerator", "unaligned"]
    assert main([*args, "--no-aliases"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["workloads"]}
    densenet = rows["light_densenet121"]
    assert round(densenet["m_r_bytes"] / 1e6, 2) == 6.42
    assert round(densenet["model_order_peak_bytes"] / 1e6, 2) == 8.43
    shufflenet = rows["light_shufflenet"]
    assert round(shufflenet["m_r_bytes"] / 1e6, 2) == 2.81
    assert round(shufflenet["model_order_peak_bytes"] / 1e6, 2) == 3.11


def test_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graphs", "list", "--suite", "transformer"]) == 0
    out = capsys.readouterr().out
    for workload in list_workloads("transformer"):
        assert workload.name in out
    assert "M_R" in out and "peak" in out


def test_export_writes_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bert.onnx"
    assert main(["graphs", "export", "bert_tiny", "-o", str(target)]) == 0
    assert target.read_bytes() == model_bytes("bert_tiny")
    onnx.checker.check_model(onnx.load(str(target)), full_check=True)
    assert "wrote bert_tiny" in capsys.readouterr().err


def test_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "x.onnx"
    assert main(["graphs", "export", "no_such_model", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "unknown workload 'no_such_model'" in err and "light_resnet50" in err
    assert "Traceback" not in err
    assert not target.exists()
    assert main(["graphs", "list", "--suite", "nope", "--no-stats"]) == 2
    assert "known suites: all, light, small" in capsys.readouterr().err
    assert main(["graphs"]) == 2
    assert "list" in capsys.readouterr().err


def test_list_table_sizes_carry_units_and_fit_80_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["graphs", "list", "--suite", "light"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    densenet = next(line for line in out.splitlines() if "light_densenet121" in line)
    assert "6.12 MiB" in densenet and "8.04 MiB" in densenet
    assert "…" not in out and "1024-based" in out


def test_export_checks_the_output_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "bert.onnx"
    assert main(["graphs", "export", "bert_tiny", "-o", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "does not exist; create it first" in err and err.count("\n") == 1
    assert not missing.parent.exists()
    assert main(["graphs", "export", "bert_tiny", "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    for name in ("rw.json", "rw", "rw.onnx.txt"):
        assert main(["graphs", "export", "bert_tiny", "-o", str(tmp_path / name)]) == 2
        assert "give the file the .onnx suffix" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    assert main(["graphs", "export", "bert_tiny", "-o", str(tmp_path / "b.ONNX")]) == 0
