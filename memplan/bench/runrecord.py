"""run.json: the settings of the runs whose rows a results folder holds.

``memplan bench`` writes ``DIR/run.json`` beside ``DIR/results.jsonl``. Some settings
change every cell's answer (:data:`RESULT_SETTINGS`: the time limit, the accelerator,
the element size, the sizes of symbolic dims, the M_P proof budget): before a run
adds rows to a folder, :func:`check_same_settings` compares them with the folder's
run.json and refuses a difference, so one folder never mixes rows that answer
different questions. Others
only add cells (workloads, solvers and their options, budgets, scopes) and may be
resumed into the same folder; :func:`run_record` keeps them all in run.json, with the
list of every cell the folder's runs asked for (:data:`PLANNED_KEY`), so a report can
say how many of them are done (:func:`planned_cells`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memplan.bench.results import RESULTS_NAME, read_rows
from memplan.bench.rows import Row, cell_id, solver_label
from memplan.errors import ConfigError

#: Name of the file recording a run's settings, inside the output folder.
RUN_NAME = "run.json"
#: Settings of run.json that change every cell's answer, with the flag that sets them: a
#: results folder holds rows of one value of each (other workloads, solvers, solver
#: options, budgets and scopes only add cells, and may be resumed into the same folder).
RESULT_SETTINGS: dict[str, str] = {
    "accelerator": "--accelerator",
    "time_limit_s": "--time-limit",
    "dtype_bytes": "--dtype-bytes",
    "dims": "--dim",
    "exact_mp_s": "--exact-mp",
}
#: Lists of run.json that grow when a run adds cells to a folder.
_CELL_LISTS = ("suite", "solvers", "budgets", "scopes")
#: run.json's list of the cells its runs asked for: ``[workload, scope, budget, solver]``
#: (the solver label, with its options), one per cell, as a report merges rows.
PLANNED_KEY = "planned_cells"
#: A planned cell: (workload, scope, budget, solver label).
PlannedCell = tuple[str, str, str, str]


def planned_cell(row: Row) -> PlannedCell:
    """The (workload, scope, budget, solver label) of a row or of a cell's
    :meth:`~memplan.bench.cells.CellSpec.row_base`."""
    return (*cell_id(row), solver_label(row))


def planned_cells(out_dir: Path) -> list[PlannedCell] | None:
    """The cells the runs of a results folder asked for, from its run.json.

    Returns:
        The planned cells, or None when run.json is missing, unreadable or older than
        the list (then how many cells were asked for is not known).
    """
    try:
        data = json.loads((out_dir / RUN_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    planned = data.get(PLANNED_KEY) if isinstance(data, dict) else None
    if not isinstance(planned, list):
        return None
    cells = [
        (str(c[0]), str(c[1]), str(c[2]), str(c[3]))
        for c in planned
        if isinstance(c, list) and len(c) == 4
    ]
    return list(dict.fromkeys(cells))


def in_planned_order(rows: Sequence[Row], out_dir: Path) -> list[Row]:
    """``rows`` in the order of the cells the folder's runs asked for (run.json): its
    workloads, budgets and solvers as the command gave them, not as the workers happened
    to finish (with ``--jobs`` above 1, the reports' order changed from run to run).
    Rows of cells run.json does not list keep their order, after the others."""
    planned = planned_cells(out_dir) or []
    index = {cell: i for i, cell in enumerate(planned)}
    return sorted(rows, key=lambda row: index.get(planned_cell(row), len(index)))


def _result_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`RESULT_SETTINGS` of a run.json dictionary (the accelerator without its
    default capacity, which every cell replaces with its budget's)."""
    out = {name: data.get(name) for name in RESULT_SETTINGS if name in data}
    accelerator = out.get("accelerator")
    if isinstance(accelerator, Mapping):
        out["accelerator"] = {k: v for k, v in accelerator.items() if k != "capacity_bytes"}
    return out


def _recorded_run(out_dir: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The folder's run.json, or (when missing or unreadable) what its rows record."""
    try:
        data = json.loads((out_dir / RUN_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        return data
    if not rows:
        return None
    last = rows[-1]  # an older folder without run.json: the rows carry the settings
    return {
        name: last[name] for name in ("accelerator", "time_limit_s", "dtype_bytes") if name in last
    }


def _setting_text(name: str, value: Any) -> str:
    if value is None:
        return "none"
    if name == "accelerator" and isinstance(value, Mapping):
        return str(value.get("name", "?"))
    if name == "dims" and isinstance(value, Mapping):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_same_settings(out_dir: Path, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """Refuse to add rows to a results folder whose rows were made with other settings.

    Rows solved with another time limit, accelerator, element size or M_P proof budget
    answer another question: mixed into one folder they would be reported side by side
    (or make the folder unreportable). More workloads, solvers, budgets or scopes only
    add cells and are allowed.

    Args:
        out_dir: the results folder.
        settings: the new run's settings (:meth:`~memplan.bench.harness.BenchConfig.to_dict`).

    Returns:
        The folder's recorded run (run.json), or None when the folder holds no results.

    Raises:
        ConfigError: a setting of :data:`RESULT_SETTINGS` differs; names each one.
    """
    rows, _ = read_rows(out_dir / RESULTS_NAME)
    if not rows:
        return None
    recorded = _recorded_run(out_dir, rows)
    if recorded is None:
        return None
    before, now = _result_settings(recorded), _result_settings(settings)
    differing = []
    for name, flag in RESULT_SETTINGS.items():
        if name not in before or before[name] == now.get(name):
            continue
        was, new = _setting_text(name, before[name]), _setting_text(name, now.get(name))
        if was == new and isinstance(before[name], Mapping):  # same name, other figures
            fields = sorted(
                k
                for k in {*before[name], *now.get(name, {})}
                if before[name].get(k) != now.get(name, {}).get(k)
            )
            new += f" with other {', '.join(fields)}"
        differing.append(f"{flag} was {was}, now {new}")
    if differing:
        raise ConfigError(
            f"{out_dir} holds results of a run with other settings "
            f"({'; '.join(differing)}), which cannot be compared with this run's: give a new "
            "-o folder, or the recorded settings (see its run.json) to resume"
        )
    return recorded


def run_record(
    settings: Mapping[str, Any],
    failures: Sequence[str],
    recorded: Mapping[str, Any] | None,
    planned: Sequence[PlannedCell] = (),
) -> dict[str, Any]:
    """The run.json content: this run's settings, its planned cells and the models that
    failed to load; the workloads, solvers, budgets, scopes and planned cells of the run
    it resumes (``recorded``) are kept in its lists, so run.json describes every cell of
    the folder."""
    data: dict[str, Any] = {
        **settings,
        "load_failures": list(failures),
        PLANNED_KEY: [list(c) for c in dict.fromkeys(tuple(c) for c in planned)],
    }
    if recorded is None:
        return data
    earlier_planned = recorded.get(PLANNED_KEY)
    if isinstance(earlier_planned, list):
        cells = [tuple(c) for c in earlier_planned if isinstance(c, list) and len(c) == 4]
        merged = dict.fromkeys([*cells, *(tuple(c) for c in data[PLANNED_KEY])])
        data[PLANNED_KEY] = [list(c) for c in merged]
    for name in _CELL_LISTS:
        earlier = recorded.get(name)
        if isinstance(earlier, list):
            data[name] = list(dict.fromkeys([*earlier, *data[name]]))
    earlier_options = recorded.get("options")
    if isinstance(earlier_options, dict):
        data["options"] = {**earlier_options, **data["options"]}
    return data
