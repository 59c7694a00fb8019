"""``memplan bench``: run solvers over workloads and budgets, and report.

:mod:`~memplan.bench.harness` builds the cells (:mod:`~memplan.bench.cells`: what one
solve needs and its resume key; :mod:`~memplan.bench.specs`: solver specs such as
``ilp[mode=fixed]``; :mod:`~memplan.bench.versions`: a solver's version;
:mod:`~memplan.bench.presets`: the project's named runs) and runs them, each in its own
killable process (:mod:`~memplan.bench.worker`, which warms the solver up before its
clock starts) or on a Dask cluster (:mod:`~memplan.bench.dask_cluster`);
:mod:`~memplan.bench.results` appends rows to a JSON-lines file as they finish;
:mod:`~memplan.bench.rows` merges them, :mod:`~memplan.bench.report`,
:mod:`~memplan.bench.terminal` and :mod:`~memplan.bench.figures` summarise them.
"""
