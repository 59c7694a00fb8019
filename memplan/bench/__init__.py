"""``memplan bench``: run solvers over workloads and budgets, and report.

:mod:`~memplan.bench.harness` builds the cells and runs them, each in its own killable
process (:mod:`~memplan.bench.worker`) or on a Dask cluster
(:mod:`~memplan.bench.dask_cluster`); :mod:`~memplan.bench.results` appends rows to a
JSON-lines file as they finish; :mod:`~memplan.bench.report` and
:mod:`~memplan.bench.figures` summarise them.
"""
