"""Compile every kernel at once (the first compiled use in a fresh install).

numba compiles a kernel the first time it is called with a new signature. Left to
itself, a fresh installation would compile the greedy kernels during one allocation and
the exact search's during a later one, each time inside someone's time limit. Instead,
the first compiled kernel a process asks for that is not in the disk cache makes
:func:`compile_all_kernels` run every allocator path and dnc's order-search kernel
once, compiled, on small fixed instances: about 20 s, announced once on stderr, then
never again (the cache keeps them). A solve with ``kernels=auto`` does not wait for
that: it runs the Python kernels and starts ``python -m memplan.solvers.warmup`` in the
background (:func:`memplan.solvers.jit.compile_in_background`), which removes its lock
file when it is done.
A test checks that nothing is left to compile afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import numpy as np

from memplan.dsa import Buffer
from memplan.solver import Budget

#: Seconds each exact search of the warm-up may take (compiling comes on top).
WARMUP_SEARCH_S = 1.0


def warmup_buffers() -> list[Buffer]:
    """A fixed instance on which every kernel runs: no greedy variant reaches max live
    (so the improvement runs), alignments, a fixed offset, zero sizes."""
    rng = np.random.default_rng(20)
    buffers = []
    for i in range(40):
        lower = int(rng.integers(0, 30))
        upper = lower + int(rng.integers(1, 12))
        size = int(rng.integers(0, 6)) * 16 + int(rng.integers(1, 16))
        buffers.append(Buffer(i, lower, upper, size, (1, 4, 8)[i % 3]))
    buffers.append(Buffer("fixed", 0, 40, 8, 8, fixed_offset_bytes=0))
    buffers.append(Buffer("empty", 3, 5, 0))
    return buffers


def compile_all_kernels() -> None:
    """Run every kernel once, compiled (compiling what is missing from the cache)."""
    from memplan.solvers.alloc.exact import ExactAllocator
    from memplan.solvers.alloc.greedy import Portfolio
    from memplan.solvers.jit import cache_witness, warmup_done_path
    from memplan.solvers.order_search import warm_up

    warm_up()

    buffers = warmup_buffers()
    Portfolio(minimize=True, kernels="compiled").allocate(buffers, None, Budget())
    exact = ExactAllocator(kernels="compiled")
    # Twice: the first pass compiles what it reaches (its budget may run out while numba
    # compiles), the second runs compiled and reaches the rest. The searches need not
    # finish: this instance is not proven within minutes, and 60 s limits made a fresh
    # install's first allocation wait 3 minutes.
    for _ in range(2):
        best = exact.allocate(buffers, None, Budget(time_limit_s=WARMUP_SEARCH_S)).height_bytes
        if best is not None:
            exact.allocate(buffers, best, Budget(time_limit_s=WARMUP_SEARCH_S))
            exact.allocate(buffers, best - 1, Budget(time_limit_s=WARMUP_SEARCH_S))
    with contextlib.suppress(OSError):  # the stamp only spares later commands a look
        Path(warmup_done_path()).write_text(cache_witness(), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """``python -m memplan.solvers.warmup [--lock FILE]``: compile every kernel into
    numba's disk cache, then remove ``FILE`` (the background compile's lock)."""
    parser = argparse.ArgumentParser(
        prog="python -m memplan.solvers.warmup",
        description="compile memplan's kernels into numba's disk cache (about 20 s, once)",
    )
    parser.add_argument("--lock", help="a file to remove when done (the caller's lock)")
    args = parser.parse_args(argv)
    try:
        compile_all_kernels()
    finally:
        if args.lock:
            with contextlib.suppress(OSError):
                os.remove(args.lock)


if __name__ == "__main__":
    main()
