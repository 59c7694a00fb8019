"""``memplan bench``: run solvers over a suite of workloads and budgets, and report.

Every (workload, scope, budget, solver) cell runs in its own process under a hard time
limit; each result is appended to ``DIR/results.jsonl`` as it finishes, so running the
same command again resumes (a folder keeps one setting of what changes every answer:
see :mod:`memplan.bench.runrecord`). ``memplan bench report DIR`` (or ``--report-only``)
rebuilds the reports from the results file. ``--preset NAME`` fills in the flags of one
of the project's named runs (:mod:`memplan.bench.presets`); flags given beside it win.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from memplan.accelerator import DEFAULT_PRESET
from memplan.bench.cells import DEFAULT_GRACE_S, DEFAULT_WARMUP_LIMIT_S
from memplan.cli.argparser import CommaList, input_file

DEFAULT_OUTPUT = "bench-results"
#: Values of the flags that are neither given nor set by a preset.
DEFAULTS: dict[str, Any] = {
    "solvers": "greedy",
    "budgets": "MR,MH,MP",
    "scope": "activations",
    "time_limit_s": 60.0,
    "grace_s": DEFAULT_GRACE_S,
    "warmup_limit_s": DEFAULT_WARMUP_LIMIT_S,
    "jobs": 1,
}


def add_solver_run_arguments(parser: Any, *, per: str) -> None:
    """The flags ``bench`` and ``compare`` share: which solvers, how long, how many at once.

    Defaults are left as None and filled in by :func:`setting` (a preset may set them).

    Args:
        parser: a parser or argument group.
        per: what one time limit is for, in the help ("cell", "budget").
    """
    parser.add_argument(
        "--solvers",
        action=CommaList,
        default=None,
        metavar="A,B",
        help=(
            "comma-separated solver specs: registry names or module:Class paths, each "
            "optionally with its own options, e.g. greedy,ilp,ilp[mode=fixed,backend=milp]; "
            "default: greedy; repeatable (the lists join)"
        ),
    )
    parser.add_argument(
        "--time-limit",
        dest="time_limit_s",
        type=_cell_seconds,
        default=None,
        metavar="SECONDS",
        help=f"each solver's time budget per {per}, in seconds; default: 60",
    )
    parser.add_argument(
        "--grace",
        dest="grace_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help=(
            "seconds a solver's process may run past the time limit (validation, writing) "
            f"before it is killed and recorded as timeout; default: {DEFAULT_GRACE_S:g}"
        ),
    )
    parser.add_argument(
        "--warmup-limit",
        dest="warmup_limit_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help=(
            "seconds a solver's process may take to import and warm up (JIT kernels) "
            "before its clock starts; the warm-up is timed apart from the solve; "
            f"default: {DEFAULT_WARMUP_LIMIT_S:g}"
        ),
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="SOLVER.NAME=VALUE",
        help=(
            "a solver option, e.g. greedy.order=min-peak (NAME=VALUE sets it for every "
            "solver that has it; options in a spec's brackets win); repeatable"
        ),
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="solves run at once (processes); default: 1",
    )


def _cell_seconds(text: str) -> float:
    """``--time-limit`` of bench and compare: seconds (the range is checked later).

    'none' (no limit), which ``optimize`` and ``allocate`` accept, is refused with the
    reason: each solve runs in its own process, killed at the time limit plus the grace.
    """
    if text.strip().lower() == "none":
        raise argparse.ArgumentTypeError(
            "must be a number of seconds here, e.g. 60 ('none' is for optimize and "
            "allocate: bench and compare kill each solver's process at the time limit plus "
            "--grace)"
        )
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds, e.g. 60, got {text!r}"
        ) from None


def warn_oversubscribed(jobs: int) -> None:
    """Warn when ``--jobs`` runs more solves at once than this machine has CPUs.

    Each solve's time limit is wall-clock: solves that share a CPU do less work within
    it, so their traffic and times are not those of a run with fewer jobs.
    """
    import os

    from memplan.cli.common import err_console

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        cpus = os.cpu_count() or 1
    if jobs > cpus:
        err_console.print(
            f"[yellow]warning:[/] --jobs {jobs} runs {jobs} solves at once on {cpus} CPU"
            f"{'s' if cpus > 1 else ''}: each solve's time limit is wall-clock, so they do "
            f"less work within it; use --jobs {cpus} or fewer for figures that compare "
            "with other runs"
        )


def setting(args: argparse.Namespace, name: str, preset: Any = None) -> Any:
    """A flag's value: as given, else the preset's, else :data:`DEFAULTS`."""
    value = getattr(args, name, None)
    if value is None and preset is not None:
        value = getattr(preset, name, None)
    return DEFAULTS.get(name) if value is None else value


def add_parser(subparsers: Any) -> None:
    """Register ``bench`` (and ``bench report``)."""
    from memplan.bench.presets import PRESETS

    parser = subparsers.add_parser(
        "bench",
        help="benchmark solvers over a suite of workloads and budgets",
        description=(
            "Run every (workload, scope, budget, solver) cell in its own process under a hard "
            "time limit, append each result to DIR/results.jsonl as it finishes (running the "
            "same command again skips finished cells; more workloads, solvers or budgets may be "
            "added to DIR, but another --time-limit, --accelerator, --dtype-bytes or --exact-mp "
            "needs a new DIR), then write summary.md, summary.csv, cells.csv and figures/ in "
            "DIR. Example: memplan bench --suite small "
            "--solvers greedy --budgets MR,MH,MP -o runs/small; or a named run: memplan "
            "bench --preset ilp"
        ),
    )
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="a named run (flags given beside it win): "
        + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
    )
    parser.add_argument(
        "--suite",
        nargs="+",
        metavar="NAME|PATH",
        help=(
            "a catalog suite (light, small, nas, randwire, transformer, cnn, large, all), catalog "
            "workload names, or model files (.onnx / memplan graph .json) or folders of them"
        ),
    )
    add_solver_run_arguments(parser, per="cell")
    parser.add_argument(
        "--budgets",
        action=CommaList,
        default=None,
        metavar="SPEC,...",
        help=(
            "comma-separated scratchpad budgets: MR, MH, MP, sizes (512KiB, 2MB) or multiples "
            "(0.5*MP); resolved once per workload and scope; default: MR,MH,MP; repeatable "
            "(the lists join)"
        ),
    )
    parser.add_argument(
        "--scope",
        choices=["activations", "all", "both"],
        default=None,
        help=(
            "tensors placed in the scratchpad: activations (weights stream), all, or both "
            "runs; default: activations"
        ),
    )
    parser.add_argument(
        "--exact-mp",
        dest="exact_mp_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help=(
            "prove M_P (the ilp extra's exact min-peak search, this many seconds per workload "
            "and scope; proofs are cached) before resolving MP and MH budgets; default: a "
            "cached proof, else the heuristic min-peak order's peak"
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DIR",
        help=(
            "output folder for results.jsonl and the reports; default: "
            f"{DEFAULT_OUTPUT} ({DEFAULT_OUTPUT}/PRESET with --preset)"
        ),
    )
    parser.add_argument(
        "--accelerator",
        type=input_file("--accelerator"),
        default=DEFAULT_PRESET,
        metavar="NAME|FILE",
        help=(
            "accelerator preset or spec file (alignment, rates, energies); "
            f"default: {DEFAULT_PRESET}"
        ),
    )
    parser.add_argument(
        "--dtype-bytes",
        dest="dtype_bytes",
        type=int,
        default=None,
        metavar="N",
        help="bytes per element at ONNX import (e.g. 1 for int8); default: the ONNX types",
    )
    parser.add_argument(
        "--dim",
        action="append",
        nargs="+",
        default=None,
        metavar="NAME=VALUE",
        help=(
            "give a symbolic dimension a size in elements, e.g. batch=1, in every ONNX "
            "model of the suite that has it (a name no model has is refused); several "
            "separated by spaces or by repeating the flag"
        ),
    )
    parser.add_argument(
        "--dask",
        metavar="local|tcp://HOST:PORT",
        default=None,
        help=(
            "run the cells on a Dask cluster: 'local' starts a LocalCluster on 127.0.0.1 with "
            "--jobs worker processes; needs pip install 'memplan[dist]'"
        ),
    )
    parser.add_argument(
        "--save-plans",
        action="store_true",
        help=(
            "also write every plan to DIR/plans/KEY.json, a plan file as memplan optimize -o "
            "writes (check it with: memplan validate MODEL DIR/plans/KEY.json)"
        ),
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again the cells recorded as error or killed (instead of skipping them)",
    )
    _add_report_arguments(parser)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="do not run anything: rebuild the reports from DIR/results.jsonl",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_command)
    sub = parser.add_subparsers(dest="bench_command", metavar="report")
    report = sub.add_parser(
        "report",
        help="rebuild the reports of a results folder",
        description=(
            "Rebuild summary.md, summary.csv, cells.csv and figures/ from DIR/results.jsonl."
        ),
    )
    report.add_argument("output", metavar="DIR", help="the folder holding results.jsonl")
    _add_report_arguments(report)
    report.set_defaults(func=report_command)


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="SOLVER",
        help=(
            "the solver traffic reductions are measured against: a solver spec as given to "
            "--solvers, or a solver name only one spec has; default: greedy when it was "
            "run, else the first solver"
        ),
    )
    parser.add_argument(
        "--no-figures", dest="figures", action="store_false", help="skip the matplotlib figures"
    )


def baseline_label(
    baseline: str | None, solvers: Sequence[str], options: Mapping[str, Mapping[str, str]]
) -> str:
    """The row label of the baseline: ``greedy[order=model]``, as :func:`solver_label` writes it.

    ``baseline`` is one of the specs as written, or a solver name that only one spec has;
    None means the first spec.

    Raises:
        ConfigError: ``baseline`` is none of the specs, or names several of them.
    """
    from memplan.bench.rows import solver_label
    from memplan.bench.specs import parse_spec, solver_options
    from memplan.errors import ConfigError

    if baseline is None:
        matches = [solvers[0]]
    else:
        matches = [s for s in solvers if s.strip() == baseline.strip()] or [
            s for s in solvers if parse_spec(s)[0] == baseline.strip()
        ]
    if not matches:
        raise ConfigError(
            f"--baseline {baseline!r} is not one of --solvers ({', '.join(solvers)}); "
            "add it there or name one of them"
        )
    if len(matches) > 1:
        raise ConfigError(
            f"--baseline {baseline!r} names {len(matches)} of --solvers "
            f"({', '.join(matches)}); give one of them as written"
        )
    name, opts = solver_options(matches[0], options)
    return solver_label({"solver": name, "options": opts})


def split_list(text: str, what: str) -> tuple[str, ...]:
    """A comma-separated list (budgets, orders, suites), stripped and checked.

    Raises:
        ConfigError: the list is empty, has an empty item, or repeats an item.
    """
    from memplan.bench.specs import refuse_repeats
    from memplan.errors import ConfigError

    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ConfigError(f"{what} is empty; give a comma-separated list")
    if not all(parts):
        raise ConfigError(f"{what} {text!r} has an empty item; remove the extra comma")
    return refuse_repeats(parts, what, text)


def split_budgets(text: str, what: str) -> tuple[str, ...]:
    """A comma-separated list of budget specs (:func:`split_list`), none of which means
    the same budget as another: ``MR,mr`` ran every solver twice at M_R, as two budgets.

    Raises:
        ConfigError: as :func:`split_list`; a spec that is no budget; two specs of one
            budget (naming both).
    """
    from memplan.budgets import budget_identity
    from memplan.errors import ConfigError

    specs = split_list(text, what)
    seen: dict[Any, str] = {}
    for spec in specs:
        identity = budget_identity(spec)
        if identity in seen:
            raise ConfigError(
                f"{what} {text!r}: {spec!r} is the same budget as {seen[identity]!r}; give it once"
            )
        seen[identity] = spec
    return specs


def report_command(args: argparse.Namespace) -> int:
    """``memplan bench report DIR``: rebuild and print the reports (naming the lines of
    the results file they leave out)."""
    from rich.markup import escape

    from memplan.bench.report import progress_line, write_reports
    from memplan.bench.results import RESULTS_NAME, load_results_checked
    from memplan.bench.rows import merge_rows
    from memplan.bench.runrecord import in_planned_order
    from memplan.bench.summary import summarize
    from memplan.bench.terminal import bench_summary
    from memplan.cli import EXIT_OK
    from memplan.cli.common import console, err_console

    loaded, problems = load_results_checked(args.output)
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        err_console.print(
            f"[yellow]warning:[/] {len(problems)} unreadable line(s) in "
            f"{escape(str(Path(args.output) / RESULTS_NAME))} were left out of the reports: "
            f"{escape(shown)}"
        )
    rows = in_planned_order(merge_rows(loaded), Path(args.output))
    args.baseline = _report_baseline(rows, args.baseline, args.output)
    written = write_reports(args.output, rows, args.baseline, figures=args.figures)
    console.print(
        bench_summary(
            summarize(rows, args.baseline), args.baseline, progress_line(args.output, rows)
        )
    )
    more = len(written) - 4
    err_console.print(
        f"{len(rows)} results; wrote {', '.join(str(p) for p in written[:4])}"
        + (f" and {more} more figure{'s' if more > 1 else ''}" if more > 0 else "")
    )
    return EXIT_OK


def _report_baseline(
    rows: Sequence[Mapping[str, Any]], baseline: str | None, folder: str
) -> str | None:
    """The baseline's label among ``rows``: ``baseline`` (a label, or a solver name only one
    label has) or, when None, greedy if it ran, else the first solver.

    Raises:
        ConfigError: ``baseline`` names no solver of the rows (every change showed "–"
            under the legend "against nosuch").
    """
    from memplan.bench.rows import solver_label
    from memplan.bench.summary import default_baseline, resolve_baseline
    from memplan.errors import ConfigError

    names = {solver_label(row): str(row["solver"]) for row in rows}
    labels = list(names)
    if not labels:
        return baseline
    if baseline is None:
        return default_baseline(names) or labels[0]
    resolved = resolve_baseline(rows, baseline)
    if resolved not in labels:
        raise ConfigError(
            f"--baseline {baseline!r} is none of the solvers in {folder} ({', '.join(labels)}); "
            "name one of them"
        )
    return resolved


def bench_config(args: argparse.Namespace) -> Any:
    """The :class:`~memplan.bench.harness.BenchConfig` the flags (and a preset) ask for."""
    from memplan.accelerator import load_accelerator
    from memplan.bench.harness import BenchConfig
    from memplan.bench.presets import get_preset
    from memplan.bench.report import REPORT_NAMES
    from memplan.bench.results import RESULTS_NAME
    from memplan.bench.specs import refuse_repeats, split_solver_options, split_specs
    from memplan.errors import ConfigError
    from memplan.io.files import check_output_path
    from memplan.problem import Scope

    preset = get_preset(args.preset) if args.preset else None
    suite = args.suite or (preset.suite if preset else None)
    if not suite:
        raise ConfigError(
            "--suite is required (a suite name, workload names or model files), or a --preset"
        )
    refuse_repeats([str(entry) for entry in suite], "--suite", " ".join(map(str, suite)))
    if setting(args, "jobs", preset) < 1:
        raise ConfigError(f"--jobs must be at least 1, got {setting(args, 'jobs', preset)}")
    if args.dask is not None:
        check_dask_address(args.dask)
    solvers = split_specs(setting(args, "solvers", preset))
    scope = setting(args, "scope", preset)
    scopes = (Scope.ACTIVATIONS, Scope.ALL) if scope == "both" else (Scope.parse(scope),)
    dtype_bytes = setting(args, "dtype_bytes", preset)
    if dtype_bytes is not None and dtype_bytes < 1:
        raise ConfigError(f"--dtype-bytes must be a positive number of bytes, got {dtype_bytes}")
    from memplan.onnx.flags import parse_dims

    config = BenchConfig(
        suite=tuple(suite),
        solvers=solvers,
        budgets=split_budgets(setting(args, "budgets", preset), "--budgets"),
        scopes=scopes,
        out_dir=Path(args.output),
        accelerator=load_accelerator(args.accelerator),
        time_limit_s=setting(args, "time_limit_s", preset),
        grace_s=setting(args, "grace_s", preset),
        warmup_limit_s=setting(args, "warmup_limit_s", preset),
        jobs=setting(args, "jobs", preset),
        options=split_solver_options(args.option, solvers),
        dtype_bytes=dtype_bytes,
        dims=parse_dims(item for items in args.dim or () for item in items),
        exact_mp_s=setting(args, "exact_mp_s", preset),
        dask=args.dask,
        save_plans=args.save_plans,
        retry_failed=args.retry_failed,
    )
    args.baseline = baseline_label(
        args.baseline or _default_baseline(solvers), solvers, config.options
    )
    # Checked before any workload is loaded: a long run must not end on an unwritable file.
    check_output_path(Path(args.output) / RESULTS_NAME, "--output", create_folders=True)
    for name in REPORT_NAMES:
        check_output_path(Path(args.output) / name, "report", create_folders=True)
    if getattr(args, "figures", True):  # a file named figures ended a run after its cells
        check_output_path(
            Path(args.output) / "figures" / "solve_time.png", "figure", create_folders=True
        )
    return config


def _default_baseline(solvers: Sequence[str]) -> str | None:
    """greedy when it is among ``solvers`` (as written, or the one spec of that name);
    None (the first solver) otherwise."""
    from memplan.bench.specs import parse_spec
    from memplan.bench.summary import default_baseline

    return default_baseline({spec: parse_spec(spec)[0] for spec in solvers})


def check_dask_address(address: str) -> None:
    """Refuse a ``--dask`` value that is neither ``local`` nor ``[PROTOCOL://]HOST:PORT``,
    before any file is made (``tcp://127.0.0.1`` was a 55-line traceback from Dask).

    Raises:
        ConfigError: naming the value and the accepted forms.
    """
    from memplan.errors import ConfigError

    if address == "local":
        return
    _, _, rest = address.rpartition("://")
    host, sep, port = rest.rpartition(":")
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(
            f"--dask {address!r}: not an address; give local or a scheduler address with "
            "its port, such as tcp://10.0.0.5:8786"
        )


def run_command(args: argparse.Namespace) -> int:
    """``memplan bench``: prepare, run with a progress bar, report."""
    from rich.markup import escape

    from memplan.bench.harness import execute_bench, prepare_bench
    from memplan.cli import EXIT_INTERRUPTED, EXIT_OK
    from memplan.cli.common import err_console
    from memplan.cli.plancommon import sigterm_as_ctrl_c

    if args.output is None:
        args.output = f"{DEFAULT_OUTPUT}/{args.preset}" if args.preset else DEFAULT_OUTPUT
    if args.report_only:
        return report_command(args)
    config = bench_config(args)
    if config.dask in (None, "local"):  # a remote cluster's CPUs are its own
        warn_oversubscribed(config.jobs)
    if not args.quiet:
        err_console.print(
            f"loading {len(config.suite)} suite entr{'y' if len(config.suite) == 1 else 'ies'}..."
        )
    run = prepare_bench(config)
    for failure in run.load_failures:
        err_console.print(
            f"[yellow]warning:[/] skipped a model that failed to load: {escape(failure)}"
        )
    if run.unreadable_lines:
        err_console.print(
            f"[yellow]warning:[/] {run.unreadable_lines} unreadable line(s) in "
            f"{run.results_path} (cut short by a crash) were ignored"
        )
    done = len(run.cells) - len(run.pending)
    err_console.print(
        f"{len(run.cells)} cells, {done} already in {run.results_path}, "
        f"{len(run.pending)} to run ({config.jobs} at a time"
        + (f" on Dask {config.dask}" if config.dask else "")
        + f", time limit {config.time_limit_s:g} s)"
    )
    started = time.monotonic()
    try:
        with sigterm_as_ctrl_c():
            written = execute_with_progress(run, execute_bench, quiet=args.quiet)
    except KeyboardInterrupt:
        err_console.print(
            f"memplan bench: interrupted; finished cells are in {run.results_path}; "
            "run the same command again to resume"
        )
        return EXIT_INTERRUPTED
    err_console.print(f"ran {written} cells in {time.monotonic() - started:.1f} s")
    code = report_command(args)
    return code if code != EXIT_OK else _no_plan_code(run)


def _no_plan_code(run: Any) -> int:
    """EXIT_NO_PLAN when no cell of the run has a plan (every solve failed, timed out
    empty-handed or was infeasible), as ``compare`` exits; else EXIT_OK."""
    from memplan.bench.results import latest_rows, read_rows
    from memplan.bench.rows import has_plan
    from memplan.cli import EXIT_NO_PLAN, EXIT_OK
    from memplan.cli.common import err_console

    keys = {cell.key for cell in run.cells}
    rows = [r for r in latest_rows(read_rows(run.results_path)[0]).values() if r["key"] in keys]
    if any(has_plan(row) for row in rows):
        return EXIT_OK
    err_console.print(
        f"memplan bench: none of the {len(run.cells)} cells has a plan (see the errors in "
        f"{run.config.out_dir / 'summary.md'})"
    )
    return EXIT_NO_PLAN


def execute_with_progress(run: Any, execute: Any, quiet: bool, label: str = "bench") -> int:
    """Run the cells with a rich progress bar on stderr.

    Args:
        run: has ``pending``, the cells to run.
        execute: ``execute(run, on_row=..., on_start=...)`` runs them; returns how many.
        quiet: no bar.
        label: the bar's name while no cell runs.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from memplan.cli.common import err_console

    counts: dict[str, int] = {}
    running: dict[str, str] = {}
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}", markup=False),
        console=err_console,
        disable=quiet,
    )

    with progress:
        task = progress.add_task(label, total=len(run.pending), counts="")

        def describe() -> str:
            names = list(running.values())
            if not names:
                return label
            return f"{names[0]}" + (f" (+{len(names) - 1})" if len(names) > 1 else "")

        def on_start(cell: Any) -> None:
            running[cell.key] = f"{cell.workload}/{cell.scope}/{cell.budget}/{cell.solver}"
            progress.update(task, description=describe())

        def on_row(row: dict[str, Any]) -> None:
            running.pop(row["key"], None)
            status = str(row.get("status"))
            counts[status] = counts.get(status, 0) + 1
            text = " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))
            progress.update(task, advance=1, description=describe(), counts=text)

        return int(execute(run, on_row=on_row, on_start=on_start))
