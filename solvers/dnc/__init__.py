"""The divide-and-conquer solver ``dnc`` (CP-SAT parts at narrow cuts, then windows)."""

from __future__ import annotations

from memplan.solvers.dnc.solver import DncSolver

__all__ = ["DncSolver"]
