"""Tests of memplan.io.loading: ONNX vs graph JSON dispatch, fingerprints, errors naming files."""

from __future__ import annotations

import hashlib

import onnx
import pytest
from cli_models import dynamic_model
from helpers import light_model_path, random_graph

from memplan.errors import ConfigError, InputFormatError, OnnxImportError
from memplan.io.loading import ImportOptions, load_model
from memplan.ir import graph_to_json


def test_onnx_file_has_report_and_file_sha256():
    path = light_model_path("squeezenet")
    loaded = load_model(path)
    assert loaded.path == path
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.report is not None and loaded.report.folded_nodes == 39
    assert loaded.graph.num_ops == 65


def test_import_options_are_passed_through():
    path = light_model_path("bvlc_alexnet")
    plain = load_model(path, aliases=False)
    aliased = load_model(path)
    assert plain.graph.num_ops == aliased.graph.num_ops + len(aliased.report.aliases)
    small = load_model(path, dtype_bytes=1)
    x = small.graph.tensor_by_name("data_0")
    assert x.size_bytes == 3 * 224 * 224
    same = load_model(path, input_shapes={"data_0": (1, 3, 224, 224)})
    assert same.graph.tensor_by_name("data_0").size_bytes == x.size_bytes * 4
    shaped = load_model(dynamic_model(), input_shapes={"X": (2, 3, 8, 8)}, dims={"batch": 2})
    assert shaped.graph.tensor_by_name("X").size_bytes == 2 * 3 * 8 * 8 * 4
    assert shaped.import_options == ImportOptions.create(
        input_shapes={"X": [2, 3, 8, 8]}, dims={"batch": 2}
    )


def test_a_fixed_dim_cannot_be_changed():
    """light_bvlc_alexnet declares data_0 as [1,3,224,224]: a batch of 2 is refused."""
    with pytest.raises(ConfigError, match=r"bvlc_alexnet\.onnx: --input-shape data_0:2,3,224,224: "
                       "dim 0 of input 'data_0' is fixed at 1 in the model"):  # fmt: skip
        load_model(light_model_path("bvlc_alexnet"), input_shapes={"data_0": (2, 3, 224, 224)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": {"batch": "x"}}, r"dims\['batch'\] is 'x'; a dim size is a positive whole"),
        ({"dims": [("batch", 1)]}, "dims must be a mapping of symbolic dim name to size"),
        ({"dtype_bytes": "2"}, "dtype_bytes is '2'"),
        ({"dtype_bytes": 1.5}, "dtype_bytes is 1.5"),
        ({"input_shapes": {"X": [1, 3, 8.5, 8]}}, r"input_shapes\['X'\] is \[1, 3, 8.5, 8\]"),
        ({"input_values": {"X": 1}}, r"input_values\['X'\] is 1"),
        ({"aliases": "no"}, "aliases is 'no'; give True or False"),
        ({"options": {"dims": {"batch": 1}}}, "options must be an ImportOptions.*dict"),
        ({"options": ImportOptions(dims=(("batch", "x"),))}, r"dims\['batch'\] is 'x'"),
        ({"options": ImportOptions(dims="batch")}, "options.dims must be a tuple of"),
    ],
)  # fmt: skip
def test_load_model_checks_argument_types(kwargs, message):
    """The public API raises ConfigError naming the argument, never TypeError inside."""
    with pytest.raises(ConfigError, match=message):
        load_model(dynamic_model(), **kwargs)


def test_model_proto_sha256_is_of_the_serialized_model():
    model = onnx.load(light_model_path("squeezenet"))
    loaded = load_model(model)
    assert loaded.path is None
    assert loaded.sha256 == hashlib.sha256(model.SerializeToString()).hexdigest()
    assert loaded.graph.num_ops == 65


def test_graph_json_is_detected_by_content(tmp_path):
    graph = random_graph(3, 12)
    path = tmp_path / "model.onnx"  # the suffix does not matter; the content does
    path.write_text("\n  " + graph_to_json(graph))
    loaded = load_model(path)
    assert loaded.report is None
    assert loaded.graph == graph
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_json_file_of_text_is_read_as_json(tmp_path):
    """A .json file that is not JSON is said to be invalid JSON, not an invalid ONNX
    protobuf; an ONNX model under a .json name is still read by its content."""
    text = tmp_path / "g.json"
    text.write_text("garbage\n")
    with pytest.raises(InputFormatError, match=r"g\.json: line 1: invalid JSON"):
        load_model(text)
    renamed = tmp_path / "squeezenet.json"
    renamed.write_bytes(light_model_path("squeezenet").read_bytes())
    assert load_model(renamed).graph.num_ops == 65


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(OnnxImportError, match=r"missing\.onnx: no such file"):
        load_model(missing)
    with pytest.raises(OnnxImportError, match="directory"):
        load_model(tmp_path)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"format": "memplan.graph", "version": 1,')
    with pytest.raises(InputFormatError, match=r"bad\.json: line 1"):
        load_model(bad_json)
    other_json = tmp_path / "other.json"
    other_json.write_text('{"hello": 1}')
    with pytest.raises(InputFormatError, match=r"other\.json: not a memplan graph"):
        load_model(other_json)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xff" * 50)
    with pytest.raises(OnnxImportError, match=r"garbage\.onnx"):
        load_model(garbage)
