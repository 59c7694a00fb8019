"""Files memplan reads and writes: models, plan files, MiniMalloc CSVs, safe output.

:mod:`~memplan.io.files` writes outputs safely (atomic replace, refusing devices and
FIFOs); :mod:`~memplan.io.loading` reads a model by path or workload name;
:mod:`~memplan.io.planfile` is the versioned plan file; :mod:`~memplan.io.buffers_csv`
the MiniMalloc CSV exchange format.
"""
