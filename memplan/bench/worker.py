"""One benchmark cell in its own process, killed when it overruns.

Parent side, :func:`run_cell` (a plain function of the cell spec, so a thread pool and
a Dask task run it alike)::

    spec.json ─► python -m memplan.bench.worker spec.json result.json   (new session)
                   │ stdout + stderr ─► log.txt (its tail goes into error messages)
                   ├─ exits with result.json ─► row (status, cost, bound, rusage...)
                   ├─ dies (signal, exit code) ─► row: error + log tail
                   └─ runs past time_limit + grace ─► process group SIGKILLed ─► row: timeout

Worker side, :func:`main`: load the graph, build the problem at the cell's capacity,
make the solver, give it ``Budget(time_limit_s)``, solve, then validate the returned
plan and score it again (harness code, independent of what the solver reported), and
write the outcome atomically. A watchdog thread ends the worker when its parent dies
(``kill -9`` of the bench) or when it overruns, so no orphan keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memplan.io.files import atomic_write_text

if TYPE_CHECKING:
    from memplan.bench.cells import CellSpec

#: Characters of the worker's output kept in an error message.
LOG_TAIL_CHARS = 1500
#: Seconds between checks of a running worker.
POLL_S = 0.05


def worker_env() -> dict[str, str]:
    """The environment for a worker: this process's, with its import path as PYTHONPATH."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.exists(p)))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_cell(
    cell: CellSpec, grace_s: float, cancel: threading.Event | None = None
) -> dict[str, Any] | None:
    """Run ``cell`` in a new worker process and return its result row.

    The worker is killed (with its whole process group) after ``time_limit_s + grace_s``
    seconds; that is recorded as ``timeout`` with ``killed: true``. A worker that dies
    or raises is recorded as ``error`` with the message. Returns ``None`` only when
    ``cancel`` was set (the cell is then unfinished and must not be recorded).
    """
    row = cell.row_base()
    deadline_s = cell.time_limit_s + grace_s
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="memplan-cell-") as tmp:
        spec_path, result_path, log_path = (
            Path(tmp, "spec.json"),
            Path(tmp, "result.json"),
            Path(tmp, "log.txt"),
        )
        spec = cell.to_dict()
        spec["deadline_s"] = deadline_s
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "memplan.bench.worker", str(spec_path), str(result_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_env(),
                start_new_session=True,
            )
        killed = False
        try:
            while proc.poll() is None:
                if cancel is not None and cancel.is_set():
                    _kill(proc)
                    return None
                if time.monotonic() - started > deadline_s:
                    _kill(proc)
                    killed = True
                    break
                time.sleep(POLL_S)
        except BaseException:
            _kill(proc)
            raise
        row["cell_wall_s"] = time.monotonic() - started
        if killed:
            row.update(
                _empty_outcome(
                    "timeout",
                    f"killed after {deadline_s:g} s (time limit {cell.time_limit_s:g} s + "
                    f"grace {grace_s:g} s): the solver did not return",
                )
            )
            row["killed"] = True
        elif result_path.exists():
            row.update(json.loads(result_path.read_text(encoding="utf-8")))
        else:
            code = proc.returncode
            how = (
                f"killed by signal {signal.Signals(-code).name}"
                if code < 0
                else f"exited with code {code}"
            )
            row.update(
                _empty_outcome("error", f"worker {how} without a result; output: {_tail(log_path)}")
            )
    row["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    row["host"] = socket.gethostname()
    return row


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (the solver's own children too) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "(no output)"
    if not text:
        return "(no output)"
    return text if len(text) <= LOG_TAIL_CHARS else "..." + text[-LOG_TAIL_CHARS:]


def _empty_outcome(status: str, message: str) -> dict[str, Any]:
    """The outcome fields of a cell without a plan."""
    return {
        "status": status,
        "killed": False,
        "message": message,
        "has_plan": False,
        "valid": None,
        "non_compulsory_bytes": None,
        "compulsory_bytes": None,
        "traffic_bytes": None,
        "peak_bytes": None,
        "max_live_bytes": None,
        "latency_s": None,
        "energy_j": None,
        "lower_bound_bytes": None,
        "gap": None,
        "solve_wall_s": None,
        "worker_maxrss_bytes": None,
        "stats": {},
    }


# --------------------------------------------------------------------------- worker side
def _maxrss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _start_watchdog(deadline_s: float) -> None:
    """End this process if the parent dies or the deadline (plus a margin) passes.

    The parent kills an overrunning worker itself; this covers a parent that was
    killed. A solver stuck in C code holding the GIL is caught by RLIMIT_CPU.
    """
    parent = os.getppid()
    stop_at = time.monotonic() + deadline_s + 2.0

    def watch() -> None:
        while True:
            if os.getppid() != parent or time.monotonic() > stop_at:
                os._exit(3)
            time.sleep(0.2)

    threading.Thread(target=watch, name="memplan-watchdog", daemon=True).start()
    try:
        import resource

        cpu_s = int((deadline_s + 5.0) * max(1, os.cpu_count() or 1)) + 10
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not on every platform
        pass


def solve_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Solve one cell in this process and return its outcome fields (never raises)."""
    from memplan.accelerator import Accelerator
    from memplan.cost import evaluate
    from memplan.ir import graph_from_json
    from memplan.problem import Problem, Scope
    from memplan.solver import Budget, make_solver
    from memplan.validate import validate

    try:
        graph = graph_from_json(spec["graph_json"], f"cell {spec['workload']}")
        accelerator = Accelerator.from_dict(dict(spec["accelerator"]), "cell accelerator")
        problem = Problem(
            graph, accelerator.with_capacity(spec["capacity_bytes"]), Scope.parse(spec["scope"])
        )
        solver = make_solver(spec["solver"], spec["options"])
        budget = Budget(time_limit_s=spec["time_limit_s"])
        result = solver.solve(problem, budget)
    except Exception as error:
        outcome = _empty_outcome("error", f"{type(error).__name__}: {error}")
        outcome["traceback"] = traceback.format_exc()[-LOG_TAIL_CHARS:]
        outcome["worker_maxrss_bytes"] = _maxrss_bytes()
        return outcome
    outcome = _empty_outcome(result.status.value, result.message)
    outcome.update(
        solve_wall_s=result.wall_s,
        lower_bound_bytes=result.lower_bound_bytes,
        stats=dict(result.stats),
    )
    if result.plan is not None:
        violations = validate(problem, result.plan)
        if violations:
            shown = "; ".join(str(v) for v in violations[:3])
            outcome.update(
                status="error",
                valid=False,
                message=f"invalid plan ({len(violations)} violations): {shown}",
            )
        else:
            cost = evaluate(problem, result.plan)
            reported = result.cost
            outcome.update(valid=True, has_plan=True, **_cost_fields(cost))
            outcome["gap"] = _gap(cost.non_compulsory_bytes, result.lower_bound_bytes)
            if reported is not None and reported.to_dict() != cost.to_dict():
                outcome.update(
                    status="error",
                    message=(
                        "the cost the solver reported differs from the cost model's: "
                        f"{reported.non_compulsory_bytes} vs {cost.non_compulsory_bytes} "
                        "non-compulsory bytes"
                    ),
                )
            if spec.get("save_plan"):
                outcome["plan"] = result.plan.to_dict(graph)
    outcome["worker_maxrss_bytes"] = _maxrss_bytes()
    return outcome


def _cost_fields(cost: Any) -> dict[str, Any]:
    return {
        "non_compulsory_bytes": cost.non_compulsory_bytes,
        "compulsory_bytes": cost.compulsory_bytes,
        "traffic_bytes": cost.traffic_bytes,
        "peak_bytes": cost.peak_bytes,
        "max_live_bytes": cost.max_live_bytes,
        "latency_s": cost.latency_s,
        "energy_j": cost.energy_j,
    }


def _gap(value: int, bound: int | None) -> float | None:
    """Relative gap of ``value`` to ``bound`` (0 when value is 0), None without a bound."""
    if bound is None:
        return None
    if value == 0:
        return 0.0
    return max(0.0, (value - bound) / value)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``python -m memplan.bench.worker SPEC.json RESULT.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m memplan.bench.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    _start_watchdog(float(spec["deadline_s"]))
    outcome = solve_spec(spec)
    atomic_write_text(args[1], json.dumps(outcome, default=_jsonable))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # do not wait for threads a solver may have left running
