"""Proven M_P values: a small JSON cache and a peak provider that uses the exact solver.

M_P (PROBLEM.md section 5) is the minimum over orders of the peak live bytes with no
spilling. The heuristic in :mod:`memplan.budgets` gives an upper bound; the ``ilp``
solver (an optional extra) can prove the minimum. The core never imports a solver:
:func:`exact_peak_provider` loads it lazily through the registry and falls back to the
heuristic, saying so in the estimate's ``source``, when it is not installed or runs out
of time.

Proven values are cached in ``$MEMPLAN_CACHE_DIR/min_peak.json`` (default
``~/.cache/memplan``), keyed by the graph's SHA-256 (of its JSON form), the scope and
the alignment, which is all M_P depends on. The cache is best effort: an unreadable or
unwritable file is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from memplan.budgets import PeakEstimate, PeakProvider, heuristic_min_peak
from memplan.errors import ConfigError, OutputFileError
from memplan.io.files import atomic_write_text
from memplan.ir import Graph, graph_to_json
from memplan.problem import Problem

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


def graph_sha256(graph: Graph) -> str:
    """Hex SHA-256 of the graph's JSON form (names, sizes, kinds, ops)."""
    return hashlib.sha256(graph_to_json(graph).encode("utf-8")).hexdigest()


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
    """M_P from the cache or the ``ilp`` solver; the heuristic, with a note, otherwise.

    Args:
        problem: the problem (graph, scope and alignment matter, not the capacity).
        time_limit_s: limit of the exact search, in seconds.
        use_cache: read and write the cache.

    Returns:
        A proven estimate, or the better of the heuristic and the search's best value
        marked unproven with the reason in ``source``.
    """
    if use_cache:
        cached = lookup(problem)
        if cached is not None:
            return cached
    from memplan.solver import solver_class

    try:
        compute = solver_class("ilp").exact_min_peak  # type: ignore[attr-defined]
    except (ConfigError, AttributeError) as error:
        heuristic = heuristic_min_peak(problem)
        return PeakEstimate(
            heuristic.value_bytes,
            False,
            f"{heuristic.source}; exact M_P unavailable ({error})",
        )
    try:
        estimate: PeakEstimate = compute(problem, time_limit_s)
    except (ConfigError, ImportError) as error:
        heuristic = heuristic_min_peak(problem)
        return PeakEstimate(
            heuristic.value_bytes, False, f"{heuristic.source}; exact M_P unavailable ({error})"
        )
    if estimate.proven and use_cache:
        store(problem, estimate)
    if not estimate.proven:
        heuristic = heuristic_min_peak(problem)
        if heuristic.value_bytes <= estimate.value_bytes:
            return PeakEstimate(
                heuristic.value_bytes,
                False,
                f"{heuristic.source}; exact search not proven in {time_limit_s:g} s "
                f"({estimate.source})",
            )
    return estimate


def cached_peak_provider(problem: Problem) -> PeakEstimate:
    """A :data:`memplan.budgets.PeakProvider` that never searches: the cached proven M_P
    (from ``memplan inspect --exact-mp`` or any earlier exact computation) when there is
    one, else the heuristic upper bound (whose ``source`` says so)."""
    cached = lookup(problem)
    return cached if cached is not None else heuristic_min_peak(problem)


def exact_peak_provider(time_limit_s: float = 60.0, *, use_cache: bool = True) -> PeakProvider:
    """A :data:`memplan.budgets.PeakProvider` using :func:`exact_min_peak`.

    Pass it to :func:`memplan.budgets.resolve_budget` so that ``MP`` and ``MH`` use the
    proven M_P when the ``ilp`` extra is installed.
    """

    def provide(problem: Problem) -> PeakEstimate:
        return exact_min_peak(problem, time_limit_s, use_cache=use_cache)

    return provide
