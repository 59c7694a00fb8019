"""ONNX import: a model file (or ``ModelProto``) to the scheduling IR.

:func:`memplan.onnx.importer.import_model` runs the steps, one module each:
:mod:`~memplan.onnx.load` (file, external data, node order), :mod:`~memplan.onnx.flags`
and :mod:`~memplan.onnx.inputs` (``--input-shape``, ``--dim``, ``--input-value``, static
input shapes), :mod:`~memplan.onnx.shapes` (shape inference, element sizes),
:mod:`~memplan.onnx.fold` (shape computations and ``If`` folded once shapes are fixed,
with :mod:`~memplan.onnx.control_flow` and :mod:`~memplan.onnx.diagnose`),
:mod:`~memplan.onnx.weights`, :mod:`~memplan.onnx.aliases`, :mod:`~memplan.onnx.build`
(with :mod:`~memplan.onnx.macs`) and :mod:`~memplan.onnx.report`. ``onnx`` itself (and
``onnx.reference``, only when something needs folding) is imported only when a model is
imported.
"""
