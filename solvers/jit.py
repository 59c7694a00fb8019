"""Kernels that run as plain Python, or compiled by numba only when a call needs speed.

A kernel is written in the subset of Python that numba compiles (numpy arrays, named
tuples of arrays, loops, no objects). :func:`kernel` wraps it without importing numba:

* ``k.python()`` is the function itself, calling the Python versions of the kernels it
  uses; small instances run this way, so they start without loading numba at all;
* ``k.compiled()`` imports numba and compiles the function (with the compiled
  versions of the kernels it calls) on its first use. Compiled code is cached on disk
  beside the source (``cache=True``). When the first compiled kernel a process asks
  for is not in the cache yet (a fresh installation), every kernel (the allocators',
  dnc's order search) is compiled at once (:mod:`.warmup`), saying so once on stderr:
  the compilation is paid in one known place, never again half way through a later,
  timed solve;
* ``k.entry()`` is the compiled version for calls from Python: its first call (numba
  loading or compiling) holds Ctrl-C back until it returns;
* ``k.fast()`` is what a solve with ``kernels=auto`` runs: ``k.entry()`` when that
  costs no compiling now (compiled in this process, or in numba's disk cache), else the
  Python version while a background process fills the cache (:func:`compile_in_background`,
  about 20 s, once per installation). A solve's time limit holds on a fresh installation
  too: compiling in the solve took 20 to 36 s whatever ``--time-limit`` said.

Both versions compute the same integers (the tests compare them on seeded instances),
so an allocation may start in Python and switch to compiled kernels half way through
(:class:`KernelChoice`) without changing its answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: The ``kernels`` option's values.
KERNEL_MODES = ("auto", "python", "compiled")

#: With ``kernels=auto``: instances whose work estimate (buffers + overlapping pairs) is
#: at most this run in Python first (about a millisecond per greedy pass).
PYTHON_WORK_LIMIT = 4_000

#: With ``kernels=auto``: seconds after a process's first allocation during which small
#: instances run the Python kernels (about what loading the compiled ones costs); later
#: allocations, and one still running then, use the compiled kernels.
PYTHON_SECONDS = 0.25

#: Printed once per process when numba starts compiling a kernel.
COMPILE_NOTICE = "memplan: compiling kernels once, about 20 s (later runs load them from the cache)"

_notice_installed = False

#: True once any compiled kernel was loaded in this process: from then on ``auto`` runs
#: compiled kernels only (numba's start-up is paid; the Python path only saves it).
compiled_loaded = False

#: ``time.perf_counter()`` of the process's first allocation with ``kernels=auto``.
first_allocation_s: float | None = None

_warming = False  # compiling every kernel now: no nested warm-up


class Kernel:
    """A numba-compatible function, run as Python or compiled on demand."""

    def __init__(self, fn: Callable[..., Any], inline: bool = False) -> None:
        self.fn = fn  # the function as written
        self.inline = inline  # compiled into each caller (small helpers on hot paths)
        self._python: Callable[..., Any] | None = None
        self._compiled: Callable[..., Any] | None = None
        self._entry: Callable[..., Any] | None = None
        self._jitted: Callable[..., Any] | None = None  # numba's dispatcher, once made
        _KERNELS.append(self)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, *args: Any) -> Any:
        """Run the Python version."""
        return self.python()(*args)

    def _called_kernels(self) -> dict[str, Kernel]:
        names: set[str] = set()
        codes = [self.fn.__code__]
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
        scope = self.fn.__globals__
        return {
            n: scope[n] for n in names if isinstance(scope.get(n), Kernel) and scope[n] is not self
        }

    def _bound(self, pick: Callable[[Kernel], Callable[..., Any]]) -> Callable[..., Any]:
        """A copy of the function whose kernel globals are replaced by ``pick(kernel)``."""
        scope = dict(self.fn.__globals__)
        for name, other in self._called_kernels().items():
            scope[name] = pick(other)
        fn = types.FunctionType(
            self.fn.__code__, scope, self.fn.__name__, self.fn.__defaults__, self.fn.__closure__
        )
        fn.__qualname__ = self.fn.__qualname__
        fn.__module__ = self.fn.__module__
        fn.__doc__ = self.fn.__doc__
        return fn

    def python(self) -> Callable[..., Any]:
        """The plain Python version."""
        if self._python is None:
            self._python = self._bound(Kernel.python)
        return self._python

    def _dispatcher(self) -> Callable[..., Any]:
        """numba's dispatcher of the kernel, bound to its callees' (nothing is compiled or
        loaded before its first call)."""
        if self._jitted is None:
            import numba

            options: dict[str, Any] = {"inline": "always"} if self.inline else {}
            jit = numba.njit(cache=True, nogil=True, **options)
            self._jitted = jit(self._bound(Kernel._dispatcher))
        return self._jitted

    def _reachable(self) -> list[Kernel]:
        """This kernel and every kernel it calls, directly or not."""
        seen: dict[int, Kernel] = {id(self): self}
        todo = [self]
        while todo:
            for other in todo.pop()._called_kernels().values():
                if id(other) not in seen:
                    seen[id(other)] = other
                    todo.append(other)
        return list(seen.values())

    def ready(self) -> bool:
        """True when the compiled version needs no compiling now: compiled in this
        process, or this kernel and every one it calls in numba's disk cache (then the
        first call only loads them, a fraction of a second)."""
        if self._compiled is not None:
            return True
        try:
            import numba  # noqa: F401
        except ImportError:
            return True  # the "compiled" version is the Python one
        return not any(_not_cached(k._dispatcher()) for k in self._reachable() if not k.inline)

    def fast(self) -> Callable[..., Any]:
        """:meth:`entry` when it is :meth:`ready`, else the Python version, and the cache
        is filled by a background process (:func:`compile_in_background`)."""
        if self.ready():
            return self.entry()
        compile_in_background()
        return self.python()

    def compiled(self) -> Callable[..., Any]:
        """The numba-compiled version (compiled or loaded from the cache on first call)."""
        if self._compiled is None:
            try:
                import numba  # noqa: F401
            except ImportError:  # numba is a dependency; without it, run Python
                self._compiled = self.python()
                return self._compiled
            global compiled_loaded, _warming
            first = not compiled_loaded
            compiled_loaded = True
            _install_compile_notice()
            self._compiled = self._dispatcher()
            if first and not _warming and not self.inline and _not_cached(self._compiled):
                from memplan.solvers.warmup import compile_all_kernels

                _warming = True
                try:
                    compile_all_kernels()
                finally:
                    _warming = False
        return self._compiled

    def entry(self) -> Callable[..., Any]:
        """The compiled version, to call from Python (:class:`KernelChoice` does).

        A call that makes numba load the kernel from its cache or compile it (the first
        one) holds Ctrl-C back until it returns (:func:`sigint_deferred`): a
        KeyboardInterrupt raised inside numba's loader leaves it half set up, and the
        process then crashed with a segmentation fault instead of aborting cleanly.
        """
        if self._entry is None:

            def call(*args: Any) -> Any:
                compiled = self._compiled
                if compiled is not None and getattr(compiled, "overloads", True):
                    return compiled(*args)  # loaded: interruptible only between calls
                with sigint_deferred():
                    return self.compiled()(*args)

            call.__name__ = self.__name__
            call.__doc__ = self.__doc__
            self._entry = call
        return self._entry


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back inside, then deliver it to the handler it was meant for.

    Only in the main thread (where handlers run) and when SIGINT has a Python handler
    (not ignored, not the system's default). A Ctrl-C caught inside is passed on once the
    block ends, as many times as it came: the default handler then raises
    KeyboardInterrupt, the command line's handler sets its stop flag or aborts.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # SIG_IGN, SIG_DFL or not set from Python
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        for signum in caught:
            previous(signum, None)


#: Printed once per process when a solve runs Python kernels while a background process
#: compiles the fast ones.
BACKGROUND_NOTICE = (
    "memplan: compiling the fast kernels in a background process (about 20 s, once per "
    "installation); until then this run uses the slower Python ones"
)

#: A lock older than this many seconds is left over by a compiling process that died.
STALE_LOCK_S = 600.0

_background_asked = False  # compile_in_background ran in this process

#: Seconds between two looks at numba's disk cache by an allocation that runs the
#: Python kernels while the background process compiles (a look costs a few file checks).
RECHECK_S = 0.5


_KERNELS: list[Kernel] = []  # every kernel made, in the order of its module's import
_ready_count = 0  # _KERNELS[:_ready_count] were all ready once: they stay so


def kernels_ready() -> bool:
    """True when no kernel made so far needs compiling (:meth:`Kernel.ready`).

    Kernels made later (a module imported after the last look, such as the exact
    search's after the greedy portfolio ran) are looked at when they exist: a True once
    is not a True for them.
    """
    global _ready_count
    while _ready_count < len(_KERNELS):
        k = _KERNELS[_ready_count]
        if not k.inline and not k.ready():
            return False
        _ready_count += 1
    return True


def warmup_lock_path() -> str:
    """The lock file of the background compile for this installation and cache folder
    (in the temporary folder): it exists while a process compiles."""
    key = f"{os.path.dirname(os.path.abspath(__file__))}|{os.environ.get('NUMBA_CACHE_DIR', '')}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"memplan-kernels-{digest}.lock")


def warmup_done_path() -> str:
    """The stamp file :func:`memplan.solvers.warmup.compile_all_kernels` leaves when it has
    run to the end for this installation and cache folder (beside the lock); it holds the
    path of one cache file (:func:`cache_witness`)."""
    return warmup_lock_path().removesuffix(".lock") + ".done"


#: Printed when a command whose jobs were small enough for the Python kernels starts the
#: background compile for the commands after it.
AHEAD_NOTICE = (
    "memplan: compiling the fast kernels in a background process for the next runs "
    "(about 20 s, once per installation)"
)


def compile_ahead() -> None:
    """At the end of a command that ran solvers: start the background compile unless every
    kernel was compiled here once (:func:`warmup_done_path`), this process loaded compiled
    kernels or started it already, or numba is not installed. A first command of small
    jobs (the Python kernels) then leaves the cache filled for the large ones after it,
    which would otherwise spend their first 20 s or more in the Python kernels."""
    if compiled_loaded or _background_asked or _stamp_holds():
        return
    if importlib.util.find_spec("numba") is None:
        return
    compile_in_background(AHEAD_NOTICE)


def cache_witness() -> str:
    """A file of numba's disk cache that exists while the compiled kernels are cached (the
    index of the first kernel compiled in this process), or "" when there is none to name
    (numba's internals moved). :func:`compile_all_kernels` writes it into the stamp."""
    for k in _KERNELS:
        if not k.inline and k._compiled is not None:
            try:
                return str(k._compiled._cache._cache_file._index_path)  # type: ignore[attr-defined]
            except AttributeError:
                return ""
    return ""


def _stamp_holds() -> bool:
    """Whether the stamp (:func:`warmup_done_path`) exists and the cache file it names is
    still there: a cache deleted with its source tree (a new clone at the same path) or
    cleared by hand must be compiled again, though the stamp in the temporary folder
    outlives it."""
    try:
        witness = Path(warmup_done_path()).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return not witness or os.path.exists(witness)


def compile_in_background(notice: str = BACKGROUND_NOTICE) -> None:
    """Start one detached process that compiles every kernel into numba's disk cache
    (``python -m memplan.solvers.warmup``), unless one is at work already (its lock
    file exists and is recent); say so once on stderr (``notice``). At most once per
    process; a failure to start it leaves the Python kernels in use, nothing else."""
    global _background_asked
    if _background_asked:
        return
    _background_asked = True
    lock = warmup_lock_path()
    try:
        if os.path.exists(lock) and time.time() - os.path.getmtime(lock) > STALE_LOCK_S:
            os.remove(lock)  # its process died: compile again
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:  # another process compiles them
        print(notice, file=sys.stderr, flush=True)
        return
    except OSError:
        return  # no temporary folder to write in: the Python kernels stay
    os.close(descriptor)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "memplan.solvers.warmup", "--lock", lock],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not stopped by the Ctrl-C that stops this process
        )
    except OSError:
        os.remove(lock)
        return
    print(notice, file=sys.stderr, flush=True)


def _not_cached(dispatcher: Any) -> bool:
    """True when numba's disk cache has no entry for ``dispatcher`` (a fresh install)."""
    try:
        index = dispatcher._cache._cache_file._index_path  # numba internals; may move
    except AttributeError:
        return False
    return not os.path.exists(index)


def kernel(fn: Callable[..., Any]) -> Kernel:
    """Decorator: make ``fn`` a :class:`Kernel`."""
    return Kernel(fn)


def inline_kernel(fn: Callable[..., Any]) -> Kernel:
    """Decorator: a :class:`Kernel` that numba compiles into each of its callers.

    For the helpers of one hot kernel (the exact search's steps): they cost nothing to
    call, and numba compiles one function instead of a dozen (2 s less on a fresh
    install). In Python they are ordinary functions.
    """
    return Kernel(fn, inline=True)


def _install_compile_notice() -> None:
    """Print :data:`COMPILE_NOTICE` on stderr when numba first compiles (not loads) a kernel."""
    global _notice_installed
    if _notice_installed:
        return
    _notice_installed = True
    from numba.core import event

    class Notice(event.Listener):
        said = False

        def on_start(self, ev: Any) -> None:
            dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
            module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
            if not self.said and module.startswith(__package__ or "memplan.solvers"):
                self.said = True
                print(COMPILE_NOTICE, file=sys.stderr, flush=True)

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", Notice())


class KernelChoice:
    """Which version of the kernels one allocation runs.

    ``python`` and ``compiled`` are fixed. ``auto`` runs Python when the instance is
    small (``work <= PYTHON_WORK_LIMIT``), no compiled kernel is loaded yet in this
    process, and the process's first allocation started less than
    :data:`PYTHON_SECONDS` ago; it switches to the compiled kernels for good (even in
    the middle of an allocation) once that window closes. So a short job never loads
    numba, and a process that allocates again and again (the greedy solver's retries)
    pays for it once, early.
    """

    def __init__(self, mode: str, work: int) -> None:
        global first_allocation_s
        self.mode = mode  # auto, python or compiled
        if mode == "auto" and first_allocation_s is None:
            first_allocation_s = time.perf_counter()
        small = work <= PYTHON_WORK_LIMIT and not compiled_loaded and self._window_open()
        self.compiled = mode == "compiled" or (mode == "auto" and not small)
        # auto on a fresh installation: Python until the background compile is done
        self.waiting = self.compiled and mode == "auto" and not kernels_ready()
        self._next_look_s = time.perf_counter() + RECHECK_S  # when to look at the cache again
        if self.waiting:
            compile_in_background()

    @staticmethod
    def _window_open() -> bool:
        started = first_allocation_s
        return started is not None and time.perf_counter() - started <= PYTHON_SECONDS

    def __call__(self, k: Kernel) -> Callable[..., Any]:
        """The version of ``k`` to run now (with ``auto``, the Python one while the
        compiled ones are not ready: :func:`kernels_ready`, looked at again every
        :data:`RECHECK_S` seconds, so a long allocation switches to the compiled kernels
        as soon as the background compile has filled the cache)."""
        if not self.compiled and self.mode == "auto" and not self._window_open():
            self.compiled = True
            self.waiting = not kernels_ready()
            if self.waiting:
                compile_in_background()
        if self.compiled and self.mode == "auto":
            if self.waiting:
                if time.perf_counter() >= self._next_look_s:
                    self._next_look_s = time.perf_counter() + RECHECK_S
                    self.waiting = not kernels_ready()
            elif not k.ready():  # made since the last look (the exact search's kernels)
                self.waiting = True
                self._next_look_s = time.perf_counter() + RECHECK_S
                compile_in_background()
        return k.entry() if self.compiled and not self.waiting else k.python()

    @property
    def python(self) -> bool:
        """True while the Python kernels run (before any switch to compiled ones, or
        while those are compiled in the background)."""
        return not self.compiled or self.waiting

    @property
    def used(self) -> str:
        """``compiled`` once any compiled kernel may have run, else ``python`` (also while
        the compiled kernels were being compiled in the background)."""
        return "compiled" if self.compiled and not self.waiting else "python"
