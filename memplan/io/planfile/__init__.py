"""Plan files: the versioned JSON form of one solve, and its MiniMalloc CSV export.

A plan file records everything needed to check and score a plan again later::

    {
      "format": "memplan.plan", "version": 2, "created_by": "memplan 0.1.0",
      "model": {"name": "squeezenet", "file": "squeezenet.onnx", "sha256": "9f2c...",
                "graph_sha256": "41ab...", "ops": 65, "tensors": 118},
      "import": {"input_shapes": {"data_0": [1, 3, 224, 224]}, "dims": {},
                 "input_values": {}, "dtype_bytes": null, "aliases": true},
      "accelerator": {"name": "edge-npu", "capacity_bytes": 524288, ...},
      "scope": "activations",
      "budget": {"spec": "MH", "capacity_bytes": 524288, "note": "MH = (MR + MP) / 2, ..."},
      "solver": {"name": "greedy", "options": {"seed": 0, ...}},
      "status": "feasible", "message": "",
      "cost": {"non_compulsory_bytes": 12288, ...},
      "lower_bound_bytes": null, "gap": null, "wall_s": 0.31, "stats": {...},
      "plan": {"order": ["conv1", ...], "residencies": [{"tensor": "x", "start": 0, ...}]}
    }

``import`` holds the ONNX import options the model was read with (``null`` for a
memplan graph JSON model), so ``memplan validate`` and ``score`` import the model the
same way; ``model.graph_sha256`` fingerprints the graph that import produced.

Reading happens in two steps, because the import options are needed before the
model can be loaded: :func:`read_plan_header` checks the format and version and
returns what the file says about its model; :func:`plan_from_header` then checks
that the model given has the recorded SHA-256 (a plan for another model is
rejected) and imports to the recorded graph, and rebuilds the plan against it.
:func:`read_plan_file` does both. Version 1 files (before the import options were
recorded) are still read; they carry no import options and no graph fingerprint.
Tensors and ops are referred to by name, so a plan survives re-import of the same
model. Every field is read with its type (:class:`memplan.jsonfields.JsonObject`): a
missing or mistyped one is an :class:`InputFormatError` of one line that names the
file, the field and, in the plan, the residency's index. Every field the writer writes
is required, except the informative ones (``created_by``, ``model.name``, ``budget``,
``message``, ``cost``, ``lower_bound_bytes``, ``gap``, ``wall_s``, ``stats``,
``solver.options``), which are typed when present; both versions write every residency
field. A field the writer does not write is refused, in every object but the free-form
``stats`` and ``solver.options``: a misspelt one would be ignored without a word. The
header must agree with itself and with the model: ``model.ops`` and ``model.tensors``
are those of the graph that has ``model.graph_sha256``, and ``gap`` is a fraction from 0
to 1. The plan's legality (offsets, alignment, coverage...) is *not* checked here:
that is the validator's job (``memplan validate`` lists every violation). Recorded
results that cannot all be true (a lower bound above the plan's own cost) are listed
by :meth:`PlanFile.inconsistencies` for the commands to warn about.

Layout: :mod:`.layout` (the format's names and fields, :class:`PlanHeader`,
:class:`PlanFile`), :mod:`.write` (writing and the CSV export), :mod:`.read` (reading).
Import them from here.
"""

from memplan.io.planfile.layout import (
    BUDGET_FIELDS,
    COST_FIELDS,
    MODEL_FIELDS,
    PLAN_FILE_VERSION,
    PLAN_FORMAT,
    READABLE_VERSIONS,
    SOLVER_FIELDS,
    TOP_FIELDS,
    PlanFile,
    PlanHeader,
)
from memplan.io.planfile.read import (
    check_import_kind,
    parse_plan_file,
    parse_plan_header,
    plan_from_header,
    read_plan_file,
    read_plan_header,
    wrong_model_error,
)
from memplan.io.planfile.write import (
    jsonable,
    plan_buffers,
    plan_csv,
    plan_file_dict,
    plan_json,
    write_plan_csv,
    write_plan_file,
)

__all__ = [
    "BUDGET_FIELDS",
    "COST_FIELDS",
    "MODEL_FIELDS",
    "PLAN_FILE_VERSION",
    "PLAN_FORMAT",
    "READABLE_VERSIONS",
    "SOLVER_FIELDS",
    "TOP_FIELDS",
    "PlanFile",
    "PlanHeader",
    "check_import_kind",
    "jsonable",
    "parse_plan_file",
    "parse_plan_header",
    "plan_buffers",
    "plan_csv",
    "plan_file_dict",
    "plan_from_header",
    "plan_json",
    "read_plan_file",
    "read_plan_header",
    "write_plan_csv",
    "write_plan_file",
    "wrong_model_error",
]
