"""The plug-in registry: requirements that really import, capabilities, `memplan solvers`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from memplan import registry
from memplan.cli import main
from memplan.registry import (
    EXACT_MIN_PEAK,
    PluginKind,
    distribution_modules,
    extra_distributions,
    missing_requirements,
    providers,
)

BROKEN = "broken-backend"


@dataclass(frozen=True)
class BrokenBackend:
    """A solver whose backend module is missing."""

    name: ClassVar[str] = BROKEN
    capabilities: ClassVar[frozenset[str]] = frozenset({EXACT_MIN_PEAK})
    requires_modules: ClassVar[tuple[str, ...]] = ("json", "memplan_no_such_module_xyz")
    seed: int = field(default=0, metadata={"help": "random seed"})


@pytest.fixture
def broken() -> Iterator[None]:
    registry.register(PluginKind.SOLVER, BROKEN, BrokenBackend)
    yield
    registry.unregister(PluginKind.SOLVER, BROKEN)


def test_declared_modules_must_import(broken: None) -> None:
    reason = missing_requirements(PluginKind.SOLVER, BROKEN)
    assert reason is not None
    assert "memplan_no_such_module_xyz" in reason and "ModuleNotFoundError" in reason
    assert BROKEN not in providers(PluginKind.SOLVER, EXACT_MIN_PEAK)  # cannot provide


def test_unknown_plugin_reason() -> None:
    reason = missing_requirements(PluginKind.SOLVER, "no-such-solver")
    assert reason is not None and "unknown solver" in reason


def test_installed_plugins_are_usable() -> None:
    assert missing_requirements(PluginKind.SOLVER, "greedy") is None


def test_extra_distributions_from_the_metadata() -> None:
    assert extra_distributions("memplan", "ilp") == ["ortools", "pulp", "highspy"]
    assert extra_distributions("memplan", "dist") == ["dask"]
    assert extra_distributions("memplan", "no-such-extra") == []
    assert extra_distributions("no-such-distribution-xyz", "ilp") == []
    assert distribution_modules("no-such-distribution-xyz") == []


def test_distribution_modules_prefer_the_namesake() -> None:
    pytest.importorskip("ortools")
    assert distribution_modules("ortools") == ["ortools"]  # not its pybind11_abseil


def test_a_missing_extra_distribution_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if highspy were not installed: the ilp plug-in loads but is not usable."""
    real = registry.distribution_modules
    monkeypatch.setattr(
        registry, "distribution_modules", lambda d: [] if d == "highspy" else real(d)
    )
    reason = missing_requirements(PluginKind.SOLVER, "ilp")
    assert reason == (
        "solver 'ilp' needs 'highspy', which is not installed; "
        "install it with: pip install 'memplan[ilp]'"
    )


def test_a_broken_extra_module_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if pulp's module failed to import (a broken wheel): the reason names it."""
    real = registry.distribution_modules
    monkeypatch.setattr(
        registry,
        "distribution_modules",
        lambda d: ["memplan_broken_pulp_xyz"] if d == "pulp" else real(d),
    )
    reason = missing_requirements(PluginKind.SOLVER, "ilp")
    assert reason is not None and "memplan_broken_pulp_xyz" in reason
    assert "pip install 'memplan[ilp]'" in reason


def test_memplan_solvers_shows_why_a_plugin_is_not_available(
    broken: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    assert "broken-backend: NOT available" in out
    assert "memplan_no_such_module_xyz" in out
    assert "greedy: available" in out
    assert "allocators (memplan allocate --algorithm NAME):" in out
    assert all(len(line) <= 80 for line in out.splitlines() if line.startswith("        "))
    assert main(["solvers", "--json"]) == 0
    entries = {(e["kind"], e["name"]): e for e in json.loads(capsys.readouterr().out)}
    entry = entries[("solver", BROKEN)]
    assert entry["importable"] is False and "memplan_no_such_module_xyz" in entry["error"]
    assert entries[("solver", "greedy")]["importable"] is True
    assert any(kind == "allocator" for kind, _ in entries)


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("os:system", "a builtin_function_or_method"),  # a function
        ("memplan.plan:Plan", "a class"),  # a dataclass without solve()
        ("memplan.errors:ConfigError", "a class"),  # not a dataclass
        ("memplan.registry:BROKEN_NAME_XYZ", None),  # nothing there
    ],
)
def test_a_path_that_names_no_solver_is_one_line(
    path: str, what: str | None, capsys: pytest.CaptureFixture
) -> None:
    assert main(["optimize", "light_squeezenet", "--solver", path]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    if what is None:
        assert "names no class" in err
    else:
        assert f"names {what} that is not a solver" in err


def test_a_path_to_an_allocator_class_loads() -> None:
    from memplan.registry import plugin_class

    cls = plugin_class(PluginKind.ALLOCATOR, "memplan.solvers.alloc.auto:AutoAllocator")
    assert callable(cls.allocate)


@pytest.mark.parametrize("name", ["greedy", "ilp", "dnc", "rl", "rl-uniform"])
def test_every_allowed_value_of_a_choice_option_is_in_its_help(name: str) -> None:
    # `memplan solvers` shows the help: a value the solver accepts but the help omits
    # (greedy's and the ilp's order=rpo were) is an option nobody can find.
    from memplan.errors import ConfigError
    from memplan.options import describe_options
    from memplan.registry import plugin_class
    from memplan.solver import make_solver

    for info in describe_options(plugin_class(PluginKind.SOLVER, name)):
        if info.type_name != "str":
            continue
        try:
            make_solver(name, {info.name: "no-such-value"})
        except ConfigError as error:
            message = str(error)
        else:
            continue  # free text (a path, say)
        allowed = message.partition("use one of ")[2]
        assert allowed, f"{name}.{info.name}: {message}"
        values = allowed.split(", ")
        if "any registered" in info.help or any(" " in v for v in values):
            continue  # the help names the open-ended part (allocator plug-ins, a path)
        for value in values:
            assert value in info.help, f"{name} --option {info.name}={value} is not in its help"


def test_entry_points_are_read_once_and_again_for_a_name_not_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every allocation looks its allocator up by name: reading the metadata each time
    # cost 16 ms a lookup. A plug-in installed after the first read is still found.
    from importlib.metadata import EntryPoint

    from memplan.registry import plugin_class

    installed = [EntryPoint("greedy", "memplan.solvers.greedy:GreedySolver", "memplan.solvers")]
    reads: list[str] = []

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        reads.append(group)
        return list(installed)

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    registry._read_entry_points.cache_clear()
    try:
        for _ in range(3):
            assert plugin_class(PluginKind.SOLVER, "greedy").name == "greedy"
        assert reads == ["memplan.solvers"]
        installed.append(EntryPoint("late", "memplan.solvers.greedy:GreedySolver", "x"))
        assert plugin_class(PluginKind.SOLVER, "late").name == "greedy"
        assert reads == ["memplan.solvers"] * 2
        assert "late" in registry.available(PluginKind.SOLVER)
    finally:
        registry._read_entry_points.cache_clear()


def test_making_a_greedy_does_not_read_the_installed_allocators_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dnc and ilp make a greedy on every solve; its allocator check listed the installed
    # allocators afresh (two metadata scans each time). An unknown allocator is still
    # refused with the list.
    from importlib import metadata

    from memplan.errors import ConfigError
    from memplan.solver import make_solver

    reads: list[str] = []

    def counting_entry_points(*, group: str) -> metadata.EntryPoints:
        reads.append(group)
        return metadata.entry_points(group=group)

    monkeypatch.setattr(registry, "entry_points", counting_entry_points)
    registry._read_entry_points.cache_clear()
    try:
        for _ in range(3):
            make_solver("greedy", {"allocator": "best-fit"})
        assert reads.count(PluginKind.ALLOCATOR.value) == 1
        with pytest.raises(ConfigError, match=r"allocator='no-such'.*best-fit"):
            make_solver("greedy", {"allocator": "no-such"})
    finally:
        registry._read_entry_points.cache_clear()
