"""Benchmark cells: what one (workload, scope, budget, solver) solve needs, and its key.

Plain data shared by the harness, the worker process, the results file and the Dask
runner (none of which import each other through it).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Row fields that depend on the machine and the moment, not on the solver's answer.
TIMING_FIELDS = (
    "solve_wall_s",
    "solver_wall_s",
    "over_time_limit",
    "import_wall_s",
    "warmup_wall_s",
    "cell_wall_s",
    "worker_maxrss_bytes",
    "finished_at",
    "host",
)
#: Default seconds a worker may run past its time limit before it is killed.
DEFAULT_GRACE_S = 10.0
#: Default seconds a worker may take to start and warm up before its clock starts
#: (imports, loading or compiling JIT kernels: numba's first compile takes ~20 s).
DEFAULT_WARMUP_LIMIT_S = 120.0


#: Called with each finished row.
RowCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CellSpec:
    """Everything a worker needs to run one cell (plain data: picklable, JSON-ready)."""

    workload: str  # workload name
    source: str  # where the model came from ("catalog:<name>" or a path)
    model_sha256: str  # fingerprint of the model
    scope: str  # "activations" or "all"
    budget: str  # budget spec as written (MR, MH, MP, 512KiB, 0.5*MP)
    capacity_bytes: int  # the scratchpad size the budget resolved to
    budget_note: str  # how the capacity was computed
    mr_bytes: int  # M_R of the workload in this scope
    mp_bytes: int  # M_P: proven minimum peak, or the heuristic min-peak order's peak
    mp_proven: bool  # whether mp_bytes was proven (by an exact solver, or cached proof)
    solver: str  # registry name or module:Class path
    solver_version: str  # distribution version + source hash (memplan.bench.versions)
    options: Mapping[str, str]  # solver options as given (--option, name[k=v])
    time_limit_s: float  # the solver's Budget; the process is killed at this + grace
    accelerator: Mapping[str, Any]  # Accelerator.to_dict() (capacity replaced per cell)
    dtype_bytes: int | None  # --dtype-bytes used when importing, None = ONNX types
    graph_ops: int  # number of ops
    graph_tensors: int  # number of tensors
    graph_json: str = field(repr=False)  # the graph (memplan graph JSON)
    save_plan: bool = False  # return the plan in the outcome (not part of the key)
    #: ImportOptions.to_dict() the model was imported with (recorded in saved plan
    #: files); None for a memplan graph JSON model. Not part of the key (dtype_bytes is).
    import_options: Mapping[str, Any] | None = field(default=None, repr=False)

    @functools.cached_property
    def key(self) -> str:
        """The resume key (see :func:`cell_key`)."""
        return cell_key(
            workload=self.workload,
            model_sha256=self.model_sha256,
            scope=self.scope,
            budget=self.budget,
            capacity_bytes=self.capacity_bytes,
            mp_proven=self.mp_proven if budget_uses_mp(self.budget) else None,
            solver=self.solver,
            solver_version=self.solver_version,
            options=self.options,
            time_limit_s=self.time_limit_s,
            accelerator=self.accelerator,
            dtype_bytes=self.dtype_bytes,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the worker's input), with the key."""
        data: dict[str, Any] = {"key": self.key}
        data.update((name, getattr(self, name)) for name in self.__dataclass_fields__)
        data["options"] = dict(self.options)
        data["accelerator"] = dict(self.accelerator)
        if self.import_options is not None:
            data["import_options"] = dict(self.import_options)
        return data

    def row_base(self) -> dict[str, Any]:
        """The row fields known before the cell runs (no graph, no internals)."""
        data = self.to_dict()
        del data["graph_json"], data["save_plan"], data["import_options"]
        return data


def budget_uses_mp(spec: str) -> bool:
    """Whether a budget spec's capacity depends on M_P (``MP``, ``MH``, ``0.5*MP``...)."""
    upper = spec.upper()
    return "MP" in upper or "MH" in upper


def cell_key(
    *,
    workload: str,
    model_sha256: str,
    scope: str,
    budget: str,
    capacity_bytes: int,
    mp_proven: bool | None,
    solver: str,
    solver_version: str,
    options: Mapping[str, str],
    time_limit_s: float,
    accelerator: Mapping[str, Any],
    dtype_bytes: int | None,
) -> str:
    """The resume key: a hash of everything that determines a cell's answer.

    Workload name, model sha256, scope, budget spec and the capacity it resolved to (a
    newly proven M_P, another alignment or dtype changes it), whether M_P was proven
    (None for budgets that do not use M_P), solver, its version and options, the time
    limit, the accelerator (without its default capacity) and the import dtype.
    """
    acc = {k: v for k, v in accelerator.items() if k != "capacity_bytes"}
    payload = [
        workload,
        model_sha256,
        scope,
        budget.strip(),
        int(capacity_bytes),
        mp_proven,
        solver,
        solver_version,
        sorted((str(k), str(v)) for k, v in options.items()),
        float(time_limit_s),
        sorted(acc.items()),
        dtype_bytes,
    ]
    text = json.dumps(payload, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
