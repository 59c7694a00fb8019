"""The curated public API (memplan.__all__): every name resolves, and importing is light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import memplan

#: Modules ``import memplan`` (and the core API) must not load: optional extras and
#: the heavy libraries only some commands need.
HEAVY = (
    "onnx",
    "ortools",
    "pulp",
    "highspy",
    "numba",
    "torch",
    "gymnasium",
    "matplotlib",
    "dask",
)


def _loaded_after(code: str) -> list[str]:
    """Top-level and memplan modules present in a fresh interpreter after ``code``."""
    script = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_every_public_name_resolves() -> None:
    assert set(memplan.__all__) == {"__version__", *memplan._EXPORTS}
    assert len(set(memplan.__all__)) == len(memplan.__all__)
    for name in memplan.__all__:
        value = getattr(memplan, name)
        assert value is not None, name
        if name != "__version__":
            module = sys.modules[memplan._EXPORTS[name]]
            assert value is getattr(module, name), name
    assert set(memplan.__all__) <= set(dir(memplan))
    # The package's own imports are not offered as API (tab completion showed them).
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib", "sys", "types"} & set(
        dir(memplan)
    )


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        memplan.no_such_name  # noqa: B018


def test_validate_is_the_function_whatever_was_imported_first() -> None:
    from memplan.validate import check_plan, validate

    assert memplan.validate is validate
    assert callable(check_plan)
    script = (
        "import memplan.validate, memplan\n"
        "from memplan.validate import validate\n"
        "assert memplan.validate is validate, memplan.validate\n"
        "from memplan import validate as v\n"
        "assert v is validate"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_import_memplan_loads_nothing_else() -> None:
    loaded = _loaded_after("import memplan")
    assert [m for m in loaded if m.startswith("memplan.")] == []
    assert "numpy" not in loaded
    assert [m for m in HEAVY if m in loaded] == []


def test_core_api_loads_no_optional_library() -> None:
    names = ", ".join(memplan.__all__)
    loaded = _loaded_after(f"from memplan import {names}")
    assert [m for m in HEAVY if m in loaded] == []
    assert [m for m in loaded if m.startswith("memplan.solvers")] == []


def test_a_quick_start_through_the_public_api_only() -> None:
    """The module docstring's example, on a built graph (no files needed)."""
    b = memplan.GraphBuilder("api")
    x = b.tensor("x", 4096, memplan.TensorKind.INPUT)
    h = b.tensor("h", 8192)
    y = b.tensor("y", 4096, is_output=True)
    b.op("conv", "Conv", [x], [h])
    b.op("relu", "Relu", [h], [y])
    problem = memplan.Problem(b.build(), memplan.load_accelerator("edge-npu"))
    problem = problem.with_capacity(memplan.resolve_budget("MR", problem).capacity_bytes)
    result = memplan.make_solver("greedy").solve(problem, memplan.Budget(time_limit_s=10))
    assert result.status is memplan.Status.OPTIMAL and result.plan is not None
    assert memplan.validate(problem, result.plan) == []
    assert memplan.evaluate(problem, result.plan) == result.cost
    assert result.gap == memplan.relative_gap(0, 0) == 0.0


def test_plan_files_are_public_and_round_trip(tmp_path) -> None:
    # docs/architecture.md lists plan files in the public API; they were not in __all__.
    from memplan.testing import random_dag

    problem = memplan.Problem(random_dag(3, 10), memplan.Accelerator("t", 1 << 20))
    problem = problem.with_capacity(problem.min_resident_bytes * 2)
    result = memplan.make_solver("greedy").solve(problem, memplan.Budget(time_limit_s=10))
    path = tmp_path / "plan.json"
    memplan.write_plan_file(path, result, problem, model_sha256="0" * 64)
    read = memplan.read_plan_file(path, problem.graph, "0" * 64)
    assert read.plan == result.plan
    assert memplan.validate(problem, read.plan) == []
