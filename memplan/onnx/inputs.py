"""Graph inputs: values the user fixes, and the check that every input shape is static.

``--input-value sr:16000`` turns a graph input into a constant (an initializer) so the
shape computations and ``If`` conditions that read it fold away. After ``--input-shape``,
``--dim`` and ``--input-value`` are applied, every remaining graph input must have a
static shape: :func:`require_static_inputs` reports **every** dim still missing at once,
with a suggestion that uses the model's own dim names (``--dim batch=1 --dim height=640``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError, OnnxImportError
from memplan.onnx.flags import Scalar
from memplan.onnx.shapes import Dim, dims_of, named_inputs

#: How the error of a model whose input shapes need --dim/--input-shape begins (after
#: the file name); commands without those flags look for it to say so.
UNFIXED_SHAPES = "the input shapes are not fixed"

if TYPE_CHECKING:
    import onnx

#: Example sizes for dim names, by what the name says (first match wins); others get 64.
_EXAMPLE_SIZES: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^(n|b|bs|batch.*|.*_batch|.*batch_size.*|num_images)$"), 1),
    (re.compile(r"height|width|^h$|^w$|^img|^image|resolution|^size$"), 640),
    (re.compile(r"sample|audio|wav|signal"), 16000),
    (re.compile(r"seq|len|token|time|frame|step|position|^t$|^s$|^l$"), 128),
    (re.compile(r"chan|^c$"), 3),
)


def example_dim_size(name: str) -> int:
    """A plausible size for a symbolic dim, judged by its name (only for suggestions)."""
    lower = name.lower()
    for pattern, size in _EXAMPLE_SIZES:
        if pattern.search(lower):
            return size
    return 64


def _input_value_array(
    name: str, values: Sequence[Scalar], value_info: Any, source: str
) -> tuple[Any, str]:
    """The typed numpy array for ``--input-value name:...`` and a printable form."""
    import numpy as np
    import onnx

    dims, elem_type = dims_of(value_info.type)
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = np.dtype(object)
    shown = f"--input-value {name}:{','.join(str(v) for v in values)}"
    if dtype.kind not in "biuf":
        raise ConfigError(
            f"{source}: {shown}: input {name!r} has element type "
            f"{onnx.helper.tensor_dtype_to_string(elem_type)}; only numbers and booleans "
            "can be fixed"
        )
    if dtype.kind in "biu" and any(isinstance(v, float) and not v.is_integer() for v in values):
        raise ConfigError(f"{source}: {shown}: input {name!r} holds whole numbers ({dtype.name})")
    if dims is not None and all(isinstance(d, int) for d in dims):
        shape: tuple[int, ...] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
    elif dims is not None and len(dims) == 1:
        shape = (len(values),)
    elif dims is None and len(values) == 1:
        shape = ()
    else:
        raise ConfigError(
            f"{source}: {shown}: input {name!r} has shape "
            f"[{','.join('?' if d is None else str(d) for d in dims or ())}]; fix its shape "
            f"with --input-shape as well"
        )
    if math.prod(shape) != len(values):
        raise ConfigError(
            f"{source}: {shown} gives {len(values)} value(s), but input {name!r} has shape "
            f"[{','.join(map(str, shape))}] ({math.prod(shape)} elements)"
        )
    try:
        array = np.array(values).astype(dtype).reshape(shape)
    except (OverflowError, ValueError) as error:
        raise ConfigError(f"{source}: {shown}: {error}") from None
    if dtype.kind in "iu" and not np.array_equal(array, np.array(values).reshape(shape)):
        raise ConfigError(f"{source}: {shown}: a value does not fit in {dtype.name}")
    return array, ",".join(str(v) for v in array.reshape(-1).tolist())


def fix_input_values(
    model: onnx.ModelProto,
    input_names: Sequence[str],
    values: Mapping[str, Sequence[Scalar]],
    source: str,
) -> tuple[tuple[str, str], ...]:
    """Turn the inputs named in ``values`` into initializers holding those values.

    Returns:
        (input name, the values as stored) per fixed input, in the order given.

    Raises:
        ConfigError: a name that is no graph input, or values that do not fit its type
            or shape.
    """
    from onnx import numpy_helper

    graph = model.graph
    inputs = named_inputs(model, input_names, values, "--input-value", source)
    fixed: list[tuple[str, str]] = []
    for name, given in values.items():
        array, shown = _input_value_array(name, given, inputs[name], source)
        graph.initializer.append(numpy_helper.from_array(array, name))
        fixed.append((name, shown))
    if fixed and model.ir_version >= 4:  # older models list initializers as inputs too
        kept = [vi for vi in graph.input if vi.name not in values]
        del graph.input[:]
        graph.input.extend(kept)
    return tuple(fixed)


def _shape_text(dims: Sequence[Dim]) -> str:
    return ",".join(
        str(d) if isinstance(d, int) else str(example_dim_size(d) if d else 1) for d in dims
    )


def require_static_inputs(model: onnx.ModelProto, input_names: Sequence[str], source: str) -> None:
    """Check every graph input has a static shape; report all missing dims at once.

    Raises:
        OnnxImportError: one line listing every symbolic dim (with where it appears),
            every nameless unknown dim and every input of unknown rank, with the flags
            that fix them, e.g. ``--dim batch=1 --dim height=640 --dim width=640``.
    """
    for vi in model.graph.input:
        kind = vi.type.WhichOneof("value")
        if vi.name in input_names and kind not in ("tensor_type", None):
            what = kind.removesuffix("_type").replace("_", " ")
            article = "an" if what[:1] in "aeiou" else "a"
            raise OnnxImportError(
                f"{source}: graph input {vi.name!r} has {article} {what} type, not a tensor; "
                "sequence and optional types are not supported (memplan plans tensors of "
                "static shape). "
                "Export the model with plain tensor inputs"
            )
    where: dict[str, list[str]] = {}  # symbolic dim name -> "input[axis]" places
    partial: list[tuple[str, Sequence[Dim]]] = []  # inputs with some dim not fixed
    unranked: list[str] = []
    for vi in model.graph.input:
        if vi.name not in input_names:
            continue
        dims, _ = dims_of(vi.type)
        if dims is None:
            unranked.append(vi.name)
            continue
        for axis, dim in enumerate(dims):
            if isinstance(dim, str):
                where.setdefault(dim, []).append(f"{vi.name}[{axis}]")
        if not all(isinstance(d, int) for d in dims):
            partial.append((vi.name, dims))
    if not partial and not unranked:
        return
    problems: list[str] = []
    fixes: list[str] = []
    if where:
        listed = ", ".join(f"{name!r} ({', '.join(places)})" for name, places in where.items())
        problems.append(f"symbolic dim{'s' if len(where) > 1 else ''} {listed}")
        fixes.append(" ".join(f"--dim {name}={example_dim_size(name)}" for name in where))
    nameless = [(name, shape) for name, shape in partial if None in shape]
    for name, shape in nameless:
        axes = ", ".join(str(a) for a, d in enumerate(shape) if d is None)
        problems.append(f"input {name!r} has unknown dim(s) {axes} with no name")
        fixes.append(f"--input-shape {name}:{_shape_text(shape)}")
    for name in unranked:
        problems.append(f"input {name!r} has no shape at all")
        fixes.append(f"--input-shape {name}:D1,D2,...")
    if not nameless and not unranked:
        name, shape = partial[0]
        fixes.append(f"(or a whole input: --input-shape {name}:{_shape_text(shape)})")
    raise OnnxImportError(
        f"{source}: {UNFIXED_SHAPES}: {'; '.join(problems)}. Give the sizes "
        f"you will run at, e.g. {' '.join(fixes)}"
    )
