"""The Python and the numba-compiled kernels give the same answers; small jobs skip numba."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from alloc_helpers import challenging_file

from memplan.dsa import available_allocators, make_allocator, max_live_bytes, stacked_height_bytes
from memplan.io.buffers_csv import read_buffers_csv
from memplan.solver import Budget, Status
from memplan.solvers import jit as _jit
from memplan.solvers.alloc.common import Prepared, prepare
from memplan.solvers.alloc.exact import ExactAllocator, decide
from memplan.solvers.alloc.greedy import PORTFOLIO_VARIANTS, _orders, run_variant
from memplan.solvers.alloc.improve import improve_lowest_first
from memplan.solvers.alloc.intervals import pack
from memplan.solvers.jit import KernelChoice
from memplan.testing.allocators import brute_force_min_height, random_buffers

SEEDS = range(40)


def _instance(seed: int) -> list:  # type: ignore[type-arg]
    n = 1 + seed % 45
    return random_buffers(
        seed,
        n,
        horizon=4 + seed % 30,
        max_size=1 + seed % 60,
        alignments=((1,), (1, 2), (1, 4, 16))[seed % 3],
        fixed_prob=(0.0, 0.1, 0.3)[seed % 3],
    )


def _job(buffers: list, kernels: str) -> Prepared:  # type: ignore[type-arg]
    job = prepare(ExactAllocator(kernels=kernels), buffers, None, Budget(time_limit_s=30))
    assert isinstance(job, Prepared)
    return job


@pytest.mark.parametrize("seed", SEEDS)
def test_packing_and_every_greedy_variant_agree(seed: int) -> None:
    buffers = _instance(seed)
    python, compiled = KernelChoice("python", 0), KernelChoice("compiled", 0)
    p_py, p_nb = pack(buffers, python), pack(buffers, compiled)
    for a, b in zip(p_py, p_nb, strict=True):
        assert np.array_equal(a, b)
    orders = _orders(p_py)
    for order_name, rule in PORTFOLIO_VARIANTS:
        budget = Budget(time_limit_s=60)
        got_py = run_variant(p_py, orders, order_name, rule, python, budget)
        got_nb = run_variant(p_nb, orders, order_name, rule, compiled, budget)
        assert got_py is not None and got_nb is not None
        assert got_py[1] == got_nb[1] and np.array_equal(got_py[0], got_nb[0]), (order_name, rule)


def test_passes_cut_into_single_steps_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass resumed after every placement gives the pass run in one call."""
    from memplan.solvers.alloc import greedy

    for seed in SEEDS[::5]:
        p = pack(_instance(seed))
        orders = _orders(p)
        compiled, budget = KernelChoice("compiled", 0), Budget(time_limit_s=60)
        whole = [run_variant(p, orders, o, r, compiled, budget) for o, r in PORTFOLIO_VARIANTS]
        with monkeypatch.context() as patch:
            patch.setattr(greedy, "CHUNK_WORK", 1)
            steps = [run_variant(p, orders, o, r, compiled, budget) for o, r in PORTFOLIO_VARIANTS]
        for a, b in zip(whole, steps, strict=True):
            assert a is not None and b is not None
            assert a[1] == b[1] and np.array_equal(a[0], b[0])


@pytest.mark.parametrize("seed", SEEDS[::2])
def test_hill_climb_agrees(seed: int) -> None:
    buffers = _instance(seed)[:20]
    p = pack(buffers)
    orders = _orders(p)
    python, compiled = KernelChoice("python", 0), KernelChoice("compiled", 0)
    done = run_variant(p, orders, "time", "lowest", compiled, Budget(time_limit_s=60))
    assert done is not None
    _, height, rank = done
    budget = Budget(time_limit_s=60)
    got_py, done_py = improve_lowest_first(p, rank, height, p.max_live, seed, python, budget)
    got_nb, done_nb = improve_lowest_first(p, rank, height, p.max_live, seed, compiled, budget)
    assert done_py and done_nb
    assert (got_py is None) == (got_nb is None)
    if got_py is not None and got_nb is not None:
        assert got_py[1] == got_nb[1] and np.array_equal(got_py[0], got_nb[0])


@pytest.mark.parametrize("seed", SEEDS[:24])
def test_exact_search_agrees_node_for_node(seed: int) -> None:
    buffers = _instance(seed)[:7]
    best = brute_force_min_height(buffers)
    live = max(1, best - 1)
    for capacity in sorted({best, best - 1, live}):
        if capacity < 0:
            continue
        budget = Budget(time_limit_s=30)
        py = decide(_job(buffers, "python"), capacity, budget)
        nb = decide(_job(buffers, "compiled"), capacity, budget)
        assert py.status is nb.status and py.nodes == nb.nodes
        assert py.status is (Status.FEASIBLE if capacity >= best else Status.INFEASIBLE)
        if py.offsets is not None and nb.offsets is not None:
            assert np.array_equal(py.offsets, nb.offsets)


@pytest.mark.parametrize("name", available_allocators())
def test_every_allocator_gives_the_same_offsets_either_way(name: str) -> None:
    for seed in SEEDS[::4]:
        buffers = _instance(seed)[:12]
        for capacity, minimize in ((None, True), (stacked_height_bytes(buffers), False)):
            results = [
                make_allocator(name, {"kernels": k, "minimize": minimize, "seed": seed}).allocate(
                    buffers, capacity, Budget(time_limit_s=30)
                )
                for k in ("python", "compiled")
            ]
            if Status.TIMEOUT not in (results[0].status, results[1].status):
                assert results[0].offsets_bytes == results[1].offsets_bytes, (name, seed)
                assert results[0].status is results[1].status
                assert results[0].stats["kernels"] == "python"


def test_switching_to_compiled_mid_search_keeps_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kernels=auto starts in Python and switches after PYTHON_SECONDS; same result."""
    buffers = read_buffers_csv(challenging_file("G"))  # 3619 nodes at 2^20, about 2 s in Python
    monkeypatch.setattr(_jit, "PYTHON_WORK_LIMIT", 10**9)
    monkeypatch.setattr(_jit, "PYTHON_SECONDS", 0.2)
    monkeypatch.setattr(_jit, "compiled_loaded", False)
    results = {}
    for kernels in ("auto", "compiled"):
        allocator = make_allocator("exact", {"kernels": kernels})
        results[kernels] = allocator.allocate(buffers, 1 << 20, Budget(time_limit_s=60))
    assert results["auto"].fits
    assert results["auto"].stats["kernels"] == "compiled"  # it switched
    assert results["auto"].offsets_bytes == results["compiled"].offsets_bytes
    assert results["auto"].stats["nodes"] == results["compiled"].stats["nodes"]


def test_kernel_choice_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_jit, "compiled_loaded", False)
    monkeypatch.setattr(_jit, "first_allocation_s", time.perf_counter())  # window open
    assert KernelChoice("auto", _jit.PYTHON_WORK_LIMIT).python
    monkeypatch.setattr(_jit, "compiled_loaded", True)  # numba's start-up is paid already
    assert not KernelChoice("auto", 1).python
    monkeypatch.setattr(_jit, "compiled_loaded", False)
    assert not KernelChoice("auto", _jit.PYTHON_WORK_LIMIT + 1).python
    assert KernelChoice("python", 10**9).python and not KernelChoice("compiled", 0).python
    monkeypatch.setattr(_jit, "first_allocation_s", time.perf_counter() - 2 * _jit.PYTHON_SECONDS)
    assert not KernelChoice("auto", 1).python  # the process's Python window has closed
    monkeypatch.setattr(_jit, "first_allocation_s", time.perf_counter())
    choice = KernelChoice("auto", 0)
    monkeypatch.setattr(_jit, "PYTHON_SECONDS", 0.0)
    time.sleep(0.001)
    from memplan.solvers.alloc.intervals import align_up

    assert choice(align_up)(5, 4) == 8 and choice.used == "compiled"


def test_compile_notice_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The listener speaks at the first compile start of an allocator kernel, then never."""
    from numba.core import event

    _jit._install_compile_notice()

    class Fake:
        py_func = _jit.Kernel.__init__  # any function of memplan.solvers.alloc

    for _ in range(2):
        event.broadcast(event.Event("numba:compile", event.EventStatus.START, {"dispatcher": Fake}))
    err = capsys.readouterr().err
    assert err.count(_jit.COMPILE_NOTICE) <= 1


#: Code for a subprocess: records in ``compiles`` every kernel numba compiles from here on.
COMPILE_SPY = (
    "from numba.core import event\n"
    "compiles = []\n"
    "class Spy(event.Listener):\n"
    "    def on_start(self, ev):\n"
    "        compiles.append(ev.data['dispatcher'].py_func.__qualname__)\n"
    "    def on_end(self, ev):\n"
    "        pass\n"
    "event.register('numba:compile', Spy())\n"
)


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_a_fresh_cache_compiles_everything_once_and_nothing_later(tmp_path: Path) -> None:
    """The first compiled use compiles every kernel (one notice); no path compiles after."""
    code = (
        "from memplan.dsa import make_allocator, Buffer, available_allocators\n"
        "from memplan.solver import Budget\n"
        "from memplan.testing.allocators import instances\n"
        "b = [Buffer(i, i, i + 2, 4) for i in range(3)]\n"
        "r = make_allocator('greedy-by-size', {'kernels': 'compiled'}).allocate(b, 8, Budget())\n"
        "assert r.fits, r\n"
        f"{COMPILE_SPY}"
        "for name in available_allocators():\n"
        "    for minimize in (False, True):\n"
        "        a = make_allocator(name, {'kernels': 'compiled', 'minimize': minimize})\n"
        "        for _, buffers in instances(range(2)):\n"
        "            for cap in (None, 10**6, 60):\n"
        "                a.allocate(buffers, cap, Budget(time_limit_s=1))\n"
        "assert not compiles, compiles\n"
    )
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    cold = _run(code, env)
    assert cold.stderr.count(_jit.COMPILE_NOTICE) == 1, cold.stderr
    warm = _run(code.split(COMPILE_SPY)[0], env)  # the trigger alone, from the cache
    assert _jit.COMPILE_NOTICE not in warm.stderr


def test_small_jobs_never_load_numba(tmp_path: Path) -> None:
    path = tmp_path / "three.csv"
    path.write_text("id,lower,upper,size\na,0,2,4\nb,1,3,4\nc,2,4,4\n")
    code = (
        "import sys\n"
        "from memplan.cli import main\n"
        f"assert main(['allocate', {str(path)!r}, '--capacity', '16']) == 0\n"
        f"assert main(['allocate', {str(path)!r}, '--algorithm', 'exact']) == 0\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite'))\n"
        "assert not loaded, loaded\n"
    )
    _run(code)


def test_without_numba_the_compiled_mode_runs_python() -> None:
    code = (
        "import sys\n"
        "sys.modules['numba'] = None  # import numba fails\n"
        "from memplan.dsa import make_allocator\n"
        "from memplan.solver import Budget\n"
        "from memplan.testing.allocators import random_buffers\n"
        "b = random_buffers(3, 12)\n"
        "a = make_allocator('exact', {'kernels': 'compiled', 'minimize': True})\n"
        "r = a.allocate(b, None, Budget(60))\n"
        "assert r.status.value == 'optimal', r\n"
        "print(r.height_bytes)\n"
    )
    out = _run(code).stdout.strip()
    buffers = random_buffers(3, 12)
    expected = make_allocator("exact", {"kernels": "compiled", "minimize": True}).allocate(
        buffers, None, Budget(60)
    )
    assert int(out) == expected.height_bytes


def test_ctrl_c_during_a_kernels_first_call_waits_for_numba(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C while numba loads or compiles a kernel (its first call) is delivered after
    the call returns: raised inside numba's loader, it left it half set up and a second
    Ctrl-C of ``memplan allocate`` crashed the process (segmentation fault)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    steps: list[str] = []

    class Loading:
        """A dispatcher with nothing loaded yet, whose loading gets a Ctrl-C half way."""

        overloads = ()  # numba fills this dict on the first call

        def __call__(self, x: int) -> int:
            steps.append("loading")
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # bytecodes: where Python runs its signal handlers
                pass
            steps.append("loaded")
            return x + 1

    monkeypatch.setattr(_jit, "_KERNELS", list(_jit._KERNELS))  # keep the registry clean
    k = _jit.Kernel(lambda x: x + 1)
    monkeypatch.setattr(k, "_compiled", Loading())
    try:
        with pytest.raises(KeyboardInterrupt):
            KernelChoice("compiled", 0)(k)(1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert steps == ["loading", "loaded"]


def test_sigint_deferred_passes_each_ctrl_c_on_in_order() -> None:
    import signal

    seen: list[str] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append("handler"))
    try:
        with _jit.sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
            seen.append("body done")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen[0] == "body done" and seen[1:] == ["handler", "handler"]


def test_a_fresh_cache_compiles_in_the_background_and_the_solve_keeps_its_limit(
    tmp_path: Path,
) -> None:
    """kernels=auto on a fresh installation (an empty cache): the solve compiles nothing
    itself (it took 20 to 36 s whatever the time limit), runs the Python kernels, says so
    once, and a background process fills the cache; the next process runs the compiled
    kernels without compiling."""
    solve = (
        "import time\n"
        "from memplan.dsa import make_allocator\n"
        "from memplan.solver import Budget\n"
        "from memplan.testing.allocators import random_buffers\n"
        f"{COMPILE_SPY}"
        "buffers = random_buffers(3, 400, horizon=100, max_size=4096)\n"
        "start = time.perf_counter()\n"
        "r = make_allocator('auto', {}).allocate(buffers, None, Budget(time_limit_s=2))\n"
        "assert r.offsets_bytes is not None\n"
        "print('KERNELS', r.stats['kernels'], round(time.perf_counter() - start, 2))\n"
        "assert not compiles, compiles\n"
    )
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    cold = _run(solve, env)
    assert cold.stderr.count(_jit.BACKGROUND_NOTICE) == 1, cold.stderr
    assert _jit.COMPILE_NOTICE not in cold.stderr
    assert "KERNELS python" in cold.stdout
    seconds = float(cold.stdout.split("KERNELS python")[1].split()[0])
    assert seconds < 6  # about the 2-s limit (compiling in the solve took 20 s and more)
    lock = _run(
        "from memplan.solvers.jit import warmup_lock_path; print(warmup_lock_path())", env
    ).stdout.strip()
    deadline = time.monotonic() + 300
    while os.path.exists(lock) and time.monotonic() < deadline:
        time.sleep(1)
    assert not os.path.exists(lock), "the background compile did not finish in 5 minutes"
    warm = _run(solve, env)
    assert "KERNELS compiled" in warm.stdout, warm.stdout
    assert _jit.BACKGROUND_NOTICE not in warm.stderr


def test_kernels_imported_after_the_first_look_are_not_compiled_in_the_solve(
    tmp_path: Path,
) -> None:
    """The portfolio's kernels are in the cache but the exact search's are not (the
    background compile is half way): an ``auto`` allocation whose exact search starts
    after the portfolio ran compiles nothing itself. Once "every kernel is ready" had been
    seen with only the portfolio's modules imported, the exact search's kernels, imported
    later, were taken as ready too and compiled in the solve, seconds past its limit."""
    cache = tmp_path / "numba-cache"
    env = {"NUMBA_CACHE_DIR": str(cache)}
    subprocess.run(
        [sys.executable, "-m", "memplan.solvers.warmup"],
        check=True, env={**os.environ, **env}, capture_output=True, timeout=600,
    )  # fmt: skip
    exact_files = [
        f for f in cache.rglob("*") if f.name.startswith(("search_state.", "search_kernel."))
    ]
    assert exact_files, sorted(f.name for f in cache.rglob("*"))
    for f in exact_files:
        f.unlink()
    lock = Path(
        _run(
            "from memplan.solvers.jit import warmup_lock_path as p; print(p())", env
        ).stdout.strip()
    )
    lock.touch()  # a background compile "at work": the solve below starts none
    csv = tmp_path / "buffers.csv"
    rows = random_buffers(3, 400, horizon=100, max_size=4096)
    csv.write_text(
        "id,lower,upper,size\n"
        + "".join(f"{b.id},{b.lower},{b.upper},{b.size_bytes}\n" for b in rows)
    )
    # At max live the portfolio's packing does not fit, so the exact search runs after it.
    max_live = max_live_bytes(rows)
    solve = (
        "import time\n"
        "from memplan.cli import main\n"
        f"{COMPILE_SPY}"
        "start = time.perf_counter()\n"
        f"code = main(['allocate', {str(csv)!r}, '--capacity', '{max_live}',\n"
        "             '--time-limit', '3', '--json'])\n"
        "print('SECONDS', round(time.perf_counter() - start, 2), code)\n"
        "assert not compiles, compiles\n"
    )
    try:
        out = _run(solve, env).stdout
    finally:
        lock.unlink()
    assert float(out.split("SECONDS")[1].split()[0]) < 6, out
    assert "exact" in out, out  # the exact search started


def test_a_waiting_allocation_switches_to_the_compiled_kernels_once_they_are_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the background process compiles, ``auto`` runs Python; when the cache is
    filled, the same allocation (the exact search's next slice) runs the compiled ones."""
    ready = [False]
    monkeypatch.setattr(_jit, "kernels_ready", lambda: ready[0])
    monkeypatch.setattr(_jit, "compile_in_background", lambda: None)
    monkeypatch.setattr(_jit, "RECHECK_S", 0.0)
    monkeypatch.setattr(_jit, "compiled_loaded", True)  # past the small-job window
    # A kernel made here must not stay in the registry: never compiled, it would keep
    # kernels_ready() False, and every later test's auto allocation would run Python.
    monkeypatch.setattr(_jit, "_KERNELS", list(_jit._KERNELS))
    k = _jit.Kernel(lambda x: x + 1)
    choice = KernelChoice("auto", 10**9)
    assert choice.waiting and choice(k) is k.python()
    ready[0] = True
    assert choice(k) is k.entry() and not choice.python and choice.used == "compiled"


@pytest.mark.parametrize("stamp", ["none", "holds", "cache gone"])
def test_a_first_command_of_small_jobs_starts_the_compile_for_the_next(
    tmp_path: Path, stamp: str
) -> None:
    """README's first command plans a small model with the Python kernels only: on a fresh
    installation it leaves the background compile running, so the large jobs after it do
    not spend their first 20 s or more in the Python kernels; once every kernel was
    compiled (the stamp), no command starts it again, unless the cache file the stamp
    names is gone (a new clone at the same path: the stamp in /tmp outlived it)."""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    if stamp != "none":
        witness = tmp_path / "witness.nbi"
        if stamp == "holds":
            witness.touch()
        path = _run("from memplan.solvers.jit import warmup_done_path as p; print(p())", env)
        Path(path.stdout.strip()).write_text(str(witness))
    csv = tmp_path / "three.csv"
    csv.write_text("id,lower,upper,size\na,0,2,4\nb,1,3,4\nc,2,4,4\n")
    code = (
        "import sys\n"
        "import memplan.solvers.jit as jit\n"
        "asked = []\n"
        "jit.compile_in_background = lambda notice: asked.append(notice)\n"
        f"sys.argv = ['memplan', 'allocate', {str(csv)!r}, '--capacity', '16']\n"
        "from memplan.cli import entry_point\n"
        "try:\n"
        "    entry_point()\n"
        "except SystemExit as done:\n"
        "    print('EXIT', done.code, 'ASKED', len(asked))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'numba')\n"
        "assert not loaded, loaded  # deciding loads no numba\n"
    )
    out = _run(code, env).stdout
    assert f"EXIT 0 ASKED {0 if stamp == 'holds' else 1}" in out, out


def test_the_warm_up_leaves_its_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    stamp = Path(_jit.warmup_done_path())
    assert not stamp.exists()
    from memplan.solvers.warmup import compile_all_kernels

    try:
        compile_all_kernels()  # compiled in this process already: loads nothing new
        witness = stamp.read_text()  # a file of numba's cache, there while it is
        assert witness.endswith(".nbi") and Path(witness).exists(), witness
        assert _jit._stamp_holds()
    finally:
        stamp.unlink(missing_ok=True)
