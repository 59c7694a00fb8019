"""The benchmark harness: workloads, cells, the results file, resume and the local runner.

A *cell* is one (workload, scope, budget, solver) solve. The parent process loads every
workload once, resolves the budgets once per workload and scope (so every solver of a
cell set sees the same capacity), and hands the cells that the results file does not
hold yet to a pool::

    workloads ─► scopes ─► budgets (MR, MH, MP, sizes: resolved here, once)
        └─► cells × solvers ─► skip keys already in results.jsonl (resume)
              └─► N threads, each runs one cell in its own process
                  (memplan.bench.worker), killed at time limit + grace
                    └─► one JSON line per finished cell, flushed and fsynced

Only the parent writes the results file, one complete line per cell, so a crash,
``kill -9`` or Ctrl-C loses at most the cells that were running; a line cut short by a
crash is skipped on reading. Running the same command again skips every key already
present (see :func:`memplan.bench.cells.cell_key`: the key holds the resolved capacity,
whether M_P was proven and the solver's version, so a changed answer is never resumed).
A folder holds rows of one time limit, accelerator, element size and M_P proof budget:
another value is refused before anything runs (:mod:`memplan.bench.runrecord`).

Validation: the worker process (harness code, not the solver) re-runs the validator and
the cost model on every returned plan and records ``valid`` and its own cost; the parent
trusts that record rather than re-validating (plans can be kept with ``save_plans`` and
re-checked with ``memplan validate``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.accelerator import Accelerator
from memplan.bench.cells import DEFAULT_GRACE_S, DEFAULT_WARMUP_LIMIT_S, CellSpec, RowCallback
from memplan.bench.results import (
    RESULTS_NAME,
    ResultsWriter,
    latest_rows,
    load_results,
    pending_cells,
    read_rows,
)
from memplan.bench.runrecord import RUN_NAME, check_same_settings, planned_cell, run_record
from memplan.bench.specs import check_solvers, solver_options
from memplan.budgets import PeakEstimate, PeakProvider, resolve_budget
from memplan.errors import ConfigError, MemplanError
from memplan.ir import Graph, graph_to_json
from memplan.min_peak import cached_peak_provider, exact_peak_provider
from memplan.problem import Problem, Scope
from memplan.units import check_seconds

if TYPE_CHECKING:
    from memplan.io.loading import ImportOptions

__all__ = [
    "RESULTS_NAME",
    "RUN_NAME",
    "BenchConfig",
    "BenchRun",
    "ResultsWriter",
    "Workload",
    "build_cells",
    "check_same_settings",
    "execute_bench",
    "latest_rows",
    "load_results",
    "load_workloads",
    "pending_cells",
    "prepare_bench",
    "read_rows",
    "run_cells_local",
]


# --------------------------------------------------------------------------- workloads
@dataclass(frozen=True, slots=True)
class Workload:
    """One model to benchmark."""

    name: str  # workload name (catalog name or file stem)
    source: str  # "catalog:<name>" or the file path
    sha256: str  # hex sha256 of the model file / serialized ModelProto
    graph: Graph  # the imported scheduling graph
    import_options: ImportOptions | None = None  # how an ONNX model was imported; None: JSON


def _catalog() -> Any:
    from memplan.graphs import catalog

    return catalog


def load_workloads(
    suite: Sequence[str],
    dtype_bytes: int | None = None,
    aliases: bool = True,
    dims: Mapping[str, int] | None = None,
) -> tuple[list[Workload], list[str]]:
    """Load the models named by ``suite``.

    Each entry is a catalog suite name, a catalog workload name, a model file
    (``.onnx`` or memplan graph ``.json``) or a folder (its ``*.onnx`` and ``*.json``).
    ``dims`` (``--dim``) sizes symbolic dimensions in every ONNX file that has them
    (:func:`_model_dims`); a name no file has is refused.

    Returns:
        The workloads, and one line per model that failed to load (the run goes on).

    Raises:
        ConfigError: an entry is neither a file, a folder, a suite nor a workload; a
            ``dims`` name is a symbolic dimension of no ONNX file of the suite.
    """
    from memplan.io.loading import load_model

    sources: list[tuple[str, str]] = []  # (kind, value): ("catalog", name) | ("file", path)
    for entry in suite:
        if not entry.strip():  # Path("") is the current folder: it scanned every file there
            raise ConfigError(
                "--suite: an empty entry; give a catalog suite or workload name, a model "
                "file or a folder"
            )
        path = Path(entry)
        if path.is_dir():
            files = sorted([*path.glob("*.onnx"), *path.glob("*.json")])
            if not files:
                raise ConfigError(f"--suite {entry}: the folder holds no .onnx or .json model")
            sources.extend(("file", str(f)) for f in files)
        elif path.is_file():
            sources.append(("file", entry))
        else:
            sources.extend(("catalog", name) for name in _catalog_names(entry))
    workloads: list[Workload] = []
    failures: list[str] = []
    names: set[str] = set()
    used: set[str] = set()
    for kind, value in dict.fromkeys(sources):
        try:
            if kind == "catalog":
                loaded = load_model(
                    _catalog().load_model(value), dtype_bytes=dtype_bytes, aliases=aliases
                )
                name, source = value, f"catalog:{value}"
            else:
                own = _model_dims(value, dims or {})
                used.update(own)
                loaded = load_model(
                    value, dtype_bytes=dtype_bytes, aliases=aliases, dims=own or None
                )
                name, source = Path(value).stem, value
        except MemplanError as error:
            failures.append(f"{value}: {error}")
            continue
        if name in names:
            name = str(Path(value).with_suffix(""))
        names.add(name)
        workloads.append(Workload(name, source, loaded.sha256, loaded.graph, loaded.import_options))
    unused = [name for name in dims or {} if name not in used]
    if unused:
        raise ConfigError(
            f"--dim {', '.join(unused)}: no ONNX model of the suite has a symbolic dim of "
            "that name (`memplan inspect MODEL` names a model's); leave it out or correct it"
        )
    return workloads, failures


def _model_dims(path: str, dims: Mapping[str, int]) -> dict[str, int]:
    """The ``dims`` that are symbolic dimensions of the ONNX file ``path`` (none for a
    graph JSON file, or a file that does not parse: its import says why)."""
    if not dims or Path(path).suffix.lower() != ".onnx":
        return {}
    try:
        import onnx

        from memplan.onnx.shapes import symbolic_dims

        known = set(symbolic_dims(onnx.load(path, load_external_data=False)))
    except Exception:  # an unreadable file: load_model reports it, naming the file
        return {}
    return {name: size for name, size in dims.items() if name in known}


def _catalog_names(entry: str) -> list[str]:
    """Workload names for a catalog suite or workload name; ConfigError otherwise."""
    try:
        catalog = _catalog()
    except ImportError as error:  # pragma: no cover - the graphs package ships with memplan
        raise ConfigError(f"--suite {entry!r}: no such file, and no catalog ({error})") from None
    if entry in catalog.suite_names():
        return [w.name for w in catalog.list_workloads(entry)]
    known = {w.name for w in catalog.list_workloads(None)}
    if entry in known:
        return [entry]
    raise ConfigError(
        f"--suite {entry!r} is not a model file, a folder, a catalog suite "
        f"({', '.join(catalog.suite_names())}) or a catalog workload; "
        "see `memplan graphs` (or graphs/index.toml)"
    )


# --------------------------------------------------------------------------- cells
def build_cells(
    workloads: Sequence[Workload],
    *,
    scopes: Sequence[Scope],
    budgets: Sequence[str],
    solvers: Sequence[str],
    options: Mapping[str, Mapping[str, str]],
    time_limit_s: float,
    accelerator: Accelerator,
    dtype_bytes: int | None = None,
    save_plans: bool = False,
    peak_provider: PeakProvider | None = None,
) -> list[CellSpec]:
    """Every (workload, scope, budget, solver) cell, budgets resolved once per scope.

    Args:
        workloads: the models.
        scopes: scopes to run.
        budgets: budget specs (MR, MH, MP, sizes, multiples).
        solvers: solver specs, ``NAME`` or ``NAME[opt=value,...]`` (:mod:`.specs`).
        options: ``--option`` values per solver spec.
        time_limit_s: each solve's budget.
        accelerator: alignment, rates and energies (its capacity is replaced per cell).
        dtype_bytes: the ``--dtype-bytes`` the workloads were imported with.
        save_plans: have the workers return their plans.
        peak_provider: supplies M_P; default: the cached proven value, else the heuristic.

    Raises:
        ConfigError: a budget spec does not parse, or a solver cannot be loaded.
    """
    from memplan.bench.versions import plugin_version
    from memplan.solver import solver_class

    acc_dict = accelerator.to_dict()
    resolved_solvers = [solver_options(spec, options) for spec in solvers]
    versions = {name: plugin_version(solver_class(name)) for name, _ in resolved_solvers}
    cells: dict[str, CellSpec] = {}
    for workload in workloads:
        graph_json = graph_to_json(workload.graph)
        for scope in scopes:
            problem = Problem(workload.graph, accelerator, scope)
            peak = _once(peak_provider or cached_peak_provider)  # M_P once per workload/scope
            estimate = peak(problem)
            for spec in budgets:
                resolved = resolve_budget(spec, problem, peak)
                for name, opts in resolved_solvers:
                    cell = CellSpec(
                        workload=workload.name,
                        source=workload.source,
                        model_sha256=workload.sha256,
                        scope=scope.value,
                        budget=spec.strip(),
                        capacity_bytes=resolved.capacity_bytes,
                        budget_note=resolved.note,
                        mr_bytes=problem.min_resident_bytes,
                        mp_bytes=estimate.value_bytes,
                        mp_proven=estimate.proven,
                        solver=name,
                        solver_version=versions[name],
                        options=opts,
                        time_limit_s=float(time_limit_s),
                        accelerator={**acc_dict, "capacity_bytes": resolved.capacity_bytes},
                        dtype_bytes=dtype_bytes,
                        graph_ops=workload.graph.num_ops,
                        graph_tensors=workload.graph.num_tensors,
                        graph_json=graph_json,
                        save_plan=save_plans,
                        import_options=(
                            workload.import_options.to_dict()
                            if workload.import_options is not None
                            else None
                        ),
                    )
                    cells.setdefault(cell.key, cell)  # two specs may name the same variant
    return list(cells.values())


def _once(provider: PeakProvider) -> PeakProvider:
    """Memoise a peak provider for one problem (M_P is computed once per workload/scope)."""
    cache: dict[int, PeakEstimate] = {}

    def cached(problem: Problem) -> PeakEstimate:
        if id(problem) not in cache:
            cache[id(problem)] = provider(problem)
        return cache[id(problem)]

    return cached


# --------------------------------------------------------------------------- runners
#: Called with each finished row (in the parent, one thread at a time).


def run_cells_local(
    cells: Sequence[CellSpec],
    on_row: RowCallback,
    *,
    jobs: int = 1,
    grace_s: float = DEFAULT_GRACE_S,
    warmup_limit_s: float = DEFAULT_WARMUP_LIMIT_S,
    on_start: Callable[[CellSpec], None] | None = None,
) -> None:
    """Run cells in worker processes, ``jobs`` at a time, calling ``on_row`` as each ends.

    On Ctrl-C (or any exception) the running workers are killed, unfinished cells are
    not recorded, and the exception propagates.
    """
    from memplan.bench.worker import run_cell

    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    cancel = threading.Event()
    queue: Iterator[CellSpec] = iter(cells)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="memplan-cell") as pool:
        running: set[Future[dict[str, Any] | None]] = set()
        try:
            while True:
                while len(running) < jobs:
                    cell = next(queue, None)
                    if cell is None:
                        break
                    if on_start is not None:
                        on_start(cell)
                    running.add(pool.submit(run_cell, cell, grace_s, cancel, warmup_limit_s))
                if not running:
                    break
                finished, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    row = future.result()
                    if row is not None:
                        on_row(row)
        except BaseException:
            cancel.set()
            raise


# --------------------------------------------------------------------------- a whole run
@dataclass(frozen=True)
class BenchConfig:
    """What `memplan bench` was asked to do."""

    suite: tuple[str, ...]  # suite names, workload names, model files or folders
    solvers: tuple[str, ...]  # solver names or module:Class paths
    budgets: tuple[str, ...]  # budget specs: MR, MH, MP, 512KiB, 0.5*MP
    scopes: tuple[Scope, ...]  # scopes to run
    out_dir: Path  # output folder (results.jsonl, reports, figures)
    accelerator: Accelerator  # scratchpad alignment, rates and energies
    time_limit_s: float = 60.0  # each solver's Budget, seconds per cell
    grace_s: float = DEFAULT_GRACE_S  # seconds past the limit before the worker is killed
    warmup_limit_s: float = DEFAULT_WARMUP_LIMIT_S  # start-up + warm-up, before the clock
    exact_mp_s: float | None = None  # prove M_P with this many seconds (None: cache/heuristic)
    jobs: int = 1  # cells run at once (local processes or LocalCluster workers)
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # per solver
    dtype_bytes: int | None = None  # bytes per element at import; None = ONNX types
    dims: Mapping[str, int] = field(default_factory=dict)  # --dim: symbolic dim sizes
    dask: str | None = None  # None (local pool), "local" (LocalCluster) or a scheduler address
    save_plans: bool = False  # write every plan to out_dir/plans/<key>.json
    retry_failed: bool = False  # run again the cells recorded as error or killed

    def __post_init__(self) -> None:
        """Refuse durations a run could not honour (named by their command-line flags).

        Raises:
            ConfigError: a time limit, grace or warm-up limit that is not a finite
                number of seconds in range.
        """
        check_seconds("--time-limit", self.time_limit_s)
        check_seconds("--grace", self.grace_s, allow_zero=True)
        check_seconds("--warmup-limit", self.warmup_limit_s)
        if self.exact_mp_s is not None:
            check_seconds("--exact-mp", self.exact_mp_s)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (run.json)."""
        return {
            "suite": list(self.suite),
            "solvers": list(self.solvers),
            "budgets": list(self.budgets),
            "scopes": [s.value for s in self.scopes],
            "accelerator": self.accelerator.to_dict(),
            "time_limit_s": self.time_limit_s,
            "grace_s": self.grace_s,
            "warmup_limit_s": self.warmup_limit_s,
            "exact_mp_s": self.exact_mp_s,
            "jobs": self.jobs,
            "options": {k: dict(v) for k, v in self.options.items()},
            "dtype_bytes": self.dtype_bytes,
            "dims": dict(self.dims),
            "dask": self.dask,
        }


@dataclass
class BenchRun:
    """A prepared run: every cell, those still to do, and models that failed to load."""

    config: BenchConfig  # the request
    cells: list[CellSpec]  # every cell of the request
    pending: list[CellSpec]  # cells without a result yet
    load_failures: list[str]  # "model: error" for models that could not be loaded
    unreadable_lines: int  # results-file lines skipped (cut short by a crash)

    @property
    def results_path(self) -> Path:
        """The results file."""
        return self.config.out_dir / RESULTS_NAME


def prepare_bench(config: BenchConfig) -> BenchRun:
    """Load the workloads, resolve budgets, build the cells and find those not done yet.

    Raises:
        ConfigError: bad solver, option, budget or suite; no model could be loaded.
    """
    from memplan.io.files import atomic_write_text

    check_solvers(config.solvers, config.options)
    # Before any work: a folder holds the rows of one setting of what changes answers.
    recorded = check_same_settings(config.out_dir, config.to_dict())
    workloads, failures = load_workloads(config.suite, config.dtype_bytes, dims=config.dims)
    if not workloads:
        detail = "; ".join(failures) if failures else "the suite is empty"
        raise ConfigError(f"no workload could be loaded: {detail}")
    cells = build_cells(
        workloads,
        scopes=config.scopes,
        budgets=config.budgets,
        solvers=config.solvers,
        options=config.options,
        time_limit_s=config.time_limit_s,
        accelerator=config.accelerator,
        dtype_bytes=config.dtype_bytes,
        save_plans=config.save_plans,
        peak_provider=(
            exact_peak_provider(config.exact_mp_s) if config.exact_mp_s is not None else None
        ),
    )
    config.out_dir.mkdir(parents=True, exist_ok=True)
    rows, bad = read_rows(config.out_dir / RESULTS_NAME)
    pending = pending_cells(cells, latest_rows(rows), config.retry_failed)
    atomic_write_text(
        config.out_dir / RUN_NAME,
        json.dumps(
            run_record(
                config.to_dict(),
                failures,
                recorded,
                [planned_cell(cell.row_base()) for cell in cells],
            ),
            indent=2,
        )
        + "\n",
    )
    return BenchRun(config, cells, pending, failures, bad)


def execute_bench(
    run: BenchRun,
    on_row: RowCallback | None = None,
    on_start: Callable[[CellSpec], None] | None = None,
) -> int:
    """Run the pending cells, appending each row to the results file as it finishes.

    Returns:
        The number of rows written.
    """
    config = run.config
    written = 0
    with ResultsWriter(run.results_path) as writer:

        def record(row: dict[str, Any]) -> None:
            nonlocal written
            plan = row.pop("plan", None)
            if plan is not None:  # a plan file (memplan.io.planfile), as optimize -o writes
                from memplan.io.files import atomic_write_text
                from memplan.io.planfile import plan_json

                plan_path = config.out_dir / "plans" / f"{row['key']}.json"
                atomic_write_text(plan_path, plan_json(plan), what="plan file", create_folders=True)
                row["plan_file"] = str(plan_path.relative_to(config.out_dir))
            writer.append(row)
            written += 1
            if on_row is not None:
                on_row(row)

        if config.dask is None:
            run_cells_local(
                run.pending,
                record,
                jobs=config.jobs,
                grace_s=config.grace_s,
                warmup_limit_s=config.warmup_limit_s,
                on_start=on_start,
            )
        else:
            from memplan.bench.dask_cluster import run_cells_dask

            run_cells_dask(
                run.pending,
                record,
                address=config.dask,
                jobs=config.jobs,
                grace_s=config.grace_s,
                warmup_limit_s=config.warmup_limit_s,
                on_start=on_start,
            )
    return written
