"""Benchmark cells on a Dask distributed cluster (the optional ``memplan[dist]`` extra).

The task is the same plain function the local pool runs,
:func:`memplan.bench.worker.run_cell`, so rows are the same: inside the Dask task the
cell still runs in its own worker process, killed at time limit + grace, so a hung
solver cannot hang a Dask worker or the bench. ``address="local"`` starts a
``LocalCluster`` on 127.0.0.1 with ``jobs`` single-threaded worker processes::

    parent ── submit(run_cell, cell) ──► Dask worker ──► python -m memplan.bench.worker
       ▲                                                   (killed at limit + grace)
       └──────────── row (as_completed) ◄──────────────────┘

On a remote cluster, memplan (and any ``module:Class`` solver) must be importable by
the Dask workers' Python.

Ctrl-C: a terminal sends SIGINT to its whole foreground process group, so the
LocalCluster's worker processes would get it too and die printing tracebacks. They
ignore it instead (started with SIGINT ignored, which a spawned Python keeps, and this
module is their preload, whose :func:`dask_setup` ignores it again in a restarted
worker); the parent alone handles Ctrl-C, cancels the tasks and closes the cluster with
Dask's loggers quietened, so the bench prints only its own "interrupted" line.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from memplan.bench.cells import DEFAULT_GRACE_S, DEFAULT_WARMUP_LIMIT_S
from memplan.errors import ConfigError

if TYPE_CHECKING:
    from memplan.bench.cells import CellSpec, RowCallback


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--dask needs Dask distributed; install it with: pip install 'memplan[dist]'"
        ) from None
    return distributed


#: The LocalCluster workers' preload: this module, for its :func:`dask_setup`.
WORKER_PRELOAD = __name__


def ignore_sigint() -> bool:
    """Ignore SIGINT in this process (only the main thread may set a signal handler).

    Returns:
        Whether SIGINT is now ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return True


def dask_setup(worker: object) -> None:
    """Dask preload hook, run in each LocalCluster worker process as it starts.

    The bench's parent handles Ctrl-C and closes the cluster; a worker that took the
    terminal's SIGINT itself would die with a traceback in the middle of a task.

    Args:
        worker: the starting ``distributed.Worker`` (unused).
    """
    del worker
    ignore_sigint()


@contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Ignore SIGINT while the LocalCluster spawns its worker processes, so they start
    (and stay) with it ignored; the previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Show only critical messages of Dask's loggers (cancelled tasks, closing comms)
    while a cluster is shut down after an interruption or an error."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def run_cells_dask(
    cells: Sequence[CellSpec],
    on_row: RowCallback,
    *,
    address: str,
    jobs: int = 1,
    grace_s: float = DEFAULT_GRACE_S,
    warmup_limit_s: float = DEFAULT_WARMUP_LIMIT_S,
    on_start: Callable[[CellSpec], None] | None = None,
) -> None:
    """Run ``cells`` on a Dask cluster, calling ``on_row`` with each row as it arrives.

    Args:
        cells: the cells to run.
        on_row: called in this process with every finished row.
        address: ``"local"`` for a LocalCluster of ``jobs`` processes on 127.0.0.1, or a
            scheduler address such as ``tcp://10.0.0.5:8786``.
        jobs: worker processes of the LocalCluster (ignored for a remote cluster).
        grace_s: seconds past a cell's time limit before its process is killed.
        warmup_limit_s: seconds a cell's process may take to start and warm up.
        on_start: called with each cell when it is submitted.

    Raises:
        ConfigError: Dask is not installed, or the scheduler cannot be reached.
    """
    from memplan.bench.worker import run_cell

    distributed = _import_distributed()
    if not cells:
        return
    cluster = None
    quiet = ExitStack()
    try:
        if address == "local":
            if jobs < 1:
                raise ConfigError(f"--jobs must be at least 1, got {jobs}")
            with _workers_ignore_sigint():
                cluster = distributed.LocalCluster(
                    n_workers=jobs,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                    preload=[WORKER_PRELOAD],
                )
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(address, timeout="20s")
            except (OSError, TimeoutError) as error:
                raise ConfigError(
                    f"--dask {address}: cannot reach the Dask scheduler ({error}); check the "
                    "address (tcp://HOST:PORT) or use --dask local"
                ) from None
        with client:
            futures = []
            by_future: dict[Any, CellSpec] = {}
            for cell in cells:
                if on_start is not None:
                    on_start(cell)
                future = client.submit(
                    run_cell,
                    cell,
                    grace_s,
                    None,
                    warmup_limit_s,
                    key=f"memplan-cell-{cell.key}",
                    pure=False,
                )
                futures.append(future)
                by_future[future] = cell
            try:
                for future in distributed.as_completed(futures):
                    try:
                        row = future.result()
                    except Exception as error:  # the Dask worker itself died
                        row = _task_error_row(by_future[future], error)
                    if row is not None:
                        on_row(row)
            except BaseException:
                quiet.enter_context(_quiet_dask_logs())  # until the cluster is closed
                client.cancel(futures, force=True)
                raise
    finally:
        with quiet:
            if cluster is not None:
                cluster.close()


def _task_error_row(cell: CellSpec, error: BaseException) -> dict[str, Any]:
    """An error row for a cell whose Dask task failed outside the worker process."""
    from memplan.bench.worker import _empty_outcome

    row = cell.row_base()
    row.update(_empty_outcome("error", f"Dask task failed: {type(error).__name__}: {error}"))
    return row
