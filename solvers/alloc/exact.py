"""The exact allocator: MiniMalloc-style depth-first search with a time limit.

:func:`decide` answers "do the buffers fit below ``capacity``?" with the kernel of
:mod:`.search_kernel`. Several static rank orders (MiniMalloc's pre-orderings) are
searched in turn, each resumed where it stopped, with a node limit that doubles every
round, so an easy order finishes early and no order's work is thrown away.

:func:`exact` is the registered allocator. With a capacity it decides; with
``minimize`` (or no capacity) it first takes the greedy portfolio's height, then
searches lower capacities (max live first, then bisection), and reports the height as
proven optimal when it equals max live or a capacity one byte lower is infeasible.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memplan.dsa import AllocationResult, AllocationStatus, Buffer
from memplan.solvers.alloc import search_kernel as K
from memplan.solvers.alloc import search_state as S
from memplan.solvers.alloc.common import empty_result, obvious_infeasibility
from memplan.solvers.alloc.greedy import section_pressure
from memplan.solvers.alloc.intervals import Packed, pack

I64 = np.int64

#: Static pre-orderings tried round-robin (keys, most significant first):
#: T = largest section total, W = lifetime length, A = area, Z = size.
PREORDERINGS: tuple[str, ...] = ("WAT", "TAW", "TWA")

#: Raise section floors to the lowest minimum offset of their unplaced buffers.
UNALLOCATED_FLOOR = True

#: Re-rank each new sub-partition with the current section totals (as MiniMalloc).
DYNAMIC_RANKS = True

#: Wall time of one kernel call between two looks at the clock, in seconds.
SLICE_S = 0.02


def preorder_rank(p: Packed, keys: str) -> np.ndarray:
    """Return each buffer's rank under a pre-ordering named by ``keys`` (descending keys)."""
    width = p.upper - p.lower
    columns = {
        "T": section_pressure(p),
        "W": width,
        "A": width * p.size,
        "Z": p.size,
    }
    sort_keys = [np.arange(p.n, dtype=I64)] + [-columns[k] for k in reversed(keys)]
    order = np.lexsort(sort_keys)
    rank = np.empty(p.n, I64)
    rank[order] = np.arange(p.n, dtype=I64)
    return rank


class _SearchState:
    """The arrays of one resumable search (one pre-ordering, one capacity)."""

    def __init__(self, p: Packed, keys: str, capacity: int) -> None:
        self.p = p
        self.cap = capacity
        self.rank = preorder_rank(p, keys)
        self.keys = np.array(["TWAZ".index(k) for k in keys], dtype=I64)
        self.width = p.upper - p.lower
        n, n_sec = p.n, int(p.sec_total.size)
        live = p.size > 0
        lo, hi = p.sec_lo[live], p.sec_hi[live]
        spans = hi - lo
        counts = np.zeros(n_sec + 1, I64)
        np.add.at(counts, lo, 1)
        np.add.at(counts, hi, -1)
        sec_ptr = np.zeros(n_sec + 1, I64)
        sec_ptr[1:] = np.cumsum(np.cumsum(counts)[:n_sec])
        members = np.repeat(np.flatnonzero(live).astype(I64), spans)
        first = np.repeat(np.cumsum(spans) - spans, spans)
        sections = np.repeat(lo, spans) + (np.arange(members.size, dtype=I64) - first)
        order = np.argsort(sections, kind="stable")
        self.sec_ptr = sec_ptr
        self.sec_buf = members[order]
        is_fixed = (p.fixed >= 0) & live
        fixed_sec = np.zeros(n_sec + 1, I64)
        np.add.at(fixed_sec, p.sec_lo[is_fixed], 1)
        np.add.at(fixed_sec, p.sec_hi[is_fixed], -1)
        self.fixed_sec = np.cumsum(fixed_sec)[:n_sec] > 0
        fixed_prefix = np.zeros(p.adj.size + 1, I64)
        fixed_prefix[1:] = np.cumsum(is_fixed[p.adj])
        near = fixed_prefix[p.ptr[1:]] - fixed_prefix[p.ptr[:-1]] > 0
        self.near_fixed = near
        self.offset = np.empty(n, I64)
        self.minoff = np.zeros(n, I64)
        self.floor = np.zeros(n_sec, I64)
        self.total = np.zeros(n_sec, I64)
        self.cuts = np.zeros(max(n_sec - 1, 0), I64)
        self.sec_stamp = np.zeros(n_sec, I64)
        f = 2 * n + 4
        self.frames = {
            name: np.zeros(f, I64)
            for name in (
                "ftype",
                "fsa",
                "fsb",
                "fpl",
                "fpln",
                "fcand",
                "fcandn",
                "fnext",
                "flast_off",
                "flast_rank",
                "fmark",
                "fminh",
                "fexp",
                "fpbase",
                "fcbase",
                "fhat",
            )
        }
        self.plist = np.zeros(4 * n + 16, I64)
        self.cand_buf = np.zeros(4 * n + 16, I64)
        self.cand_off = np.zeros(4 * n + 16, I64)
        t = 4 * (n + 2 * n_sec) + 16  # grows on demand
        self.trail_kind = np.zeros(t, I64)
        self.trail_idx = np.zeros(t, I64)
        self.trail_val = np.zeros(t, I64)
        self.st = np.zeros(S.ST_LEN, I64)
        fr = self.frames
        S.init_state(
            p.size,
            p.align,
            p.fixed,
            p.ptr,
            p.adj,
            p.sec_lo,
            p.sec_hi,
            self.near_fixed,
            self.rank,
            self.offset,
            self.minoff,
            self.floor,
            self.total,
            self.cuts,
            self.plist,
            self.st,
            fr["ftype"],
            fr["fsa"],
            fr["fsb"],
            fr["fpl"],
            fr["fpln"],
            fr["fnext"],
            fr["fexp"],
            fr["fpbase"],
            fr["fcbase"],
        )
        self.done: int | None = None

    @property
    def nodes(self) -> int:
        """Nodes expanded so far."""
        return int(self.st[S.ST_NODES])

    def _grow(self, code: int) -> None:
        """Double the pool or trail that the kernel found too small."""
        names = {
            S.NEED_PLIST: ("plist",),
            S.NEED_CAND: ("cand_buf", "cand_off"),
            S.NEED_TRAIL: ("trail_kind", "trail_idx", "trail_val"),
        }[code]
        for name in names:
            old = getattr(self, name)
            setattr(self, name, np.concatenate([old, np.zeros_like(old)]))

    def advance(self, budget: int) -> int:
        """Run at most ``budget`` nodes; return the kernel's status code."""
        p, fr = self.p, self.frames
        while True:
            code = K.run(
                self.cap,
                budget,
                UNALLOCATED_FLOOR,
                self.keys,
                len(self.keys) if DYNAMIC_RANKS else 0,
                self.width,
                p.size,
                p.align,
                p.fixed,
                p.ptr,
                p.adj,
                p.sec_lo,
                p.sec_hi,
                self.sec_ptr,
                self.sec_buf,
                self.fixed_sec,
                self.near_fixed,
                self.rank,
                self.offset,
                self.minoff,
                self.floor,
                self.total,
                self.cuts,
                self.sec_stamp,
                fr["ftype"],
                fr["fsa"],
                fr["fsb"],
                fr["fpl"],
                fr["fpln"],
                fr["fcand"],
                fr["fcandn"],
                fr["fnext"],
                fr["flast_off"],
                fr["flast_rank"],
                fr["fmark"],
                fr["fminh"],
                fr["fexp"],
                fr["fpbase"],
                fr["fcbase"],
                fr["fhat"],
                self.plist,
                self.cand_buf,
                self.cand_off,
                self.trail_kind,
                self.trail_idx,
                self.trail_val,
                self.st,
            )
            if code not in (S.NEED_PLIST, S.NEED_CAND, S.NEED_TRAIL):
                if code in (S.SOLVED, S.INFEASIBLE):
                    self.done = int(code)
                return int(code)
            self._grow(int(code))


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of one decision search."""

    status: AllocationStatus  # SOLVED, INFEASIBLE or TIMEOUT
    offsets: np.ndarray | None  # int64[n] when SOLVED
    nodes: int  # search nodes expanded over all pre-orderings


def decide(
    p: Packed, capacity: int, deadline: float, preorderings: Sequence[str] | None = None
) -> Decision:
    """Search for a packing of ``p`` below ``capacity`` until ``deadline`` (perf_counter).

    ``preorderings`` defaults to :data:`PREORDERINGS`.
    """
    if preorderings is None:
        preorderings = PREORDERINGS
    why = obvious_infeasibility(p, capacity)
    if why is not None:
        return Decision(AllocationStatus.INFEASIBLE, None, 0)
    states = [_SearchState(p, keys, capacity) for keys in preorderings]
    limit = max(p.n, 16)
    slice_nodes = 64  # adapted so that one call takes about SLICE_S
    while True:
        for state in states:
            while state.nodes < limit:
                now = time.perf_counter()
                if now >= deadline:
                    return Decision(AllocationStatus.TIMEOUT, None, sum(s.nodes for s in states))
                before = state.nodes
                code = state.advance(min(slice_nodes, limit - state.nodes))
                spent = time.perf_counter() - now
                if state.nodes - before >= slice_nodes:
                    scale = SLICE_S / max(spent, 1e-6)
                    slice_nodes = int(min(max(slice_nodes * min(scale, 4.0), 16), 1_000_000))
                total = sum(s.nodes for s in states)
                if code == S.SOLVED:
                    return Decision(AllocationStatus.SOLVED, state.offset.copy(), total)
                if code == S.INFEASIBLE:
                    return Decision(AllocationStatus.INFEASIBLE, None, total)
        limit *= 2


def exact(
    buffers: Sequence[Buffer],
    capacity_bytes: int | None,
    *,
    time_limit_s: float = 60.0,
    minimize: bool = False,
    seed: int = 0,
) -> AllocationResult:
    """Exact search at a capacity, or height minimisation (see the module docstring).

    Returns SOLVED with offsets, INFEASIBLE when proven, or TIMEOUT; with ``minimize``
    a TIMEOUT still carries the best packing found (the portfolio's at worst).
    """
    from memplan.solvers.alloc.greedy import portfolio

    start = time.perf_counter()
    deadline = start + time_limit_s
    if not buffers:
        return empty_result(buffers, "exact", start)
    p = pack(buffers)
    if capacity_bytes is not None and not minimize:
        decision = decide(p, capacity_bytes, deadline)
        return _result(p, decision, capacity_bytes, start)
    # Minimise: the portfolio gives an upper bound, the search lowers it.
    greedy = portfolio(buffers, None, minimize=True, seed=seed)
    assert greedy.offsets_bytes is not None and greedy.height_bytes is not None
    best = np.asarray(greedy.offsets_bytes, dtype=I64)
    best_h = greedy.height_bytes
    lo = p.max_live  # no height below lo is possible
    proven = True  # every height below lo was proven impossible (not just timed out)
    probe = lo  # max live first: a packing there is optimal outright
    while lo < best_h:
        now = time.perf_counter()
        if now >= deadline:
            proven = False
            break
        # Leave time for later probes unless this one closes the gap.
        share = (deadline - now) if probe + 1 >= best_h else (deadline - now) / 2
        decision = decide(p, probe, now + share)
        if decision.status is AllocationStatus.SOLVED:
            assert decision.offsets is not None
            best = decision.offsets
            best_h = int(np.max(best + p.size))
        else:
            # Infeasible at a capacity rules out every lower height too.
            proven = decision.status is AllocationStatus.INFEASIBLE
            lo = probe + 1
        if capacity_bytes is not None and lo <= capacity_bytes < best_h and probe != capacity_bytes:
            probe = capacity_bytes  # make sure of a packing that fits, if one exists
        else:
            probe = (lo + best_h - 1) // 2
    optimal = best_h <= p.max_live or (proven and lo >= best_h)
    return _finish(p, best, best_h, capacity_bytes, start, optimal, lo)


def _finish(
    p: Packed,
    offsets: np.ndarray,
    height: int,
    capacity: int | None,
    start: float,
    optimal: bool,
    lower_bound: int,
) -> AllocationResult:
    """Result of a minimisation run (``lower_bound``: no lower height was found)."""
    offs = tuple(offsets.tolist())
    wall = time.perf_counter() - start
    if capacity is not None and height > capacity:
        why = obvious_infeasibility(p, capacity)
        if why is not None or optimal:
            msg = (
                f"infeasible: {why}"
                if why
                else (f"the lowest possible height is {height} B > capacity {capacity} B")
            )
            return AllocationResult(
                AllocationStatus.INFEASIBLE,
                offs,
                height,
                p.max_live,
                optimal,
                "exact",
                wall,
                msg,
            )
        return AllocationResult(
            AllocationStatus.TIMEOUT,
            offs,
            height,
            p.max_live,
            False,
            "exact",
            wall,
            f"lowest height found {height} B > capacity {capacity} B; out of time",
        )
    msg = (
        ""
        if optimal
        else (
            f"height {height} B not proven optimal "
            f"(no packing at {lower_bound - 1} B found in time)"
        )
    )
    return AllocationResult(
        AllocationStatus.SOLVED, offs, height, p.max_live, optimal, "exact", wall, msg
    )


def _result(p: Packed, decision: Decision, capacity: int, start: float) -> AllocationResult:
    """Result of a decision run."""
    wall = time.perf_counter() - start
    if decision.status is AllocationStatus.SOLVED:
        assert decision.offsets is not None
        offs = tuple(decision.offsets.tolist())
        height = int(np.max(decision.offsets + p.size))
        return AllocationResult(
            AllocationStatus.SOLVED,
            offs,
            height,
            p.max_live,
            height <= p.max_live,
            "exact",
            wall,
            f"{decision.nodes} search nodes",
        )
    if decision.status is AllocationStatus.INFEASIBLE:
        why = obvious_infeasibility(p, capacity) or "the search space is exhausted"
        return AllocationResult(
            AllocationStatus.INFEASIBLE,
            None,
            None,
            p.max_live,
            False,
            "exact",
            wall,
            f"infeasible at {capacity} B: {why} ({decision.nodes} search nodes)",
        )
    return AllocationResult(
        AllocationStatus.TIMEOUT,
        None,
        None,
        p.max_live,
        False,
        "exact",
        wall,
        f"no packing below {capacity} B found in the time limit ({decision.nodes} nodes)",
    )
