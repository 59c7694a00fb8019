"""Tests of accelerator specs: presets, TOML and JSON files, bad fields."""

from __future__ import annotations

import json

import pytest

from memplan.accelerator import DEFAULT_PRESET, Accelerator, load_accelerator, preset_names
from memplan.errors import ConfigError, InputFormatError


def test_presets_load():
    names = preset_names()
    assert {"edge-npu", "server-npu", "unaligned"} <= set(names)
    assert DEFAULT_PRESET in names
    for name in names:
        acc = load_accelerator(name)
        assert acc.name == name and acc.capacity_bytes > 0 and acc.alignment_bytes >= 1
        assert acc.dram_bytes_per_s > 0 and acc.mac_per_s > 0
    assert load_accelerator("edge-npu").alignment_bytes == 64
    assert load_accelerator("unaligned").alignment_bytes == 1
    assert (
        load_accelerator("server-npu").capacity_bytes > load_accelerator("edge-npu").capacity_bytes
    )


def test_toml_and_json_files(tmp_path):
    toml = tmp_path / "mine.toml"
    toml.write_text("capacity_bytes = 65536\nalignment_bytes = 32\ndram_bytes_per_s = 1e9\n")
    acc = load_accelerator(toml)
    assert acc == Accelerator("mine", 65536, 32, dram_bytes_per_s=1e9)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**acc.to_dict(), "name": "j"}))
    again = load_accelerator(str(spec))
    assert again.to_dict() == {**acc.to_dict(), "name": "j"}
    assert acc.with_capacity(1024).capacity_bytes == 1024
    assert acc.with_capacity(1024).alignment_bytes == 32


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("alignment_bytes = 64\n", "missing field capacity_bytes"),
        ("capacity_bytes = 10\ncolour = 'red'\n", "unknown field(s) colour"),
        ("capacity_bytes = 10.5\n", "capacity_bytes must be an integer"),
        ("capacity_bytes = true\n", "capacity_bytes must be an integer"),
        ("capacity_bytes = -1\n", "capacity_bytes must be >= 0"),
        ("capacity_bytes = 10\nalignment_bytes = 0\n", "alignment_bytes must be >= 1"),
        ("capacity_bytes = 10\nmac_per_s = 0\n", "mac_per_s must be > 0"),
        ("capacity_bytes = 10\nmac_energy_j = -1\n", "mac_energy_j must be >= 0"),
        ("capacity_bytes = 10\ndram_bytes_per_s = 'fast'\n", "bad.toml"),
    ],
)
def test_bad_fields_are_named(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_accelerator(path)
    assert needle in str(info.value)


def test_unknown_name_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="neither a preset"):
        load_accelerator("no-such-npu")
    broken = tmp_path / "broken.toml"
    broken.write_text("capacity_bytes = = 3\n")
    with pytest.raises(InputFormatError, match=r"broken\.toml"):
        load_accelerator(broken)


def test_a_json_spec_named_in_capitals_is_read_as_json(tmp_path):
    """spec.JSON was read as TOML: 'not a valid accelerator spec: Invalid statement'."""
    spec = tmp_path / "SPEC.JSON"
    spec.write_text('{"capacity_bytes": 4096, "timing_model": "overlap"}')
    acc = load_accelerator(spec)
    assert (acc.name, acc.capacity_bytes, acc.timing_model) == ("SPEC", 4096, "overlap")
    text = tmp_path / "spec.txt"  # JSON in a file of another name: say how it was read
    text.write_text('{"capacity_bytes": 4096}')
    with pytest.raises(InputFormatError, match=r"read as TOML \(a \.json name is read as JSON"):
        load_accelerator(text)


def test_a_json_spec_giving_a_field_twice_is_refused(tmp_path):
    """JSON kept the last of two capacity_bytes (the plan was made for 2 bytes and
    scored invalid) where TOML refuses the same spec."""
    spec = tmp_path / "twice.json"
    spec.write_text('{"capacity_bytes": 1048576, "capacity_bytes": 2}')
    with pytest.raises(InputFormatError) as info:
        load_accelerator(spec)
    assert str(info.value) == (
        f"{spec}: field 'capacity_bytes' is given more than once (JSON keeps the last, TOML "
        "refuses it); give each field once"
    )
    nested = tmp_path / "ok.json"
    nested.write_text('{"capacity_bytes": 1024, "name": "n"}')
    assert load_accelerator(nested).capacity_bytes == 1024


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("deep.json", "[" * 100_000 + "]" * 100_000, "lists or tables nested too deeply"),
        ("deep.toml", "x = " + "[" * 100_000 + "]" * 100_000, "lists or tables nested too deeply"),
        ("long.json", '{"capacity_bytes": ' + "9" * 5000 + "}", "an integer of more than 4,300"),
        ("long.toml", "capacity_bytes = " + "9" * 5000, "an integer of more than 4,300 digits"),
    ],
)
def test_a_spec_the_readers_fail_on_is_one_line(tmp_path, name, text, message):
    """Nesting too deep and an integer too long were a RecursionError and a ValueError
    traceback out of the JSON and TOML readers."""
    spec = tmp_path / name
    spec.write_text(text)
    with pytest.raises(InputFormatError) as info:
        load_accelerator(spec)
    assert str(info.value).startswith(f"{spec}: {message}") and "\n" not in str(info.value)


TINY_GRAPH = {
    "format": "memplan.graph",
    "version": 1,
    "name": "x",
    "tensors": [
        {"name": "a", "size_bytes": 10, "kind": "input"},
        {"name": "b", "size_bytes": 10, "kind": "activation", "is_output": True},
    ],
    "ops": [{"name": "o", "op_type": "X", "inputs": ["a"], "outputs": ["b"]}],
}


@pytest.mark.parametrize("name", ["model.onnx", "spec.toml", "spec.json"])
def test_a_file_that_is_not_utf8_is_one_clear_error(tmp_path, capsys, name):
    """A binary file (an ONNX model passed by mistake) was a bare UnicodeDecodeError, a
    traceback and exit 1 from the command line."""
    from memplan.cli import main

    path = tmp_path / name
    path.write_bytes(b"\x08\x07\x12\x07pytorch:\xbd\xff\x00capacity_bytes = 1\n")
    with pytest.raises(InputFormatError) as info:
        load_accelerator(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not UTF-8 text (byte 0xbd at offset 12)")
    assert "not a TOML/JSON accelerator spec" in message and "edge-npu" in message
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(TINY_GRAPH))
    assert main(["inspect", str(graph), "--accelerator", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8 text" in err and "Traceback" not in err


def test_a_utf8_spec_with_a_byte_order_mark_loads(tmp_path):
    """The spec is read as UTF-8 whatever the locale's encoding, and a byte-order mark (as
    Windows editors write) is dropped."""
    spec = tmp_path / "spec.toml"
    spec.write_bytes("\ufeff# Ü\ncapacity_bytes = 4096\n".encode())
    assert load_accelerator(spec).capacity_bytes == 4096


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"capacity_bytes": "abc"}, "capacity_bytes must be an integer, got 'abc'"),
        ({"capacity_bytes": 1024, "dram_bytes_per_s": "fast"}, "dram_bytes_per_s must be a number"),
        (
            {"capacity_bytes": 1024, "alignment_bytes": float("inf")},
            "alignment_bytes must be an integer, got inf",
        ),
    ],
)
def test_a_bad_field_value_is_named_in_the_message(fields, message):
    """Each value error names its field (it used to be Python's bare int() message)."""
    with pytest.raises(ConfigError, match=message):
        Accelerator.from_dict(fields, "spec.toml")


def test_docs_files_md_names_every_spec_field_and_its_defaults(tmp_path) -> None:
    # timing_model was left out of the documented fields although every preset sets it.
    import dataclasses
    from pathlib import Path

    from memplan.accelerator import Accelerator, load_accelerator

    docs = (Path(__file__).parent.parent / "docs" / "files.md").read_text()
    section = docs.partition("## The accelerator spec")[2].partition("\n## ")[0]
    for field in dataclasses.fields(Accelerator):
        assert f"`{field.name}`" in section, field.name
    spec = tmp_path / "mine.toml"
    spec.write_text("capacity_bytes = 65536\n")
    acc = load_accelerator(spec)
    edge = load_accelerator("edge-npu")
    assert (acc.name, acc.timing_model, acc.alignment_bytes) == ("mine", "serial", 64)
    assert (acc.dram_bytes_per_s, acc.mac_per_s, acc.mac_energy_j) == (
        edge.dram_bytes_per_s,
        edge.mac_per_s,
        edge.mac_energy_j,
    )
