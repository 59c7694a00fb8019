"""Every installed allocator plug-in against the conformance suite (memplan.testing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import pytest

from memplan.dsa import (
    AllocationResult,
    Buffer,
    available_allocators,
    make_allocation,
    make_allocator,
    max_live_bytes,
)
from memplan.solver import Budget, Status
from memplan.solvers.alloc.common import AllocatorOptions
from memplan.testing import check_allocator
from memplan.testing.allocators import check_allocator_class, instances, random_buffers

ALLOCATORS = available_allocators()


@pytest.mark.parametrize("name", ALLOCATORS)
def test_allocator_conformance(name: str) -> None:
    """The whole suite, with compiled kernels (the Python ones are compared with them)."""
    runs = check_allocator(make_allocator(name, {"kernels": "compiled"}))
    assert runs == sum(2 * (4 if len(b) > 6 else 6) for _, b in instances())


@pytest.mark.parametrize("name", ALLOCATORS)
def test_allocator_protocol_by_name(name: str) -> None:
    check_allocator_class(name)


def test_suite_runs_on_the_python_kernels_too() -> None:
    tiny = [(n, b) for n, b in instances() if n.startswith("tiny")]
    for name in ("portfolio", "exact"):
        assert check_allocator(make_allocator(name, {"kernels": "python"}), cases=tiny) > 0


@dataclasses.dataclass(frozen=True)
class Overlapper(AllocatorOptions):
    """A broken allocator: stacks nothing, every buffer at offset 0."""

    name: ClassVar[str] = "overlapper"

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        return AllocationResult(
            Status.FEASIBLE,
            tuple(0 for _ in buffers),
            max((b.size_bytes for b in buffers), default=0),
            capacity_bytes,
            max_live_bytes(buffers),
            max_live_bytes(buffers),
            self.name,
            0.0,
        )


@dataclasses.dataclass(frozen=True)
class Boaster(AllocatorOptions):
    """A broken allocator: a valid packing, but it claims INFEASIBLE at a roomy capacity."""

    name: ClassVar[str] = "boaster"

    def allocate(
        self, buffers: Sequence[Buffer], capacity_bytes: int | None, budget: Budget
    ) -> AllocationResult:
        packed = make_allocator("portfolio").allocate(buffers, capacity_bytes, budget)
        return dataclasses.replace(packed, status=Status.INFEASIBLE, offsets_bytes=None)


def test_suite_catches_broken_allocators() -> None:
    """The checks can fail: overlapping offsets and a false infeasibility are caught."""
    case = [("mixed", random_buffers(5, 12, horizon=6, max_size=8))]
    with pytest.raises(AssertionError, match="invalid packing"):
        check_allocator(Overlapper(), cases=case)
    with pytest.raises(AssertionError, match=r"INFEASIBLE with a fitting packing|no packing"):
        check_allocator(Boaster(), cases=case)


def test_make_allocation_keeps_allocators_honest() -> None:
    """The shared result builder validates, so a plug-in that uses it cannot lie."""
    from memplan.errors import InvalidPlanError

    buffers = random_buffers(5, 12, horizon=6, max_size=8)
    with pytest.raises(InvalidPlanError):
        make_allocation(
            Overlapper(),
            buffers,
            None,
            Status.FEASIBLE,
            [0] * len(buffers),
            Budget(1),
            max_live=max_live_bytes(buffers),
        )
