"""The exact allocator: MiniMalloc-style depth-first search within a budget.

:func:`decide` answers "do the buffers fit below ``capacity``?" with the kernel of
:mod:`.search_kernel`. Several static rank orders (MiniMalloc's pre-orderings) are
searched in turn, each resumed where it stopped, with a node limit that doubles every
round, so an easy order finishes early and no order's work is thrown away. The clock
and the stop event are checked between kernel calls of about :data:`SLICE_S` each.

:class:`ExactAllocator` is the registered allocator. With a capacity it decides; with
``minimize`` (or no capacity) it first takes the greedy portfolio's height, then
searches lower capacities (max live first, then bisection). Infeasibility at a
capacity rules out every lower height, so the largest infeasible probe + 1 is a
proven lower bound; the height is optimal when it meets that bound.

Memory is estimated before anything is built: when the section membership lists
(used only by the optional "unallocated floor" inference) would not fit the memory
limit the search runs without them, and when even that does not fit it stops at once,
saying so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from memplan.dsa import AllocationResult, Buffer, make_allocation
from memplan.solver import Budget, Status
from memplan.solvers.alloc import search_kernel as K
from memplan.solvers.alloc import search_state as S
from memplan.solvers.alloc.common import (
    AllocatorOptions,
    Prepared,
    aligned_live_bound,
    obvious_infeasibility,
    over_memory,
    prepare,
    stopped,
    stopped_mid_pass,
    sweep_that_fits,
    too_slow,
)
from memplan.solvers.alloc.greedy import best_greedy_packing, saturated_area, section_pressure
from memplan.solvers.alloc.intervals import Packed
from memplan.solvers.jit import KernelChoice

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
    columns = {
        "T": section_pressure(p),
        "W": p.upper - p.lower,
        "A": saturated_area(p),
        "Z": p.size,
    }
    sort_keys = [np.arange(p.n, dtype=I64)] + [-columns[k] for k in reversed(keys)]
    order = np.lexsort(sort_keys)
    rank = np.empty(p.n, I64)
    rank[order] = np.arange(p.n, dtype=I64)
    return rank


def search_memory_bytes(p: Packed, spans: int, floor_lists: bool, orders: int) -> int:
    """Estimated peak bytes of :func:`decide` beyond the packed arrays."""
    n, n_sec = p.n, int(p.sec_total.size)
    shared = 8 * (4 * n + 2 * n_sec) + (4 * spans if floor_lists else 0)
    per_order = 8 * (60 * n + 28 * n_sec)  # frames, pools, trail, per-buffer/section state
    return shared + orders * per_order


@dataclass(frozen=True)
class Statics:
    """What the searches of every pre-ordering at one capacity share."""

    inst: S.Instance  # the read-only arrays of the kernel
    sec_ptr: np.ndarray  # int64[S+1]: bounds of each section's membership list
    fixed_sec: np.ndarray  # bool[S]: the section holds a fixed buffer
    cap: int  # the capacity, in bytes
    floor_on: bool  # run the "unallocated floor" inference


def statics(p: Packed, cap: int, kernels: KernelChoice, floor_lists: bool) -> Statics:
    """Build the shared arrays of a search at capacity ``cap``."""
    live = p.size > 0
    is_fixed = (p.fixed >= 0) & live
    fixed_sec = np.zeros(p.sec_total.size + 1, I64)
    np.add.at(fixed_sec, p.sec_lo[is_fixed], 1)
    np.add.at(fixed_sec, p.sec_hi[is_fixed], -1)
    fixed_prefix = np.zeros(p.adj.size + 1, I64)
    fixed_prefix[1:] = np.cumsum(is_fixed[p.adj])
    near_fixed = fixed_prefix[p.ptr[1:]] - fixed_prefix[p.ptr[:-1]] > 0
    sec_ptr, members = kernels(S.section_members)(p, floor_lists)
    inst = S.instance(p, p.upper - p.lower, saturated_area(p), near_fixed, members)
    return Statics(
        inst=inst,
        sec_ptr=sec_ptr,
        fixed_sec=np.cumsum(fixed_sec)[: p.sec_total.size] > 0,
        cap=int(cap),
        floor_on=bool(floor_lists and UNALLOCATED_FLOOR),
    )


class Search:
    """One resumable search: one pre-ordering at one capacity."""

    def __init__(self, p: Packed, shared: Statics, keys: str, kernels: KernelChoice) -> None:
        codes = ["TWAZ".index(k) for k in keys] if DYNAMIC_RANKS else []
        self.inst = shared.inst  # the read-only arrays
        self.state = S.new_state(
            p.n, shared.sec_ptr, shared.fixed_sec, shared.cap, shared.floor_on, codes
        )
        self.state.bst[S.RANK] = preorder_rank(p, keys)
        self.kernels = kernels  # Python or compiled kernels
        kernels(S.init_state)(self.inst, self.state)

    @property
    def nodes(self) -> int:
        """Nodes expanded so far."""
        return int(self.state.st[S.ST_NODES])

    @property
    def offsets(self) -> np.ndarray:
        """The offsets (meaningful after SOLVED)."""
        return self.state.bst[S.OFFSET]

    @property
    def attempts(self) -> int:
        """Placements tried so far."""
        return int(self.state.st[S.ST_ATTEMPTS])

    def advance(self, nodes: int, attempts: int = S.NO_ATTEMPT_LIMIT) -> int:
        """Run at most ``nodes`` more nodes and ``attempts`` more placements (at least
        one); return the kernel's status code."""
        self.state.st[S.ST_NODE_LIMIT] = self.nodes + nodes
        self.state.st[S.ST_ATTEMPT_LIMIT] = min(
            self.attempts + max(attempts, 1), S.NO_ATTEMPT_LIMIT
        )
        while True:
            code = int(self.kernels(K.run)(*self.inst, *self.state))
            if code not in (S.NEED_POOL, S.NEED_TRAIL):
                return code
            self.state = S.grown(self.state, code)


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of one decision search."""

    status: Status  # FEASIBLE (offsets found), INFEASIBLE (proven) or TIMEOUT
    offsets: np.ndarray | None  # int64[n] when FEASIBLE
    nodes: int  # search nodes expanded over all pre-orderings


def decide(
    job: Prepared,
    capacity: int,
    budget: Budget,
    until: float | None = None,
    floor_lists: bool = True,
    node_limit: int = 0,
) -> Decision:
    """Search for a packing of ``job`` below ``capacity`` (stops at ``until``, monotonic,
    or after ``node_limit`` nodes over all pre-orderings when it is not 0).

    The time, the stop event and ``until`` are checked between kernel calls, and
    between building the searches of the pre-orderings.
    """
    p = job.packed
    if obvious_infeasibility(p, capacity) is not None:
        return Decision(Status.INFEASIBLE, None, 0)
    shared = statics(p, capacity, job.kernels, floor_lists)
    searches: list[Search] = []
    limit = max(p.n, 16)
    # Each call pauses at whichever comes first; both follow the rate of the last call,
    # so that one takes about SLICE_S. Nodes alone were not enough: on randwire_ws_large
    # at M_H a node tried 180 placements on average, and one call of 2,134 nodes took 18 s
    # (Ctrl-C waited for it).
    slice_nodes, slice_attempts = 1, 1  # grows fourfold a call while calls are quick

    def out_of_time() -> bool:
        return budget.should_stop() or (until is not None and time.monotonic() >= until)

    while True:
        for k, keys in enumerate(PREORDERINGS):
            if out_of_time():
                return Decision(Status.TIMEOUT, None, sum(s.nodes for s in searches))
            if k == len(searches):
                searches.append(Search(p, shared, keys, job.kernels))
            search = searches[k]
            while search.nodes < limit:
                if out_of_time():
                    return Decision(Status.TIMEOUT, None, sum(s.nodes for s in searches))
                step = min(slice_nodes, limit - search.nodes)
                if node_limit:
                    left = node_limit - sum(s.nodes for s in searches)
                    if left <= 0:  # a count, not a clock: the same on every machine
                        return Decision(Status.TIMEOUT, None, node_limit - left)
                    step = min(step, left)
                nodes, attempts, now = search.nodes, search.attempts, time.perf_counter()
                code = search.advance(step, slice_attempts)
                if code == S.PAUSED:
                    scale = min(SLICE_S / max(time.perf_counter() - now, 1e-6), 4.0)
                    done = max(search.nodes - nodes, 1), max(search.attempts - attempts, 1)
                    # Down to one: on a dense instance one placement can take 20 ms
                    # (a floor of 64 made calls of 1.25 s, past the time limit).
                    slice_nodes = int(min(max(done[0] * scale, 1), 1_000_000))
                    slice_attempts = int(min(max(done[1] * scale, 1), 100_000_000))
                if code in (S.SOLVED, S.INFEASIBLE):
                    total = sum(s.nodes for s in searches)
                    if code == S.SOLVED:
                        return Decision(Status.FEASIBLE, search.offsets.copy(), total)
                    return Decision(Status.INFEASIBLE, None, total)
        limit *= 2


@dataclass(frozen=True, slots=True)
class ExactAllocator(AllocatorOptions):
    """Exact search at a capacity, or height minimisation (see the module docstring)."""

    name: ClassVar[str] = "exact"

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        """FEASIBLE (or OPTIMAL) with offsets, INFEASIBLE when proven, else TIMEOUT.

        With ``minimize`` a TIMEOUT still carries the best packing found (the
        portfolio's at worst).
        """
        job = prepare(self, buffers, capacity_bytes, budget)
        if not isinstance(job, Prepared):
            return job
        budget = job.budget  # keeps back the time the check of the result takes
        if job.capacity is not None and not self.minimize:
            return self._decision(job, budget)
        return self._minimize(job, budget)

    @staticmethod
    def _plan(job: Prepared, budget: Budget) -> tuple[bool | None, str]:
        """Whether the search builds its section lists; None (and why) if it cannot run.

        The lists go first when memory is short; the search does not start when even
        without them it would exceed the memory limit, or when building it would
        outlast the time left.
        """
        what = f"the exact search over {job.packed.n} buffers"
        for lists in (True, False):
            need = search_memory_bytes(job.packed, job.spans, lists, len(PREORDERINGS))
            if need <= job.memory_limit_bytes:
                break
        else:
            return None, over_memory(what, need, job.memory_limit_bytes)
        # Building the section lists and one pre-ordering's state visits the spans 5 times.
        slow = too_slow(what, job.packed.n + 5 * job.spans, budget, job.kernels)
        return (None, slow) if slow is not None else (lists, "")

    def _decision(self, job: Prepared, budget: Budget) -> AllocationResult:
        assert job.capacity is not None
        floor_lists, why = self._plan(job, budget)
        if floor_lists is None and obvious_infeasibility(job.packed, job.capacity) is None:
            return stopped(self, job.buffers, job.capacity, budget, why, job.max_live)
        stats: dict[str, object] = {"unallocated_floor": bool(floor_lists)}
        # Kept if the search finds no packing in time (60,000 buffers at twice their max
        # live, say); not with node_limit, which is there to say what the search alone does.
        fallback = None if self.node_limit else sweep_that_fits(job, budget)
        decision = decide(
            job, job.cap, budget, floor_lists=bool(floor_lists), node_limit=self.node_limit
        )
        stats["nodes"] = decision.nodes
        nodes = f"{decision.nodes} search nodes"
        if decision.status is Status.FEASIBLE:
            assert decision.offsets is not None
            return self._result(job, budget, Status.FEASIBLE, decision.offsets, nodes, stats)
        if decision.status is Status.INFEASIBLE:
            why = (
                obvious_infeasibility(job.packed, job.capacity, job.buffers)
                or "the search space is exhausted"
            )
            message = f"no packing fits {job.capacity} B: {why} ({nodes})"
            return self._result(
                job, budget, Status.INFEASIBLE, None, message, stats, bound=job.capacity + 1
            )
        message = f"no packing within {job.capacity} B found before the time ran out ({nodes})"
        if self.node_limit and decision.nodes >= self.node_limit:
            message = f"no packing within {job.capacity} B found within node_limit ({nodes})"
        if budget.interrupted():
            message = f"stopped: no packing within {job.capacity} B found yet ({nodes})"
        if fallback is not None:  # the sweep's packing fits: it answers the question too
            kept = fallback.result(
                self, job.buffers, job.capacity, budget, "", Status.FEASIBLE, message
            )
            return replace(kept, stats={**kept.stats, **stats})
        return self._result(job, budget, Status.TIMEOUT, None, message, stats)

    def _minimize(self, job: Prepared, budget: Budget) -> AllocationResult:
        """Lower the portfolio's height by decisions at max live, the capacity, bisection."""
        p = job.packed
        found = best_greedy_packing(job, True, self.seed, budget)
        if found is None:
            return stopped_mid_pass(self, job, budget)
        best, best_h = found[0], int(np.max(found[0] + p.size))
        bound = aligned_live_bound(p)  # proven: no packing is lower
        lo = bound  # lowest height not yet ruled out or tried
        probe = lo  # max live first: a packing there is optimal outright
        nodes = 0
        floor_lists, skipped = self._plan(job, budget) if lo < best_h else (None, "")
        stats: dict[str, object] = {}
        if floor_lists is not None:
            stats["unallocated_floor"] = floor_lists
        while floor_lists is not None and lo < best_h and not budget.should_stop():
            if self.node_limit and nodes >= self.node_limit:
                break
            # Leave time for later probes unless this one closes the gap.
            left = budget.remaining_s()
            share = left if probe + 1 >= best_h else left / 2
            left_nodes = self.node_limit - nodes if self.node_limit else 0
            until = time.monotonic() + share
            decision = decide(job, probe, budget, until, bool(floor_lists), left_nodes)
            nodes += decision.nodes
            if decision.status is Status.FEASIBLE:
                assert decision.offsets is not None
                best, best_h = decision.offsets, int(np.max(decision.offsets + p.size))
            else:
                if decision.status is Status.INFEASIBLE:
                    bound = max(bound, probe + 1)
                lo = probe + 1
            cap = job.capacity
            if cap is not None and lo <= cap < best_h and probe != cap:
                probe = cap  # make sure of a packing that fits, if one exists
            else:
                probe = (lo + best_h - 1) // 2
        stats["nodes"] = nodes
        ended = "the time ran out"
        if self.node_limit and nodes >= self.node_limit:
            ended = "node_limit was reached"
        if budget.interrupted():
            ended = "it was stopped"
        if job.capacity is not None and best_h > job.capacity:
            if bound > job.capacity:
                message = f"no packing fits {job.capacity} B: every packing is >= {bound} B"
                return self._result(job, budget, Status.INFEASIBLE, best, message, stats, bound)
            message = f"lowest height found {best_h} B > capacity {job.capacity} B; {ended}"
            if skipped:
                message = f"lowest height found {best_h} B > capacity {job.capacity} B; {skipped}"
            return self._result(job, budget, Status.TIMEOUT, best, message, stats, bound)
        if best_h <= bound:
            return self._result(job, budget, Status.FEASIBLE, best, "", stats, bound)
        message = (
            f"height {best_h} B not proven minimal before {ended}; "
            f"every packing is at least {bound} B high"
        )
        if skipped:
            message = f"the portfolio's packing, not proven minimal: {skipped}"
        return self._result(job, budget, Status.TIMEOUT, best, message, stats, bound)

    def _result(
        self,
        job: Prepared,
        budget: Budget,
        status: Status,
        offsets: np.ndarray | None,
        message: str,
        stats: dict[str, object],
        bound: int | None = None,
    ) -> AllocationResult:
        return make_allocation(
            self,
            job.buffers,
            job.capacity,
            status,
            None if offsets is None else offsets.tolist(),
            budget,
            max_live=job.max_live,
            lower_bound_bytes=bound,
            message=message,
            stats={"kernels": job.kernels.used, **stats},
        )
