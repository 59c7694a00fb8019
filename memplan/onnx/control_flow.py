"""Control flow in ONNX graphs: inline an ``If`` whose branch is known, reject the rest.

An ``If`` whose condition is a constant once the input shapes (and any
``--input-value``) are fixed is replaced by the nodes of the branch it takes::

    before:  cond ──► If(then: [a = Relu(x); out = a],  else: [...]) ──► y
    after:   If_0/then/Relu(x) ──► y          (the branch's output becomes y)

Names local to the branch get the prefix ``<if node>/<branch>/`` so they cannot clash
with the outer graph; references to outer names stay as they are (ONNX forbids a
sub-graph to shadow an outer name, so a rename never captures one). A branch output
that is not made inside the branch (an outer tensor or a branch initializer) is copied
to the ``If``'s output by an ``Identity``, which the importer then aliases.

``Loop``, ``Scan`` and an ``If`` whose condition depends on data stay errors that name
the node: their memory depends on values a static plan cannot know.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

#: Ops with sub-graphs, which a static plan cannot schedule unless they are inlined.
CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def is_default_domain(node: Any) -> bool:
    """Whether ``node`` is a standard ONNX op (default domain)."""
    return node.domain in ("", "ai.onnx")


def subgraphs(node: Any) -> Iterator[onnx.GraphProto]:
    """The sub-graphs held by ``node``'s attributes (branches, loop bodies)."""
    import onnx

    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _rename_in_subgraph(graph: onnx.GraphProto, rename: Mapping[str, str]) -> None:
    """Rewrite references to renamed outer names inside a nested sub-graph, in place."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        for sub in subgraphs(node):
            _rename_in_subgraph(sub, rename)
    for output in graph.output:
        if output.name in rename:
            output.name = rename[output.name]


def _unique_prefix(base: str, taken: set[str]) -> str:
    prefix = base
    suffix = 1
    while any(name.startswith(prefix) for name in taken):
        prefix = f"{base.rstrip('/')}_{suffix}/"
        suffix += 1
    return prefix


def inline_if(graph: onnx.GraphProto, index: int, node_name: str, take_then: bool) -> int:
    """Replace the ``If`` node ``graph.node[index]`` by the nodes of one branch, in place.

    Args:
        graph: the graph holding the node; its node list is topologically sorted.
        index: position of the ``If`` node in ``graph.node``.
        node_name: the node's unique name (used as the prefix of the branch's names).
        take_then: True for ``then_branch``, False for ``else_branch``.

    Returns:
        The number of nodes that replaced the ``If``.
    """
    import onnx

    node = graph.node[index]
    which = "then_branch" if take_then else "else_branch"
    branch = next(a.g for a in node.attribute if a.name == which)
    taken = {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer}
    taken |= {vi.name for vi in graph.input}
    prefix = _unique_prefix(f"{node_name}/{'then' if take_then else 'else'}/", taken)
    initializers = {t.name for t in branch.initializer}
    made = {o for n in branch.node for o in n.output if o}
    rename = {name: prefix + name for name in made | initializers}
    copies: list[tuple[str, str]] = []  # (source, If output) pairs needing an Identity
    for out_vi, target in zip(branch.output, node.output, strict=False):
        if not target:
            continue
        source = out_vi.name
        if source in made and rename[source].startswith(prefix):
            rename[source] = target  # the branch makes it: it now makes the If's output
        else:
            copies.append((rename.get(source, source), target))
    new_nodes: list[onnx.NodeProto] = []
    for position, branch_node in enumerate(branch.node):
        copy = onnx.NodeProto()
        copy.CopyFrom(branch_node)
        copy.name = prefix + (branch_node.name or f"{branch_node.op_type}_{position}")
        del copy.input[:], copy.output[:]
        copy.input.extend(rename.get(n, n) for n in branch_node.input)
        copy.output.extend(rename.get(n, n) for n in branch_node.output)
        for sub in subgraphs(copy):
            _rename_in_subgraph(sub, rename)
        new_nodes.append(copy)
    for position, (source, target) in enumerate(copies):
        new_nodes.append(
            onnx.helper.make_node("Identity", [source], [target], name=f"{prefix}output_{position}")
        )
    for tensor in branch.initializer:
        moved = graph.initializer.add()
        moved.CopyFrom(tensor)
        moved.name = rename[tensor.name]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend([*rest[:index], *new_nodes, *rest[index + 1 :]])
    return len(new_nodes)
