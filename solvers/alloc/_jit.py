"""The JIT used by the allocators: numba's ``njit`` when installed, else plain Python.

The kernels are written in the subset of Python that numba compiles (flat numpy arrays,
loops, no objects), so they also run unchanged, only slower, without numba. Compiled
code is cached on disk (``cache=True``), so only the first run in a checkout pays the
compilation (a few seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

try:  # pragma: no cover - depends on the environment
    import numba

    HAVE_NUMBA = True

    def njit(fn: F) -> F:
        """Compile ``fn`` with numba (nopython mode, cached on disk)."""
        compiled: Any = numba.njit(cache=True, nogil=True)(fn)
        return cast(F, compiled)

except ImportError:  # pragma: no cover - depends on the environment
    HAVE_NUMBA = False

    def njit(fn: F) -> F:
        """Return ``fn`` unchanged (numba is not installed)."""
        return fn
