"""View ops as aliases: their output is their input's buffer, so they leave the op list.

A view (Reshape, Flatten, Squeeze, Unsqueeze, Identity, inference-mode Dropout) moves no
data on an accelerator: its consumers read the input's buffer. A view whose output is a
graph output marks its buffer as an output; a view of a graph input or a weight that is
a graph output is kept as a copy (the plan must produce that output). Chains of views
resolve to the first real buffer.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memplan.onnx.control_flow import is_default_domain

#: View ops turned into aliases of their first input.
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})


@dataclass(frozen=True, slots=True)
class Aliases:
    """The result of aliasing: which nodes stay ops and where each alias lives."""

    ops: tuple[int, ...]  # indices of the nodes that stay ops, in graph order
    buffer_of: Mapping[str, str]  # alias tensor name -> the buffer tensor it shares
    pairs: tuple[tuple[str, str], ...]  # (alias, buffer) in the order they were made
    kept_views: tuple[str, ...]  # "name (Op): reason" for views kept as ops
    extra_outputs: frozenset[str]  # buffers that are graph outputs through an alias
    warnings: tuple[str, ...]  # dropped outputs of aliased views

    def resolve(self, name: str) -> str:
        """The buffer tensor that tensor ``name`` lives in (itself if not an alias)."""
        return self.buffer_of.get(name, name)


def _is_false_constant(name: str, initializers: Mapping[str, Any]) -> bool:
    """Whether ``name`` is an initializer holding a false boolean (Dropout training_mode)."""
    from onnx import numpy_helper

    tensor = initializers.get(name)
    if tensor is None:
        return False
    try:
        return not bool(numpy_helper.to_array(tensor).any())
    except (ValueError, TypeError):
        return False


def _alias_blocker(
    node: Any,
    outs: Sequence[str],
    consumed: Collection[str],
    output_set: Collection[str],
    initializers: Mapping[str, Any],
) -> str:
    """Why a view node cannot become an alias ("" if it can)."""
    if not node.input or not node.input[0] or not node.output or not node.output[0]:
        return "it has no data input or output"
    if node.op_type == "Dropout":
        if (
            len(node.input) > 2
            and node.input[2]
            and not _is_false_constant(node.input[2], initializers)
        ):
            return "training_mode is not a constant false"
        for extra in outs[1:]:
            if extra in consumed or extra in output_set:
                return f"its mask {extra!r} is read"
    elif len(outs) > 1:
        return "it has several outputs"
    return ""


def alias_views(
    nodes: Sequence[Any],
    names: Sequence[str],
    kept: Sequence[int],
    *,
    weights: Collection[str],
    input_names: Collection[str],
    graph_outputs: Sequence[str],
    initializers: Mapping[str, Any],
    enabled: bool,
) -> Aliases:
    """Turn the view nodes among ``kept`` into aliases where possible.

    Args:
        nodes: the graph's nodes, topologically sorted; ``names`` their unique names.
        kept: indices of the nodes that are ops (not weight-making), in order.
        weights: weight tensor names; ``input_names``: graph inputs (not initializers).
        graph_outputs: the graph's output names; ``initializers``: by name.
        enabled: False keeps every view as an op (``--no-aliases``).
    """
    output_set = set(graph_outputs)
    consumed = {n for i in kept for n in nodes[i].input if n}
    buffer_of: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    kept_views: list[str] = []
    extra_outputs: set[str] = set()
    warnings: list[str] = []
    ops: list[int] = []

    def _not_activation(name: str) -> bool:
        return name in weights or name in input_names

    for index in kept:
        node = nodes[index]
        if node.op_type not in VIEW_OPS or not is_default_domain(node):
            ops.append(index)
            continue
        outs = [n for n in node.output if n]
        buffer = node.input[0] if node.input else ""
        buffer = buffer_of.get(buffer, buffer)
        reason = _alias_blocker(node, outs, consumed, output_set, initializers)
        if not reason and not enabled:
            reason = "aliasing is off"
        if not reason and node.output[0] in output_set and _not_activation(buffer):
            reason = "its output is a graph output and its input is not an activation"
        if reason:
            ops.append(index)
            label = f"{names[index]} ({node.op_type})"
            kept_views.append(f"{label}: {reason}" if enabled else label)
            continue
        buffer_of[node.output[0]] = buffer
        pairs.append((node.output[0], buffer))
        if node.output[0] in output_set:
            extra_outputs.add(buffer)
        for dropped in outs[1:]:
            warnings.append(
                f"node {names[index]!r}: output {dropped!r} is read by nobody and was "
                "dropped with the aliased op"
            )
    return Aliases(
        ops=tuple(ops),
        buffer_of=buffer_of,
        pairs=tuple(pairs),
        kept_views=tuple(kept_views),
        extra_outputs=frozenset(extra_outputs),
        warnings=tuple(warnings),
    )
