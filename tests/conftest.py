"""Shared pytest fixtures (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import light_model_path as _light_model_path

# A shell that starts a job in the background (``cmd &`` in a script) starts it with
# SIGINT ignored, and an ignored signal stays ignored across exec: the Ctrl-C tests
# (here and in the memplan processes they start) would then test nothing. Python's own
# handler in this process also gives the children the default disposition back.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def light_model_path() -> Callable[[str], Path]:
    """Return the function locating ``light_<name>.onnx`` in the installed onnx wheel."""
    return _light_model_path


@pytest.fixture(autouse=True)
def isolated_peak_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tests off the user's M_P cache: MP budgets must not depend on machine state."""
    monkeypatch.setenv("MEMPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("memplan-cache")))


@pytest.fixture(autouse=True, scope="session")
def compiled_kernels() -> Iterator[None]:
    """Compile every kernel (or load it from numba's cache) before the first test. On a
    fresh clone, solves with ``kernels=auto`` would otherwise run the Python kernels
    while a background process compiles (memplan.solvers.jit), and tests that need the
    compiled speed would depend on when it finished.

    At the end, every kernel made must still be ready: a test that leaves a never-compiled
    kernel in the registry turns every later ``auto`` allocation to Python (on a fresh
    clone the suite then ran twice as long, and four tests failed on time)."""
    from memplan.solvers import jit
    from memplan.solvers.warmup import compile_all_kernels

    compile_all_kernels()
    yield
    jit._ready_count = 0
    left = [k.__name__ for k in jit._KERNELS if not k.inline and not k.ready()]
    assert jit.kernels_ready(), f"kernels left unready by a test: {left}"
