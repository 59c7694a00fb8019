"""What the importer did to a model: :class:`ImportReport`, and :class:`ImportResult`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memplan.ir import Graph


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What the importer did to the model, for ``memplan inspect`` and logs."""

    source: str  # file path or model name
    ir_version: int  # ONNX IR version of the model
    opset: int  # default-domain opset version (0 if absent)
    onnx_nodes: int  # number of nodes in the ONNX graph as read
    aliases: tuple[tuple[str, str], ...]  # (alias tensor name, buffer tensor name) pairs
    kept_views: tuple[str, ...]  # view nodes kept as ops (aliasing off or not possible)
    folded_nodes: int  # weight-making nodes removed from the op list
    folded_by_type: tuple[tuple[str, int], ...]  # (op type, count) of the folded nodes
    weight_tensors: int  # weight tensors the graph's ops read
    initializers_as_inputs: int  # initializers also listed as graph inputs (old models)
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # final shape of each graph input
    dtype_bytes: int | None  # element size override in bytes, None for ONNX types
    warnings: tuple[str, ...]  # things worth knowing that did not stop the import
    input_values: tuple[tuple[str, str], ...] = ()  # (input, values) fixed by --input-value
    evaluated_by_type: tuple[tuple[str, int], ...] = ()  # (op type, count) computed for shapes
    inlined: tuple[str, ...] = ()  # one line per If replaced by the branch it takes
    inference_runs: int = 1  # ONNX shape-inference runs the folding took

    @property
    def evaluated_nodes(self) -> int:
        """Nodes computed (with onnx.reference) so that shape inference could go on."""
        return sum(count for _, count in self.evaluated_by_type)

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (``memplan inspect --json``)."""
        return {
            "ir_version": self.ir_version,
            "opset": self.opset,
            "onnx_nodes": self.onnx_nodes,
            "aliases": [list(pair) for pair in self.aliases],
            "kept_views": list(self.kept_views),
            "folded_nodes": self.folded_nodes,
            "folded_by_type": dict(self.folded_by_type),
            "evaluated_nodes": self.evaluated_nodes,
            "evaluated_by_type": dict(self.evaluated_by_type),
            "inlined": list(self.inlined),
            "inference_runs": self.inference_runs,
            "input_values": dict(self.input_values),
            "weight_tensors": self.weight_tensors,
            "initializers_as_inputs": self.initializers_as_inputs,
            "input_shapes": {name: list(shape) for name, shape in self.input_shapes},
            "dtype_bytes": self.dtype_bytes,
            "warnings": list(self.warnings),
        }

    def summary_lines(self) -> list[str]:
        """A few human-readable lines: what was folded, computed, inlined and aliased."""
        folded = ", ".join(f"{op} {n}" for op, n in self.folded_by_type) or "none"
        lines = [
            f"{self.onnx_nodes} ONNX nodes (IR {self.ir_version}, opset {self.opset})",
            f"{self.folded_nodes} weight-making nodes folded ({folded})",
        ]
        if self.evaluated_by_type:
            computed = ", ".join(f"{op} {n}" for op, n in self.evaluated_by_type)
            lines.append(
                f"{self.evaluated_nodes} shape computations evaluated ({computed}) in "
                f"{self.inference_runs} shape-inference runs"
            )
        lines.extend(f"inlined {line}" for line in self.inlined)
        lines.extend(f"input {name} fixed to {values}" for name, values in self.input_values)
        lines.append(f"{len(self.aliases)} views aliased, {len(self.kept_views)} kept as ops")
        return lines


@dataclass(frozen=True, slots=True)
class ImportResult:
    """An imported graph and the report of how it was made."""

    graph: Graph  # the scheduling IR
    report: ImportReport  # aliases, folded constants, warnings
