"""Import an ONNX model into the scheduling IR (PROBLEM.md section 1).

What the importer does, in order (one module each):

1. **load** (:mod:`~memplan.onnx.load`): reads the file (or copies a ``ModelProto``),
   checks it is an ONNX model, checks external data files exist and loads the small
   integer ones, names every node uniquely and sorts the nodes topologically;
2. **inputs** (:mod:`~memplan.onnx.shapes`, :mod:`~memplan.onnx.inputs`): applies
   ``--input-shape`` / ``--dim``, turns ``--input-value`` inputs into constants, and
   checks every input shape is static, reporting all missing dims at once;
3. **fold** (:mod:`~memplan.onnx.fold`): runs ONNX shape inference with data
   propagation, computes with ``onnx.reference`` the small constant values inference
   is missing (shape computations of exported models), inlines every ``If`` whose
   condition is then known, and repeats until nothing new is learned. Remaining
   control flow, and a ``Reshape`` that changes the element count (a target traced at
   other sizes), are errors naming the node (:mod:`~memplan.onnx.diagnose`);
4. **weights** (:mod:`~memplan.onnx.weights`): initializers, ``Constant``,
   ``Shape``/``Size`` and every node that reads only weights make *weights*; those
   nodes leave the op list (random generators never do);
5. **aliases** (:mod:`~memplan.onnx.aliases`): view ops (Reshape, Flatten, Squeeze,
   Unsqueeze, Identity, inference-mode Dropout) become aliases of their input's buffer;
6. **build** (:mod:`~memplan.onnx.build`): the :class:`~memplan.ir.Graph` with sizes
   from ONNX element types (or ``dtype_bytes``) and a MAC estimate per op;
7. **report** (:mod:`~memplan.onnx.report`): what was folded, computed, inlined,
   aliased and fixed, in an :class:`ImportReport`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memplan.onnx.aliases import alias_views
from memplan.onnx.build import build_graph, dequantized_weights_warning
from memplan.onnx.diagnose import Diagnosis
from memplan.onnx.flags import (
    Scalar,
    checked_arguments,
    parse_dims,
    parse_input_shapes,
    parse_input_values,
)
from memplan.onnx.fold import FoldResult, ShapeFolder
from memplan.onnx.inputs import fix_input_values, require_static_inputs
from memplan.onnx.load import (
    check_graph_inputs,
    prepare_external_data,
    read_model,
    sort_nodes,
)
from memplan.onnx.report import ImportReport, ImportResult
from memplan.onnx.shapes import Dim, TensorSizer, apply_shape_overrides, check_recorded_shapes

if TYPE_CHECKING:
    import onnx

__all__ = [
    "ImportReport",
    "ImportResult",
    "import_model",
    "parse_dims",
    "parse_input_shapes",
    "parse_input_values",
]


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The graph inputs after the user's shapes, dims and values are applied."""

    names: tuple[str, ...]  # graph inputs that are not initializers (or fixed values)
    initializers_as_inputs: int  # initializers also listed as graph inputs (old models)
    values: tuple[tuple[str, str], ...]  # (input, values) fixed by --input-value
    recorded: Mapping[str, tuple[tuple[Dim, ...], int]]  # shape records to judge
    sized: bool  # --dim or --input-shape were given


def _fix_inputs(
    model: onnx.ModelProto,
    source: str,
    input_shapes: Mapping[str, Sequence[int]],
    dims: Mapping[str, int],
    input_values: Mapping[str, Sequence[Scalar]],
) -> _Inputs:
    """Apply the import options to the graph inputs and check every shape is static."""
    graph = model.graph

    def free_inputs() -> list[str]:
        initializers = {t.name for t in graph.initializer}
        return [vi.name for vi in graph.input if vi.name not in initializers]

    listed = {vi.name for vi in graph.input}
    init_as_inputs = sum(1 for t in graph.initializer if t.name in listed)
    recorded = apply_shape_overrides(model, free_inputs(), input_shapes, dims, source)
    values = fix_input_values(model, free_inputs(), input_values, source)
    names = free_inputs()
    require_static_inputs(model, names, source)
    sized = bool(input_shapes or dims)
    return _Inputs(tuple(names), init_as_inputs, values, recorded, sized)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def import_model(
    model_or_path: str | Path | onnx.ModelProto,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    dims: Mapping[str, int] | None = None,
    input_values: Mapping[str, Sequence[Scalar]] | None = None,
    dtype_bytes: int | None = None,
    aliases: bool = True,
    model_bytes: bytes | None = None,
) -> ImportResult:
    """Import an ONNX model into a :class:`~memplan.ir.Graph`.

    Args:
        model_or_path: an ``.onnx`` file path or an ``onnx.ModelProto`` (not modified).
        input_shapes: fixed shapes (in elements) of graph inputs by name.
        dims: sizes of symbolic dimensions by name (e.g. ``{"batch": 1}``).
        input_values: fixed values of small graph inputs by name (e.g. ``{"sr": (16000,)}``);
            they become constants, so computations and ``If`` branches on them fold.
        dtype_bytes: bytes per element for every tensor, overriding the ONNX types.
        aliases: treat view ops as aliases of their input (see :mod:`memplan.onnx.aliases`).
        model_bytes: the file's bytes when the caller has already read them.

    Returns:
        The graph and an :class:`ImportReport`.

    Raises:
        OnnxImportError: unreadable, corrupt or unsupported model, symbolic or
            data-dependent shapes, or control flow that does not fold.
        ConfigError: an option of the wrong type or range (see
            :func:`memplan.onnx.flags.checked_arguments`),
            an input shape naming no input or changing a fixed dim or the rank, or a
            ``dims`` name that is no symbolic dim of the model.
    """
    options = checked_arguments(
        input_shapes=input_shapes,
        dims=dims,
        input_values=input_values,
        dtype_bytes=dtype_bytes,
        aliases=aliases,
    )
    model, source, base_dir = read_model(model_or_path, model_bytes)
    prepare_external_data(model, base_dir, source)
    check_graph_inputs(model.graph, source)
    onnx_nodes, opset = len(model.graph.node), _opset(model)
    names = sort_nodes(model.graph, source)
    inputs = _fix_inputs(model, source, options.input_shapes, options.dims, options.input_values)
    folder = ShapeFolder(model, source, opset, names)
    fold = folder.run()
    diagnosis = Diagnosis(folder, source)
    diagnosis.reject_control_flow()
    diagnosis.reject_reshapes_changing_size()
    return _build(folder, fold, diagnosis, inputs, options.dtype_bytes, options.aliases, onnx_nodes)


def _build(
    folder: ShapeFolder,
    fold: FoldResult,
    diagnosis: Diagnosis,
    inputs: _Inputs,
    dtype_bytes: int | None,
    aliases: bool,
    onnx_nodes: int,
) -> ImportResult:
    """Weights, aliases and the graph of the folded model, with the report."""
    model, source = folder.model, folder.source
    nodes, names, graph = folder.nodes, folder.names, model.graph
    initializers = {t.name: t for t in graph.initializer}
    split = fold.split
    graph_outputs = [vi.name for vi in graph.output]
    views = alias_views(nodes, names, split.kept, weights=split.weights,
                        input_names=inputs.names, graph_outputs=graph_outputs,
                        initializers=initializers, enabled=aliases)  # fmt: skip
    stale = check_recorded_shapes(inputs.recorded, fold.table, inputs.sized)
    sizes = TensorSizer(
        fold.table, dtype_bytes, source, diagnosis.describe, diagnosis.unknown_shape
    )
    built = build_graph(graph.name or Path(source).stem, nodes, names, aliases=views,
                        weights=split.weights, input_names=inputs.names,
                        graph_outputs=graph_outputs, sizes=sizes, source=source)  # fmt: skip
    dequantized = dequantized_weights_warning(built.graph, nodes, set(split.kept), sizes)
    report = ImportReport(
        source=source,
        ir_version=model.ir_version,
        opset=folder.opset,
        onnx_nodes=onnx_nodes,
        aliases=views.pairs,
        kept_views=views.kept_views,
        folded_nodes=sum(count for _, count in split.folded_by_type),
        folded_by_type=split.folded_by_type,
        weight_tensors=built.weight_tensors,
        initializers_as_inputs=inputs.initializers_as_inputs,
        input_shapes=built.input_shapes,
        dtype_bytes=dtype_bytes,
        warnings=(
            *views.warnings,
            *built.warnings,
            *sizes.warnings,
            *filter(None, [dequantized, stale]),
        ),
        input_values=inputs.values,
        evaluated_by_type=fold.evaluated_by_type,
        inlined=fold.inlined,
        inference_runs=fold.inference_runs,
    )
    return ImportResult(built.graph, report)
