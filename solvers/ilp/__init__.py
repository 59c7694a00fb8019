"""The COSMA ILP solver: a faithful time-indexed MILP and a fast CP-SAT form.

``IlpSolver`` is registered as ``ilp``; it declares the ``exact_min_peak`` capability
(:meth:`IlpSolver.exact_min_peak` proves M_P). OR-Tools, PuLP and highspy are imported
only when a backend runs.
"""

from __future__ import annotations

from memplan.solvers.ilp.solver import IlpSolver

__all__ = ["IlpSolver"]
