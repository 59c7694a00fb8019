"""Helpers for the allocator tests: seeded random instances, brute force, the data files."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from memplan.dsa import Buffer
from memplan.testing.allocators import brute_force_min_height
from memplan.testing.allocators import random_buffers as _seeded_buffers

#: MiniMalloc's benchmark files, shipped with the tests (see tests/data/minimalloc/README.md).
DATA = Path(__file__).resolve().parent / "data"
CHALLENGING = DATA / "minimalloc" / "challenging"
CAPACITY = 1 << 20

__all__ = ["brute_force_min_height"]


def challenging_file(name: str) -> Path:
    """Return ``challenging/<name>.1048576.csv`` (shipped under tests/data)."""
    path = CHALLENGING / f"{name}.{CAPACITY}.csv"
    assert path.exists(), f"test data missing: {path}"
    return path


def random_buffers(
    rng: random.Random,
    n: int,
    *,
    horizon: int = 8,
    max_size: int = 4,
    alignments: tuple[int, ...] = (1,),
    fixed_prob: float = 0.0,
) -> list[Buffer]:
    """``n`` random buffers drawn with ``rng`` (see memplan.testing.random_buffers)."""
    return _seeded_buffers(
        rng.randrange(1 << 30),
        n,
        horizon=horizon,
        max_size=max_size,
        alignments=alignments,
        fixed_prob=fixed_prob,
    )


def overlaps_naive(buffers: list[Buffer], offsets: list[int] | tuple[int, ...]) -> bool:
    """All-pairs check: do two buffers live at one step share a byte?"""
    for i, j in itertools.combinations(range(len(buffers)), 2):
        a, b = buffers[i], buffers[j]
        in_time = a.lower < b.upper and b.lower < a.upper
        in_bytes = offsets[i] < offsets[j] + b.size_bytes and offsets[j] < offsets[i] + a.size_bytes
        if in_time and in_bytes and a.size_bytes > 0 and b.size_bytes > 0:
            return True
    return False


def exhaustive_min_height(buffers: list[Buffer]) -> int:
    """Minimum height by trying every offset of every buffer (only for tiny inputs)."""
    limit = sum(b.size_bytes for b in buffers) + max(b.alignment_bytes for b in buffers)
    choices = []
    for b in buffers:
        if b.fixed_offset_bytes is not None:
            choices.append([b.fixed_offset_bytes])
        else:
            choices.append(list(range(0, limit, b.alignment_bytes)))
    best = None
    for offsets in itertools.product(*choices):
        height = max(o + b.size_bytes for o, b in zip(offsets, buffers, strict=True))
        if best is not None and height >= best:
            continue
        if not overlaps_naive(buffers, offsets):
            best = height
    assert best is not None
    return best


def guillotine_packing(seed: int, n: int, side: int, unit: int = 1) -> list[Buffer]:
    """A perfect packing: a side x side square (time x bytes) cut at random into ``n``.

    Every step is fully live, so ``side * unit`` bytes (the max live) is the optimum.
    """
    rng = random.Random(seed)
    rects = [(0, side, 0, side)]  # (lower, upper, bottom, top) in units
    while len(rects) < n:
        rng.shuffle(rects)
        rects.sort(key=lambda r: -(r[1] - r[0]) * (r[3] - r[2]) * rng.random())
        t0, t1, a0, a1 = rects.pop(0)
        if rng.random() < 0.5 and t1 - t0 > 1:
            c = rng.randint(t0 + 1, t1 - 1)
            rects += [(t0, c, a0, a1), (c, t1, a0, a1)]
        elif a1 - a0 > 1:
            c = rng.randint(a0 + 1, a1 - 1)
            rects += [(t0, t1, a0, c), (t0, t1, c, a1)]
        else:
            rects.append((t0, t1, a0, a1))
    return [
        Buffer(str(i), t0 * unit, t1 * unit, (a1 - a0) * unit)
        for i, (t0, t1, a0, a1) in enumerate(rects)
    ]
