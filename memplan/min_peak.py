"""Proven M_P: asked of whichever installed solver can prove it, and cached.

M_P (PROBLEM.md section 5) is the minimum over orders of the peak live bytes with no
spilling. The heuristic in :mod:`memplan.budgets` gives an upper bound. A solver that
can prove the minimum declares the capability
:data:`memplan.registry.EXACT_MIN_PEAK` and a classmethod
``exact_min_peak(problem, budget) -> PeakEstimate``; :func:`exact_min_peak` asks
:func:`memplan.registry.providers` who can, so the core never names a solver. With no
provider installed, or out of time, it returns the heuristic (or the search's better
value), marked unproven, with the reason in the estimate's ``source``.

Proven values are cached in ``$MEMPLAN_CACHE_DIR/min_peak.json`` (default
``~/.cache/memplan``), keyed by the graph's SHA-256 (of its JSON form), the scope and
the alignment, which is all M_P depends on. The cache is best effort: an unreadable or
unwritable file is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from memplan.budgets import PeakEstimate, PeakProvider, heuristic_min_peak
from memplan.errors import MemplanError, OutputFileError, SolverContractError
from memplan.io.files import atomic_write_text
from memplan.ir import graph_sha256
from memplan.problem import Problem, require_problem
from memplan.registry import EXACT_MIN_PEAK, PluginKind, plugin_class, providers
from memplan.solver import Budget

#: Environment variable naming the cache folder.
CACHE_ENV = "MEMPLAN_CACHE_DIR"
#: Cache file name inside the folder.
CACHE_FILE = "min_peak.json"
#: Version of the cache layout; other versions are ignored.
CACHE_VERSION = 1


def cache_dir() -> Path:
    """The cache folder: ``$MEMPLAN_CACHE_DIR`` or ``~/.cache/memplan``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "memplan"


def cache_key(problem: Problem) -> str:
    """Key of a problem's M_P: graph hash, scope and alignment."""
    return f"{graph_sha256(problem.graph)}/{problem.scope.value}/{problem.alignment_bytes}"


def _read() -> dict[str, Any]:
    path = cache_dir() / CACHE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def lookup(problem: Problem) -> PeakEstimate | None:
    """The cached proven M_P of ``problem``, or None."""
    entry = _read().get(cache_key(problem))
    if not isinstance(entry, dict) or not isinstance(entry.get("value_bytes"), int):
        return None
    return PeakEstimate(entry["value_bytes"], True, f"{entry.get('source', 'exact')} (cached)")


def store(problem: Problem, estimate: PeakEstimate) -> None:
    """Remember a proven M_P (unproven estimates are not cached)."""
    if not estimate.proven:
        return
    entries = _read()
    entries[cache_key(problem)] = {
        "value_bytes": estimate.value_bytes,
        "source": estimate.source,
        "graph": problem.graph.name,
    }
    # Best effort: a read-only home folder only costs a recomputation.
    with contextlib.suppress(OSError, OutputFileError):
        atomic_write_text(
            cache_dir() / CACHE_FILE,
            json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True),
            what="M_P cache",
            create_folders=True,
        )


def exact_min_peak(
    problem: Problem, time_limit_s: float = 60.0, *, use_cache: bool = True
) -> PeakEstimate:
    """M_P from the cache or a solver with the ``EXACT_MIN_PEAK`` capability.

    Providers are asked in name order, sharing one budget, until one proves M_P.

    Args:
        problem: the problem (graph, scope and alignment matter, not the capacity).
        time_limit_s: limit of the exact search, in seconds.
        use_cache: read and write the cache.

    Returns:
        A proven estimate, or the better of the heuristic and the searches' best values,
        marked unproven with the reason in ``source``.

    Raises:
        SolverContractError: a provider "proved" a value above the heuristic's peak,
            which a real no-spill order reaches (a bug in that provider).
        ConfigError: ``problem`` is not a Problem, or ``time_limit_s`` is not a number
            of seconds.
    """
    require_problem(problem, "exact_min_peak")
    Budget(time_limit_s)  # the limit's type is checked where a Budget is made
    if use_cache:
        cached = lookup(problem)
        if cached is not None:
            return cached
    heuristic = heuristic_min_peak(problem)
    names = providers(PluginKind.SOLVER, EXACT_MIN_PEAK)
    if not names:
        return PeakEstimate(
            heuristic.value_bytes,
            False,
            f"{heuristic.source}; exact M_P unavailable (no installed solver can prove it; "
            "pip install 'memplan[ilp]')",
        )
    budget = Budget(time_limit_s=time_limit_s)
    best, notes = heuristic, []
    for name in names:
        try:
            estimate: PeakEstimate = plugin_class(PluginKind.SOLVER, name).exact_min_peak(  # type: ignore[attr-defined]
                problem, budget
            )
        except (MemplanError, ImportError) as error:
            notes.append(f"{name}: {error}")
            continue
        if estimate.proven:
            if estimate.value_bytes > heuristic.value_bytes:
                raise SolverContractError(
                    f"solver {name!r} proved M_P = {estimate.value_bytes} B, above the "
                    f"{heuristic.value_bytes} B peak of a no-spill order"
                )
            if use_cache:
                store(problem, estimate)
            return estimate
        notes.append(f"{name}: {estimate.source}")
        if estimate.value_bytes < best.value_bytes:
            best = estimate
        if budget.should_stop():
            break
    return PeakEstimate(
        best.value_bytes,
        False,
        f"{best.source}; exact M_P not proven in {time_limit_s:g} s ({'; '.join(notes)})",
    )


def cached_peak_provider(problem: Problem) -> PeakEstimate:
    """A :data:`memplan.budgets.PeakProvider` that never searches: the cached proven M_P
    (from ``memplan inspect --exact-mp`` or any earlier exact computation) when there is
    one, else the heuristic upper bound (whose ``source`` says so)."""
    cached = lookup(problem)
    return cached if cached is not None else heuristic_min_peak(problem)


def exact_peak_provider(time_limit_s: float = 60.0, *, use_cache: bool = True) -> PeakProvider:
    """A :data:`memplan.budgets.PeakProvider` using :func:`exact_min_peak`.

    Pass it to :func:`memplan.budgets.resolve_budget` so that ``MP`` and ``MH`` use the
    proven M_P when a solver that can prove it (e.g. ``ilp``) is installed.
    """

    def provide(problem: Problem) -> PeakEstimate:
        return exact_min_peak(problem, time_limit_s, use_cache=use_cache)

    return provide
