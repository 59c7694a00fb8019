"""Helpers for the allocator tests: seeded random instances, brute force, data location."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from memplan.dsa import Buffer

#: The shared benchmark data: ``<repo root>/../shared/data``.
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CHALLENGING = DATA / "minimalloc" / "challenging"
CAPACITY = 1 << 20


def challenging_file(name: str) -> Path:
    """Return ``challenging/<name>.1048576.csv``, skipping the test if the data is absent."""
    path = CHALLENGING / f"{name}.{CAPACITY}.csv"
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path} (needs ../shared/data beside the repo)")
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
    """Return ``n`` random buffers; some may get a fixed offset that collides with nothing."""
    buffers: list[Buffer] = []
    fixed_spots: list[tuple[int, int, int, int]] = []  # lower, upper, offset, top
    for i in range(n):
        lower = rng.randrange(horizon)
        upper = rng.randrange(lower + 1, horizon + 1)
        size = rng.randint(1, max_size)
        align = rng.choice(alignments)
        fixed = None
        if rng.random() < fixed_prob:
            offset = align * rng.randrange(0, 3)
            clash = any(
                lo < upper and lower < up and off < offset + size and offset < top
                for lo, up, off, top in fixed_spots
            )
            if not clash:
                fixed = offset
                fixed_spots.append((lower, upper, offset, offset + size))
        buffers.append(Buffer(i, lower, upper, size, align, fixed))
    return buffers


def overlaps_naive(buffers: list[Buffer], offsets: list[int] | tuple[int, ...]) -> bool:
    """All-pairs check: do two buffers live at one step share a byte?"""
    for i, j in itertools.combinations(range(len(buffers)), 2):
        a, b = buffers[i], buffers[j]
        in_time = a.lower < b.upper and b.lower < a.upper
        in_bytes = offsets[i] < offsets[j] + b.size_bytes and offsets[j] < offsets[i] + a.size_bytes
        if in_time and in_bytes and a.size_bytes > 0 and b.size_bytes > 0:
            return True
    return False


def _lowest_fit(buffers: list[Buffer], placed: dict[int, int], i: int) -> int:
    """Lowest aligned offset where buffer ``i`` collides with no placed buffer."""
    b = buffers[i]
    if b.fixed_offset_bytes is not None:
        return b.fixed_offset_bytes
    o = 0
    while True:
        clash = None
        for j, oj in placed.items():
            a = buffers[j]
            if (
                a.lower < b.upper
                and b.lower < a.upper
                and oj < o + b.size_bytes
                and o < oj + a.size_bytes
            ):
                clash = oj + a.size_bytes
                break
        if clash is None:
            return o
        o = -(-clash // b.alignment_bytes) * b.alignment_bytes


def brute_force_min_height(buffers: list[Buffer]) -> int:
    """Minimum height, by first fit (lowest aligned hole) over every order of the buffers.

    Exact: in an optimal packing, take buffers by offset; first fit puts each at or
    below its optimal offset (everything before it is at or below its own), so some
    order reproduces a packing no higher than the optimum.
    """
    fixed = {
        i: b.fixed_offset_bytes for i, b in enumerate(buffers) if b.fixed_offset_bytes is not None
    }
    free = [i for i in range(len(buffers)) if i not in fixed]
    base = max((buffers[i].size_bytes + o for i, o in fixed.items()), default=0)
    best = None
    for order in itertools.permutations(free):
        placed: dict[int, int] = dict(fixed)  # type: ignore[arg-type]
        height = base
        for i in order:
            o = _lowest_fit(buffers, placed, i)
            placed[i] = o
            height = max(height, o + buffers[i].size_bytes)
            if best is not None and height >= best:
                break
        if best is None or height < best:
            best = height
    return best if best is not None else base


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
