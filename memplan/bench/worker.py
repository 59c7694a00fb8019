"""One benchmark cell in its own process, killed when it overruns.

Parent side, :func:`run_cell` (a plain function of the cell spec, so a thread pool and
a Dask task run it alike)::

    spec.json ─► python -m memplan.bench.worker spec.json result.json   (new session)
                   │ stdout + stderr ─► log.txt (its tail goes into error messages)
                   ├─ warms up; touches "ready" ─► the parent's clock for the cell starts
                   │    (no "ready" within the warm-up limit ─► killed ─► row: timeout)
                   ├─ exits with result.json ─► row (status, cost, bound, rusage...)
                   ├─ dies (signal, exit code) ─► row: error + log tail
                   └─ runs past ready + time_limit + grace ─► process group SIGKILLed
                                                              ─► row: timeout

Worker side, :func:`main`: import memplan and the solver plug-in, check that its
version is the one the cell was keyed with, warm it up, then load the graph, build the
problem at the cell's capacity, give the solver ``Budget(time_limit_s)``, solve on
the worker's own clock (``solve_wall_s``; the solver's report is kept as
``solver_wall_s``, and a solve that returns later than its limit plus
:data:`memplan.solver.RETURN_GRACE_S` is marked ``over_time_limit`` and says so),
validate the returned plan and score it again (harness code, independent of what the
solver reported), refuse claims the plan does not back (:func:`memplan.solver.unbacked_claim`: an
OPTIMAL without an equal bound, a bound above the plan), and write the outcome
atomically. A watchdog thread ends the worker
when its parent dies (``kill -9`` of the bench) or when it overruns, so no orphan
keeps running.

Warm-up: import time (memplan and the plug-in's modules, ``import_wall_s``) and
warm-up time (``warmup_wall_s``) are measured apart from ``solve_wall_s``, whose clock
starts after them, so a solver is not charged for loading ortools or numba kernels.
A plug-in may define ``warm_up(self) -> None`` (load or compile what its solves will
need); otherwise the worker solves a four-op problem twice with the same options (at
its M_R, which forces spills, and with room for everything).
"""

from __future__ import annotations

import dataclasses
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

from memplan.bench.cells import DEFAULT_WARMUP_LIMIT_S
from memplan.errors import OutputFileError
from memplan.io.files import atomic_write_text
from memplan.io.planfile import jsonable
from memplan.solver import RETURN_GRACE_S, unbacked_claim

if TYPE_CHECKING:
    from memplan.accelerator import Accelerator
    from memplan.bench.cells import CellSpec
    from memplan.problem import Problem, Scope

#: Characters of the worker's output kept in an error message.
LOG_TAIL_CHARS = 1500
#: Seconds between checks of a running worker.
POLL_S = 0.05
#: Seconds each warm-up solve may take (at most the cell's own time limit).
WARMUP_SOLVE_S = 10.0
#: Name of the file a worker creates once it is warm (its clock starts then).
READY_NAME = "ready"


def worker_env() -> dict[str, str]:
    """The environment for a worker: this process's, with its import path as PYTHONPATH."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.exists(p)))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_cell(
    cell: CellSpec,
    grace_s: float,
    cancel: threading.Event | None = None,
    warmup_limit_s: float = DEFAULT_WARMUP_LIMIT_S,
) -> dict[str, Any] | None:
    """Run ``cell`` in a new worker process and return its result row.

    The worker first has ``warmup_limit_s`` seconds to start and warm up; from the
    moment it says it is ready, ``time_limit_s + grace_s`` more. Past either it is
    killed with its whole process group and recorded as ``timeout`` with ``killed:
    true``. A worker that dies or raises is recorded as ``error`` with the message.
    Returns ``None`` only when ``cancel`` was set (the cell is then unfinished and must
    not be recorded).
    """
    row = cell.row_base()
    deadline_s = cell.time_limit_s + grace_s
    started = time.monotonic()
    try:
        scratch = tempfile.TemporaryDirectory(prefix="memplan-cell-")
    except OSError as error:
        raise _scratch_error(tempfile.gettempdir(), error) from None
    with scratch as tmp:
        spec_path, result_path, log_path, ready_path = (
            Path(tmp, "spec.json"),
            Path(tmp, "result.json"),
            Path(tmp, "log.txt"),
            Path(tmp, READY_NAME),
        )
        spec = cell.to_dict()
        spec.update(
            deadline_s=deadline_s, warmup_limit_s=warmup_limit_s, ready_path=str(ready_path)
        )
        try:
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            log = open(log_path, "wb")  # noqa: SIM115 - closed by the with below
        except OSError as error:
            raise _scratch_error(tmp, error) from None
        with log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "memplan.bench.worker", str(spec_path), str(result_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_env(),
                start_new_session=True,
            )
        killed: str | None = None
        ready_at: float | None = None
        try:
            while proc.poll() is None:
                if cancel is not None and cancel.is_set():
                    _kill(proc)
                    return None
                now = time.monotonic()
                if ready_at is None and ready_path.exists():
                    ready_at = now
                if ready_at is None and now - started > warmup_limit_s:
                    killed = (
                        f"killed after {warmup_limit_s:g} s of start-up and warm-up (the limit "
                        "before the clock starts): the solver did not return from its warm-up"
                    )
                elif ready_at is not None and now - ready_at > deadline_s:
                    killed = (
                        f"killed after {deadline_s:g} s (time limit {cell.time_limit_s:g} s + "
                        f"grace {grace_s:g} s): the solver did not return"
                    )
                if killed:
                    _kill(proc)
                    break
                time.sleep(POLL_S)
        except BaseException:
            _kill(proc)
            raise
        row["cell_wall_s"] = time.monotonic() - started
        if killed:
            row.update(_empty_outcome("timeout", killed))
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
            tail = _tail(log_path)
            last = tail.splitlines()[-1].strip() if tail.strip() else "(no output)"
            row.update(  # its last line (the exception) first: messages are cut when shown
                _empty_outcome("error", f"worker {how} without a result: {last}; output: {tail}")
            )
    row["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    row["host"] = socket.gethostname()
    return row


def _scratch_error(folder: str, error: OSError) -> OutputFileError:
    """The error for a cell whose temporary files cannot be written (a full /tmp)."""
    return OutputFileError(
        f"cannot write a cell's temporary files in {folder} ({error.strerror or error}); "
        "free space there (or point TMPDIR elsewhere) and run the same command again to resume"
    )


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
        "solver_wall_s": None,
        "over_time_limit": None,
        "import_wall_s": None,
        "warmup_wall_s": None,
        "warmup": None,
        "worker_maxrss_bytes": None,
        "stats": {},
    }


# --------------------------------------------------------------------------- worker side
def _maxrss_bytes() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _start_watchdog(deadline_s: float) -> None:
    """End this process if the parent dies or ``deadline_s`` (plus a margin) passes.

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


def warm_up_problem(accelerator: Accelerator, scope: Scope) -> Problem:
    """Four ops with a long skip: at its M_R the input must be spilled and reloaded.

    ::

        x ─► op0 ─► a ─► op1 ─► b ─► op2 ─► c ─► op3 ─► out
        └──────────────────────────────────────────┘
    """
    from memplan.ir import GraphBuilder, TensorKind
    from memplan.problem import Problem

    g = GraphBuilder("warm-up")
    x = g.tensor("x", 2048, TensorKind.INPUT)
    a, b, c = (g.tensor(name, 2048) for name in "abc")
    out = g.tensor("out", 1024, is_output=True)
    weights = [g.tensor(f"w{i}", 256, TensorKind.WEIGHT) for i in range(4)]
    for i, (inputs, output) in enumerate((([x], a), ([a], b), ([b], c), ([c, x], out))):
        g.op(f"op{i}", "Conv", [*inputs, weights[i]], [output], macs=1000)
    return Problem(g.build(), accelerator, scope)


def warm_up(solver: Any, accelerator: Accelerator, scope: Scope, time_limit_s: float) -> str:
    """Load or compile what ``solver`` needs; returns how (for the row's ``warmup``).

    Calls the plug-in's ``warm_up()`` when it has one, else solves
    :func:`warm_up_problem` at its M_R and with room for every tensor. A warm-up that
    raises is recorded and the cell goes on (the real solve will show the error).
    """
    from memplan.solver import Budget

    hook = getattr(solver, "warm_up", None)
    try:
        if callable(hook):
            hook()
            return "warm_up()"
        problem = warm_up_problem(accelerator, scope)
        roomy = sum(problem.aligned_sizes_bytes)
        limit_s = min(WARMUP_SOLVE_S, time_limit_s)
        for capacity in (problem.min_resident_bytes, roomy):
            solver.solve(problem.with_capacity(capacity), Budget(time_limit_s=limit_s))
    except Exception as error:
        return f"warm-up failed ({type(error).__name__}: {error}); solved cold"
    return "two solves of a 4-op problem"


def solve_spec(spec: dict[str, Any], ready_path: str | None = None) -> dict[str, Any]:
    """Warm up, then solve one cell in this process; return its outcome fields.

    Never raises. ``ready_path`` is created once the warm-up is over (the parent's
    clock for the cell starts then).
    """
    started = time.perf_counter()
    from memplan.accelerator import Accelerator
    from memplan.bench.versions import plugin_version
    from memplan.cost import evaluate
    from memplan.ir import graph_from_json
    from memplan.problem import Problem, Scope
    from memplan.solver import Budget, SolveResult, Status, make_solver, relative_gap
    from memplan.units import brief_repr
    from memplan.validate import validate

    timings: dict[str, Any] = {}
    try:
        solver = make_solver(spec["solver"], spec["options"])
        timings["import_wall_s"] = time.perf_counter() - started
        version = plugin_version(type(solver))
        if spec.get("solver_version") not in (None, version):
            raise RuntimeError(
                f"this worker loads solver {spec['solver']!r} at version {version}, but the "
                f"cell was keyed with {spec['solver_version']}: its source changed during the "
                "run (or a Dask worker runs other code); run the bench again"
            )
        graph = graph_from_json(spec["graph_json"], f"cell {spec['workload']}")
        accelerator = Accelerator.from_dict(dict(spec["accelerator"]), "cell accelerator")
        scope = Scope.parse(spec["scope"])
        problem = Problem(graph, accelerator.with_capacity(spec["capacity_bytes"]), scope)
        warmed = time.perf_counter()
        timings["warmup"] = warm_up(solver, accelerator, scope, spec["time_limit_s"])
        timings["warmup_wall_s"] = time.perf_counter() - warmed
        if ready_path is not None:
            Path(ready_path).touch()
        budget = Budget(time_limit_s=spec["time_limit_s"])
        solve_started = time.perf_counter()
        result = solver.solve(problem, budget)
        # The harness's clock, not the solver's wall_s: a plug-in may stop its clock early.
        timings["solve_wall_s"] = time.perf_counter() - solve_started
        if not isinstance(result, SolveResult) or not isinstance(result.status, Status):
            raise TypeError(
                f"solver {spec['solver']!r} returned {brief_repr(result)}, not a SolveResult "
                "(with a Status); build its result with memplan.solver.make_result"
            )
    except Exception as error:
        outcome = _empty_outcome("error", f"{type(error).__name__}: {error}")
        outcome.update(timings)
        outcome["traceback"] = traceback.format_exc()[-LOG_TAIL_CHARS:]
        outcome["worker_maxrss_bytes"] = _maxrss_bytes()
        return outcome
    outcome = _empty_outcome(result.status.value, result.message)
    outcome.update(
        timings,
        solver_wall_s=result.wall_s,
        over_time_limit=timings["solve_wall_s"] > spec["time_limit_s"] + RETURN_GRACE_S,
        lower_bound_bytes=result.lower_bound_bytes,
        stats=dict(result.stats),
    )
    if outcome["over_time_limit"]:
        late = (
            f"returned after {timings['solve_wall_s']:.3g} s, past its time limit of "
            f"{spec['time_limit_s']:g} s and the {RETURN_GRACE_S:g} s a solver may take to "
            "stop (the process was within --grace)"
        )
        outcome["message"] = f"{result.message}; {late}" if result.message else late
    cost = None
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
            if unbacked_claim(result, cost) is None:
                outcome["gap"] = relative_gap(cost.non_compulsory_bytes, result.lower_bound_bytes)
            if reported is not None and reported.to_dict() != cost.to_dict():
                outcome.update(
                    status="error",
                    message=(
                        "the cost the solver reported differs from the cost model's: "
                        f"{reported.non_compulsory_bytes} vs {cost.non_compulsory_bytes} "
                        "non-compulsory bytes"
                    ),
                )
    broken = None if outcome["valid"] is False else unbacked_claim(result, cost)
    if broken is not None:  # never passed on: not as a bound, a gap, a proof or a count
        outcome.update(
            status="error",
            lower_bound_bytes=None,
            gap=None,
            message=f"solver {spec['solver']!r} broke the result contract: {broken}",
        )
        # nor in its plan file: the plan without the claim, and why
        result = dataclasses.replace(
            result,
            status=Status.TIMEOUT if result.status is Status.TIMEOUT else Status.FEASIBLE,
            lower_bound_bytes=None,
            message=outcome["message"],
        )
    if result.plan is not None and spec.get("save_plan"):
        # an invalid plan too: memplan validate lists its faults
        outcome["plan"] = _plan_file(spec, problem, result, cost)
    outcome["worker_maxrss_bytes"] = _maxrss_bytes()
    return outcome


def _plan_file(spec: dict[str, Any], problem: Problem, result: Any, cost: Any) -> dict[str, Any]:
    """The plan file of a cell's plan, as ``memplan optimize -o`` writes it, so that
    ``memplan validate`` and ``score`` read it with the model (or catalog workload).

    ``cost`` is the harness's own score of the plan (None for an invalid plan).
    """
    from memplan.budgets import ResolvedBudget
    from memplan.io.loading import ImportOptions
    from memplan.io.planfile import plan_file_dict

    source = str(spec["source"])
    imported = spec.get("import_options")
    return plan_file_dict(
        dataclasses.replace(result, cost=cost),
        problem,
        model_sha256=spec["model_sha256"],
        model_file=None if source.startswith("catalog:") else source,
        budget=ResolvedBudget(spec["budget"], spec["capacity_bytes"], spec["budget_note"]),
        import_options=(
            ImportOptions.from_dict(imported, "cell import options") if imported else None
        ),
    )


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


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``python -m memplan.bench.worker SPEC.json RESULT.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m memplan.bench.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    warmup_limit_s = float(spec.get("warmup_limit_s", DEFAULT_WARMUP_LIMIT_S))
    _start_watchdog(warmup_limit_s + float(spec["deadline_s"]))
    outcome = solve_spec(spec, spec.get("ready_path"))
    # jsonable first: a plug-in's stats may have keys json.dumps refuses (a tuple)
    atomic_write_text(args[1], json.dumps(jsonable(outcome)))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # do not wait for threads a solver may have left running
