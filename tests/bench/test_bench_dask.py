"""The benchmark on a Dask LocalCluster gives the same rows as the local process pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memplan.bench.cells import TIMING_FIELDS
from memplan.bench.harness import execute_bench, load_results, prepare_bench

pytest.importorskip("distributed")

from test_bench import KEEP, RAISE, SLEEP, SPILL, TESTS_DIR, config, write_suite


@pytest.fixture(autouse=True)
def solvers_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fake_solvers`` importable here, in Dask worker processes and in cell workers."""
    monkeypatch.syspath_prepend(str(TESTS_DIR))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), old])))


def test_dask_local_cluster_gives_the_process_pool_rows(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "g", 2)
    solvers = (SPILL, KEEP, RAISE, SLEEP)
    common = {"budgets": ("MR", "MP"), "jobs": 2, "time_limit_s": 0.5, "grace_s": 1.5}
    local = prepare_bench(config(suite, tmp_path / "local", solvers, **common))
    assert execute_bench(local) == 16
    dask = prepare_bench(config(suite, tmp_path / "dask", solvers, dask="local", **common))
    assert execute_bench(dask) == 16

    def comparable(folder: Path) -> dict[str, dict]:
        return {
            row["key"]: {k: v for k, v in row.items() if k not in TIMING_FIELDS}
            for row in load_results(folder)
        }

    local_rows, dask_rows = comparable(tmp_path / "local"), comparable(tmp_path / "dask")
    assert local_rows == dask_rows
    statuses = {(r["solver"], r["status"]) for r in dask_rows.values()}
    assert (SLEEP, "timeout") in statuses and (RAISE, "error") in statuses
    assert all(r["killed"] for r in dask_rows.values() if r["solver"] == SLEEP)
    # a rerun on Dask resumes: nothing left to do
    assert (
        prepare_bench(config(suite, tmp_path / "dask", solvers, dask="local", **common)).pending
        == []
    )
