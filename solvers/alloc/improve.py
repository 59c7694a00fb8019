"""A cheap local improvement of a lowest-offset-first packing.

The lowest-first greedy takes, among the buffers that can sit lowest, the one with the
smallest rank. The improvement is a hill climb over ranks: move a buffer that reaches
the current peak (a "squeaky wheel") or a random one to an earlier rank, re-run the
greedy, and keep the move when the height does not grow. The number of steps comes
from a fixed work budget, not the clock, so a seed always yields the same packing.

The climb runs in chunks of steps (its state, random generator included, lives in
arrays), so the caller checks the time and the stop event between chunks and may
switch from the Python kernel to the compiled one without changing the result.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from memplan.solver import Budget
from memplan.solvers.alloc.intervals import Packed
from memplan.solvers.alloc.placement import place_lowest_first
from memplan.solvers.jit import KernelChoice, kernel

#: Work budget of one improvement, in overlap-graph entries visited (about 0.3 s).
WORK_BUDGET = 15_000_000

#: Most hill-climbing steps, whatever the budget allows.
MAX_STEPS = 1000

#: Work of one chunk of steps between two looks at the clock, in graph entries: about
#: 0.1 ms of compiled kernel, or 5 ms of Python (where the clock also decides when to
#: switch to the compiled kernel).
CHUNK_WORK = 50_000
PYTHON_CHUNK_WORK = 2_000

#: Slots of the climb's scalar array ``ctl``.
CUR_H, BEST_H, STEP, RNG, DONE = range(5)

#: Modulus of the Park-Miller ("minimal standard") generator: products stay in int64.
RNG_MODULUS = 2147483647


class Climb(NamedTuple):
    """The state of one hill climb."""

    cur: np.ndarray  # int64[n]: the current order (buffer indices, first placed first)
    cur_offsets: np.ndarray  # int64[n]: the packing of the current order
    cand: np.ndarray  # int64[n]: scratch: the order being tried
    rank: np.ndarray  # int64[n]: scratch: the rank of each buffer in ``cand``
    offsets: np.ndarray  # int64[n]: scratch: the packing of ``cand``
    pos: np.ndarray  # int64[n]: scratch: the position of each buffer in ``cur``
    best_offsets: np.ndarray  # int64[n]: the lowest packing found
    ctl: np.ndarray  # int64[5]: current height, best height, step, generator, done flag


@kernel
def _random(ctl: np.ndarray, bound: int) -> int:
    """Next draw in ``[0, bound)`` from the generator kept in ``ctl[RNG]``."""
    ctl[RNG] = ctl[RNG] * 48271 % RNG_MODULUS
    return ctl[RNG] % bound


@kernel
def _perturb(p: Packed, c: Climb) -> None:
    """Move a peak-reaching (60 %) or random buffer of ``c.cur`` earlier, into ``c.cand``."""
    n = c.cur.shape[0]
    cur_h = c.ctl[CUR_H]
    for i in range(n):
        c.pos[c.cur[i]] = i
    src = -1
    if _random(c.ctl, 10) < 6:
        # Squeaky wheel: a buffer reaching the peak moves earlier.
        k = 0
        for b in range(n):
            if p.fixed[b] < 0 and c.cur_offsets[b] + p.size[b] == cur_h:
                k += 1
        pick = _random(c.ctl, max(k, 1))
        for b in range(n):
            if p.fixed[b] < 0 and c.cur_offsets[b] + p.size[b] == cur_h:
                if pick == 0:
                    src = c.pos[b]
                    break
                pick -= 1
    if src < 0:
        src = _random(c.ctl, n)
    dst = _random(c.ctl, src + 1)
    moved = c.cand[src]
    for i in range(src, dst, -1):
        c.cand[i] = c.cand[i - 1]
    c.cand[dst] = moved


@kernel
def climb_steps(p: Packed, c: Climb, steps: int, target: int) -> None:
    """Run up to ``steps`` more steps of the climb (until the height reaches ``target``)."""
    n = c.cur.shape[0]
    for _ in range(steps):
        if c.ctl[DONE]:
            return
        c.cand[:] = c.cur
        if c.ctl[STEP] > 0:
            _perturb(p, c)
        c.ctl[STEP] += 1
        for i in range(n):
            c.rank[c.cand[i]] = i
        h = place_lowest_first(p, c.rank, c.offsets)
        if h <= c.ctl[CUR_H]:
            c.cur[:] = c.cand
            c.cur_offsets[:] = c.offsets
            c.ctl[CUR_H] = h
            if h < c.ctl[BEST_H]:
                c.ctl[BEST_H] = h
                c.best_offsets[:] = c.offsets
                if h <= target:
                    c.ctl[DONE] = 1


def new_climb(order: np.ndarray, height: int, seed: int) -> Climb:
    """A climb starting from ``order`` whose packing is ``height`` high."""
    n = order.shape[0]
    ctl = np.zeros(5, np.int64)
    ctl[CUR_H] = ctl[BEST_H] = height + 1  # the first step re-evaluates ``order``
    ctl[RNG] = seed % (RNG_MODULUS - 1) + 1  # the generator's state is in [1, modulus)
    return Climb(
        order.astype(np.int64).copy(),
        np.zeros(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        np.empty(n, np.int64),
        ctl,
    )


def improve_lowest_first(
    p: Packed,
    rank: np.ndarray | None,
    height: int,
    target: int,
    seed: int,
    kernels: KernelChoice,
    budget: Budget,
) -> tuple[tuple[np.ndarray, int] | None, bool]:
    """Try to lower a packing of ``height``.

    Returns:
        ``(offsets, height)`` of a lower packing, or None; and whether the climb ran to
        its end (False: the budget stopped it).

    Args:
        p: the packed problem.
        rank: the tie-break rank of the lowest-first packing to start from (None: first
            use order).
        height: the height to beat.
        target: stop once the height is at or below this.
        seed: random seed.
        kernels: Python or compiled kernels.
        budget: checked between chunks of steps; the climb stops early when it is spent.
    """
    work = p.n + int(p.ptr[-1]) + 1
    steps = min(MAX_STEPS, WORK_BUDGET // work)
    if p.n < 2 or steps < 1:
        return None, True
    order = (
        np.argsort(rank, kind="stable")
        if rank is not None
        else np.lexsort((np.arange(p.n), p.lower))
    )
    climb = new_climb(order, height, seed)
    done = 0
    while done < steps and not climb.ctl[DONE]:
        if budget.should_stop():
            break
        chunk = (PYTHON_CHUNK_WORK if kernels.python else CHUNK_WORK) // work
        todo = min(max(1, chunk), steps - done)
        kernels(climb_steps)(p, climb, todo, target)
        done += todo
    finished = done >= steps or bool(climb.ctl[DONE])
    best = int(climb.ctl[BEST_H])
    return ((climb.best_offsets, best) if best < height else None), finished
