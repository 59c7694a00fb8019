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
  loading or compiling) holds Ctrl-C back until it returns.

Both versions compute the same integers (the tests compare them on seeded instances),
so an allocation may start in Python and switch to compiled kernels half way through
(:class:`KernelChoice`) without changing its answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
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

    def compiled(self) -> Callable[..., Any]:
        """The numba-compiled version (compiled or loaded from the cache on first call)."""
        if self._compiled is None:
            try:
                import numba
            except ImportError:  # numba is a dependency; without it, run Python
                self._compiled = self.python()
                return self._compiled
            global compiled_loaded, _warming
            first = not compiled_loaded
            compiled_loaded = True
            _install_compile_notice()
            options: dict[str, Any] = {"inline": "always"} if self.inline else {}
            jit = numba.njit(cache=True, nogil=True, **options)
            self._compiled = jit(self._bound(Kernel.compiled))
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

    @staticmethod
    def _window_open() -> bool:
        started = first_allocation_s
        return started is not None and time.perf_counter() - started <= PYTHON_SECONDS

    def __call__(self, k: Kernel) -> Callable[..., Any]:
        """The version of ``k`` to run now."""
        if not self.compiled and self.mode == "auto" and not self._window_open():
            self.compiled = True
        return k.entry() if self.compiled else k.python()

    @property
    def python(self) -> bool:
        """True while the Python kernels run (before any switch to compiled ones)."""
        return not self.compiled

    @property
    def used(self) -> str:
        """``compiled`` once any compiled kernel may have run, else ``python``."""
        return "compiled" if self.compiled else "python"
