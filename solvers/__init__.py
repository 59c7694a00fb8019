"""Interchangeable memplan solvers, found by the core through entry points."""
