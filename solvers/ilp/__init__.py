"""The COSMA ILP solver: a faithful time-indexed MILP and a fast CP-SAT form.

``IlpSolver`` is registered as ``ilp``; :func:`exact_min_peak` computes a proven M_P.
OR-Tools, PuLP and highspy are imported only when a backend runs.
"""

from __future__ import annotations

from memplan.solvers.ilp.solver import IlpSolver, exact_min_peak

__all__ = ["IlpSolver", "exact_min_peak"]
