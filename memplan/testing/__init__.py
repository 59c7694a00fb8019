"""The conformance kit: checks that any memplan plug-in must pass, for third parties too.

Like scikit-learn's ``check_estimator`` or Gymnasium's ``check_env``::

    from memplan.testing import check_allocator, check_solver, random_dag
    check_solver("my_package.module:MySolver")   # raises AssertionError naming the case
    check_allocator("exact")                     # the same for an allocator plug-in

:mod:`~memplan.testing.solvers` holds the solver checks,
:mod:`~memplan.testing.allocators` the allocator checks (and seeded random buffers),
:mod:`~memplan.testing.plugins` the protocol checks both kinds share,
:mod:`~memplan.testing.graphs` seeded random graphs, :mod:`~memplan.testing.bruteforce`
the exact optima of tiny problems by exhaustive search (what bounds and OPTIMAL claims are
held to), and :mod:`~memplan.testing.plans` large plans for benchmarks.
"""

from __future__ import annotations

from memplan.testing.allocators import check_allocator, random_buffers
from memplan.testing.bruteforce import (
    enumerate_min_peak,
    min_traffic,
    min_traffic_for_order,
    topological_orders,
)
from memplan.testing.graphs import random_dag, tiny_spill_graph
from memplan.testing.plans import large_random_plan
from memplan.testing.solvers import check_solver

__all__ = [
    "check_allocator",
    "check_solver",
    "enumerate_min_peak",
    "large_random_plan",
    "min_traffic",
    "min_traffic_for_order",
    "random_buffers",
    "random_dag",
    "tiny_spill_graph",
    "topological_orders",
]
