"""Tests of scratchpad budget specs: MR, MH, MP, sizes, multiples, alignment, errors."""

from __future__ import annotations

import pytest
from helpers import random_graph

from memplan.accelerator import Accelerator
from memplan.analysis import min_peak_order, peak_live_bytes
from memplan.budgets import PeakEstimate, heuristic_min_peak, is_budget_spec, resolve_budget
from memplan.errors import ConfigError
from memplan.problem import Problem, Scope


def problem(seed: int = 0, alignment: int = 64, scope: Scope = Scope.ACTIVATIONS) -> Problem:
    return Problem(random_graph(seed, 30), Accelerator("test", 1 << 20, alignment), scope)


@pytest.mark.parametrize("seed", range(8))
def test_named_budgets(seed):
    p = problem(seed)
    peak = heuristic_min_peak(p)
    assert peak.proven and "proven" in peak.source  # the search finishes on 30 ops
    order = min_peak_order(p.graph, p.aligned_sizes_bytes, p.in_scope)
    assert peak.value_bytes <= peak_live_bytes(p.graph, order, p.aligned_sizes_bytes, p.in_scope)
    assert peak.value_bytes >= p.min_resident_bytes
    mr = resolve_budget("MR", p)
    mp = resolve_budget("mp", p)
    mh = resolve_budget(" MH ", p)
    assert mr.capacity_bytes == p.min_resident_bytes  # aligned sizes sum to an aligned M_R
    assert mp.capacity_bytes == peak.value_bytes
    assert mh.capacity_bytes == (p.min_resident_bytes + peak.value_bytes) // 2 // 64 * 64
    assert mr.capacity_bytes <= mh.capacity_bytes <= mp.capacity_bytes
    assert "MP (proven)" in mp.note and mr.note == "MR"
    for budget in (mr, mp, mh):
        assert budget.capacity_bytes % 64 == 0


def test_sizes_and_multiples_are_aligned_down():
    p = problem(1)
    assert resolve_budget("512KiB", p).capacity_bytes == 512 * 1024
    assert resolve_budget("1000", p).capacity_bytes == 960
    assert resolve_budget("2MB", p).capacity_bytes == 2_000_000 // 64 * 64
    half = resolve_budget("0.5*MP", p)
    assert half.capacity_bytes == int(heuristic_min_peak(p).value_bytes * 0.5) // 64 * 64
    assert half.note.startswith("0.5 x MP")
    assert (
        resolve_budget("1.25 * mr", p).capacity_bytes == int(p.min_resident_bytes * 1.25) // 64 * 64
    )
    unaligned = problem(1, alignment=1)
    assert resolve_budget("1000", unaligned).capacity_bytes == 1000


def test_peak_provider_is_used_for_mp_and_mh():
    p = problem(2)
    proven = PeakEstimate(p.min_resident_bytes + 6400, True, "exact")
    mp = resolve_budget("MP", p, peak_provider=lambda _: proven)
    assert mp.capacity_bytes == proven.value_bytes and "proven" in mp.note
    mh = resolve_budget("MH", p, peak_provider=lambda _: proven)
    assert mh.capacity_bytes == p.min_resident_bytes + 3200
    calls = []
    resolve_budget("MR", p, peak_provider=lambda q: calls.append(q) or proven)
    assert calls == []  # MR needs no peak


def test_scope_all_counts_weights():
    act = problem(3)
    everything = problem(3, scope=Scope.ALL)
    assert everything.min_resident_bytes >= act.min_resident_bytes
    assert heuristic_min_peak(everything).value_bytes >= heuristic_min_peak(act).value_bytes


@pytest.mark.parametrize("bad", ["", "lots", "MQ", "0.5*", "*MP", "-5", "12 parsecs", "0.5*XX"])
def test_bad_specs_list_the_forms(bad):
    assert not is_budget_spec(bad)
    with pytest.raises(ConfigError, match="MR, MH, MP"):
        resolve_budget(bad, problem())


@pytest.mark.parametrize("good", ["MR", "mh", "MP", "65536", "512KiB", "2MB", "0.5*MP", "2*MR"])
def test_good_specs(good):
    assert is_budget_spec(good)


def test_accelerator_is_the_capacity_of_the_accelerator_spec_as_the_docs_say():
    """docs/budgets.md lists 'accelerator' as a budget and the CLI took it, but
    resolve_budget('accelerator', problem) raised ConfigError."""
    base = problem()
    for spec in ("accelerator", " Accelerator "):
        assert is_budget_spec(spec)
        resolved = resolve_budget(spec, base.with_capacity(100_000))
        assert resolved.capacity_bytes == 100_000 // base.alignment_bytes * base.alignment_bytes
        assert resolved.note == f"capacity of accelerator {base.accelerator.name!r}"
    with pytest.raises(ConfigError, match=r"or 'accelerator' \(the accelerator's own capacity\)"):
        resolve_budget("lots", base)
    with pytest.raises(ConfigError, match=r"pass a string: MR, .*or 'accelerator'"):
        resolve_budget(5, base)  # type: ignore[arg-type]
