"""Proven M_P through the EXACT_MIN_PEAK capability (memplan.min_peak) and its cache.

A fake provider (exact by enumeration, registered in-process) stands in for any solver
that declares the capability, so these tests need no optional extra; one test checks
that the ``ilp`` solver is found the same way when its extra is installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest

from memplan import min_peak, registry
from memplan.accelerator import Accelerator
from memplan.budgets import PeakEstimate, heuristic_min_peak, resolve_budget
from memplan.errors import ConfigError, SolverContractError
from memplan.ir import graph_to_json
from memplan.problem import Problem
from memplan.registry import EXACT_MIN_PEAK, PluginKind, providers
from memplan.solver import Budget
from memplan.testing import enumerate_min_peak, tiny_spill_graph

FAKE = "fake-prover"


@dataclass(frozen=True)
class FakeProver:
    """A solver class that proves M_P by enumeration (what the capability promises)."""

    name: ClassVar[str] = FAKE
    capabilities: ClassVar[frozenset[str]] = frozenset({EXACT_MIN_PEAK})
    calls: ClassVar[list[float]] = []  # remaining seconds of each call's budget
    answer: ClassVar[str] = "proven"  # proven | unproven | above | error
    seed: int = 0

    @classmethod
    def exact_min_peak(cls, problem: Problem, budget: Budget) -> PeakEstimate:
        cls.calls.append(budget.remaining_s())
        value = enumerate_min_peak(problem)
        if cls.answer == "error":
            raise ConfigError("backend missing (test)")
        if cls.answer == "unproven":
            return PeakEstimate(value + 10 * 1024 * 1024, False, "fake search timed out")
        if cls.answer == "above":
            return PeakEstimate(value + 10 * 1024 * 1024, True, "fake wrong proof")
        return PeakEstimate(value, True, "fake enumeration")


@pytest.fixture
def fake_prover(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeProver]]:
    """Register the fake as the only provider (other providers are hidden)."""
    monkeypatch.setenv(min_peak.CACHE_ENV, str(tmp_path))
    real = registry.providers
    monkeypatch.setattr(
        min_peak, "providers", lambda kind, cap: [n for n in real(kind, cap) if n == FAKE]
    )
    registry.register(PluginKind.SOLVER, FAKE, FakeProver)
    FakeProver.calls.clear()
    FakeProver.answer = "proven"
    yield FakeProver
    registry.unregister(PluginKind.SOLVER, FAKE)


def _problem(seed: int = 2, alignment: int = 1024) -> Problem:
    return Problem(tiny_spill_graph(seed, 6), Accelerator("x", 1 << 20, alignment))


def test_providers_are_found_by_capability(fake_prover) -> None:
    found = providers(PluginKind.SOLVER, EXACT_MIN_PEAK)
    assert FAKE in found and "greedy" not in found


def test_exact_min_peak_asks_the_provider_and_caches(fake_prover) -> None:
    problem = _problem()
    assert min_peak.lookup(problem) is None
    estimate = min_peak.exact_min_peak(problem, 30)
    assert estimate == PeakEstimate(enumerate_min_peak(problem), True, "fake enumeration")
    assert len(fake_prover.calls) == 1 and 29 < fake_prover.calls[0] <= 30
    cached = min_peak.lookup(problem)
    assert cached is not None and cached.value_bytes == estimate.value_bytes
    again = min_peak.exact_min_peak(problem, 30)
    assert "cached" in again.source and len(fake_prover.calls) == 1
    # Another alignment is another key.
    other = _problem(alignment=2048)
    assert min_peak.lookup(other) is None
    resolved = resolve_budget("MP", problem, min_peak.exact_peak_provider(30))
    assert resolved.capacity_bytes == estimate.value_bytes and "proven" in resolved.note
    # The search-free provider: the cached value, else the heuristic (and says which).
    assert "cached" in min_peak.cached_peak_provider(problem).source
    # Not cached: the heuristic provider's own search (it proves M_P on tiny graphs).
    uncached = min_peak.cached_peak_provider(other)
    assert uncached == heuristic_min_peak(other) and "cached" not in uncached.source
    kind = "proven" if uncached.proven else "heuristic upper bound"
    assert kind in resolve_budget("MP", other, min_peak.cached_peak_provider).note
    # A corrupt cache file is ignored.
    (min_peak.cache_dir() / min_peak.CACHE_FILE).write_text("{not json")
    assert min_peak.lookup(problem) is None


def test_unproven_answer_keeps_the_better_heuristic(fake_prover) -> None:
    fake_prover.answer = "unproven"
    problem = _problem()
    estimate = min_peak.exact_min_peak(problem, 5)
    assert not estimate.proven
    assert estimate.value_bytes == heuristic_min_peak(problem).value_bytes
    assert "not proven in 5 s" in estimate.source and "fake search timed out" in estimate.source
    assert min_peak.lookup(problem) is None  # unproven values are not cached


def test_failing_provider_falls_back_with_the_reason(fake_prover) -> None:
    fake_prover.answer = "error"
    estimate = min_peak.exact_min_peak(_problem(), 5)
    assert not estimate.proven and "backend missing (test)" in estimate.source


def test_a_proof_above_a_real_no_spill_peak_is_a_provider_bug(fake_prover) -> None:
    fake_prover.answer = "above"
    with pytest.raises(SolverContractError, match="fake-prover"):
        min_peak.exact_min_peak(_problem(), 5)


def test_without_providers_the_heuristic_says_why(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(min_peak.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(min_peak, "providers", lambda kind, cap: [])
    problem = _problem()
    estimate = min_peak.exact_min_peak(problem, 5)
    assert not estimate.proven and estimate.value_bytes == heuristic_min_peak(problem).value_bytes
    assert "unavailable" in estimate.source and "memplan[ilp]" in estimate.source


def test_inspect_exact_mp_flag(fake_prover, tmp_path, capsys) -> None:
    from memplan.cli import main

    graph = tiny_spill_graph(3, 6)
    path = tmp_path / "tiny.json"
    path.write_text(graph_to_json(graph))
    assert main(["inspect", str(path), "--exact-mp", "20", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    problem = Problem(graph, Accelerator("x", 1 << 20, 64))
    assert summary["exact_min_peak_proven"] is True
    assert summary["exact_min_peak_bytes"] == enumerate_min_peak(problem)
    assert main(["inspect", str(path), "--exact-mp", "nan"]) == 2
    assert "--exact-mp must be a finite number of seconds" in capsys.readouterr().err


def test_ilp_provides_exact_min_peak(tmp_path, monkeypatch) -> None:
    """The ilp solver declares the capability and proves M_P (brute force agrees)."""
    pytest.importorskip("ortools")
    monkeypatch.setenv(min_peak.CACHE_ENV, str(tmp_path))
    assert "ilp" in providers(PluginKind.SOLVER, EXACT_MIN_PEAK)
    problem = _problem()
    estimate = min_peak.exact_min_peak(problem, 30)
    assert estimate.proven and estimate.value_bytes == enumerate_min_peak(problem)
