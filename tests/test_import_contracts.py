"""Import rules import-linter cannot check, by walking the source's AST.

``lint-imports`` (contracts in pyproject.toml, run by .ci/run) checks memplan/ itself;
its import graph cannot see memplan.solvers and memplan.graphs, which live in solvers/
and graphs/ (setuptools package-dir). So here, over every import statement (function-
level ones included):

- the core (the ``core-light`` contract's source modules) never imports a solver or a
  workload generator (memplan.solvers, memplan.graphs);
- a solver imports only the core and memplan.solvers itself: never the CLI, benchmarks,
  plots, file I/O, the ONNX importer, the conformance kit or memplan.graphs.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _contract(contract_id: str) -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    found: dict[str, list[str]] = next(c for c in contracts if c["id"] == contract_id)
    return found


#: The core modules, as the import-linter contract lists them (one list for both checks).
CORE = tuple(_contract("core-light")["source_modules"])


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` of module ``module``.

    ``from package import name`` yields ``package.name`` too, since ``name`` may be a
    submodule (``from memplan.solvers import greedy``). Relative imports resolve from
    ``module`` itself when it is a package (an ``__init__``), else from its package.
    """
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb from the module's package
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _modules(folder: str, package: str) -> list[tuple[str, Path, bool]]:
    """(module name, path, is a package) of every module under ``folder``."""
    result = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        result.append((".".join([package, *parts]), path, is_package))
    return result


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def core_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of a solver or of memplan.graphs by a core module."""
    return [
        f"{module}:{line} imports {name}"
        for line, name in imports_of(source, module, is_package)
        if _within(name, ("memplan.solvers", "memplan.graphs"))
    ]


def solver_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Imports of memplan outside the core and memplan.solvers by a solver module.

    ``memplan`` itself is allowed (``from memplan import __version__``); a name below
    an allowed module (``memplan.solver.Budget``) is allowed with it.
    """
    allowed = ("memplan.solvers", *CORE)
    return [
        f"{module}:{line} imports {name}"
        for line, name in imports_of(source, module, is_package)
        if name != "memplan" and _within(name, ("memplan",)) and not _within(name, allowed)
    ]


def _core_files(module: str) -> list[tuple[str, Path, bool]]:
    """(module name, path, is a package) of a core module's files: its ``.py`` file, or
    every module of it when it is a package (``memplan.ir``)."""
    relative = module.split(".", 1)[1].replace(".", "/")
    single = ROOT / "memplan" / f"{relative}.py"
    if single.is_file():
        return [(module, single, False)]
    return _modules(f"memplan/{relative}", module)


def test_core_list_names_real_modules() -> None:
    for module in CORE:
        assert _core_files(module), module


@pytest.mark.parametrize("module", CORE)
def test_core_imports_no_solver(module: str) -> None:
    bad = [
        v
        for name, path, is_package in _core_files(module)
        for v in core_violations(path.read_text(encoding="utf-8"), name, is_package)
    ]
    assert bad == []


def test_solvers_import_only_the_core() -> None:
    modules = _modules("solvers", "memplan.solvers")
    assert len(modules) > 5
    bad = [
        v
        for module, path, is_package in modules
        for v in solver_violations(path.read_text(encoding="utf-8"), module, is_package)
    ]
    assert bad == []


def test_the_checks_can_fail() -> None:
    """Every form of a forbidden import is caught, allowed ones are not."""
    core_source = "def f():\n    from memplan.solvers.greedy import GreedySolver\n"
    assert core_violations(core_source, "memplan.budgets") == [
        "memplan.budgets:2 imports memplan.solvers.greedy",
        "memplan.budgets:2 imports memplan.solvers.greedy.GreedySolver",
    ]
    assert core_violations("from memplan import graphs\n", "memplan.dsa") == [
        "memplan.dsa:1 imports memplan.graphs"
    ]
    solver_source = (
        "from memplan.solver import Budget\n"
        "from . import model\n"
        "from .. import greedy\n"
        "import memplan.viz.plots\n"
        "from memplan.io.files import atomic_write_text\n"
        "from memplan import testing\n"
    )
    assert solver_violations(solver_source, "memplan.solvers.ilp.solver") == [
        "memplan.solvers.ilp.solver:4 imports memplan.viz.plots",
        "memplan.solvers.ilp.solver:5 imports memplan.io.files",
        "memplan.solvers.ilp.solver:5 imports memplan.io.files.atomic_write_text",
        "memplan.solvers.ilp.solver:6 imports memplan.testing",
    ]
    relative = imports_of(
        "from . import cpsat\nfrom .. import greedy\n", "memplan.solvers.ilp", True
    )
    assert relative == [
        (1, "memplan.solvers.ilp"),
        (1, "memplan.solvers.ilp.cpsat"),
        (2, "memplan.solvers"),
        (2, "memplan.solvers.greedy"),
    ]
