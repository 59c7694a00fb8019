"""Result rows of ``memplan bench``: the few facts every report and figure reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = Mapping[str, Any]
CellId = tuple[str, str, str]  # (workload, scope, budget)


def cell_id(row: Row) -> CellId:
    """The (workload, scope, budget) a row belongs to."""
    return (str(row["workload"]), str(row["scope"]), str(row["budget"]))


def solver_label(row: Row) -> str:
    """The solver's name, with its options when it has any: ``greedy[order=min-peak]``."""
    options = row.get("options") or {}
    if not options:
        return str(row["solver"])
    return f"{row['solver']}[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]"


def has_plan(row: Row) -> bool:
    """Whether the row carries a valid plan's scores."""
    return row.get("status") != "error" and row.get("non_compulsory_bytes") is not None
