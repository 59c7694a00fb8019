"""ONNX import: a model file (or ``ModelProto``) to the scheduling IR.

:mod:`~memplan.onnx.importer` builds the graph, :mod:`~memplan.onnx.shapes` infers and
checks tensor shapes, :mod:`~memplan.onnx.macs` estimates multiply-accumulates per op.
``onnx`` itself is imported only when a model is imported.
"""
