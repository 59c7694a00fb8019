"""The live line of a long solve: elapsed time, incumbent, bound and gap.

:class:`LiveLine` is the ``on_progress`` callback of a :class:`memplan.solver.Budget`
and a context manager around the solve. Nothing shows for a solve that ends within
``delay_s`` (one second). After that, on a terminal, one line redrawn a few times a
second (rich) and erased at the end; in a log (not a terminal), the same line printed
every ``log_every_s`` seconds, so a batch job's log shows that work goes on::

    solving 12.4 s of 60 s: best plan 588.00 KiB non-compulsory, bound 0 B, gap 100.0%

A missing incumbent reads "no plan yet", a missing bound "bound –" and the gap "gap
–": a gap is shown only when a bound exists (:func:`memplan.solver.relative_gap`).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from memplan.solver import Progress, relative_gap
from memplan.units import format_bytes

#: Seconds before the live line appears on a terminal.
DELAY_S = 1.0
#: Seconds between progress lines when stderr is not a terminal (a log file).
LOG_EVERY_S = 10.0


def progress_text(progress: Progress | None, elapsed_s: float, time_limit_s: float | None) -> str:
    """The live line for the latest snapshot (None: the solver reported nothing yet)."""
    limit = f" of {time_limit_s:g} s" if time_limit_s is not None else ""
    incumbent = None if progress is None else progress.incumbent_bytes
    bound = None if progress is None else progress.bound_bytes
    gap = None if incumbent is None else relative_gap(incumbent, bound)
    parts = [
        "no plan yet"
        if incumbent is None
        else f"best plan {format_bytes(incumbent)} non-compulsory",
        "bound –" if bound is None else f"bound {format_bytes(bound)}",
        "gap –" if gap is None else f"gap {gap:.1%}",
    ]
    phase = f" ({progress.message})" if progress is not None and progress.message else ""
    return f"solving {elapsed_s:.1f} s{limit}: " + ", ".join(parts) + phase


class LiveLine:
    """Shows a solve's progress on ``console`` once it has run for ``delay_s`` seconds."""

    def __init__(
        self,
        console: Console,
        time_limit_s: float | None,
        *,
        delay_s: float | None = None,
        refresh_s: float = 0.25,
        log_every_s: float | None = None,
        enabled: bool = True,
    ) -> None:
        self.console = console  # where the line goes (stderr)
        self.time_limit_s = time_limit_s  # shown as "of N s"
        self.delay_s = DELAY_S if delay_s is None else delay_s  # no line for shorter solves
        self.refresh_s = refresh_s  # redraw interval on a terminal, seconds
        self.log_every_s = LOG_EVERY_S if log_every_s is None else log_every_s  # not a terminal
        self.enabled = enabled  # False: collect snapshots, show nothing
        self.latest: Progress | None = None  # last snapshot the solver reported
        self._started_s = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, progress: Progress) -> None:
        """The ``on_progress`` callback: keep the snapshot (any thread; no output here)."""
        self.latest = progress

    def text(self) -> str:
        """The line as it would show now."""
        return progress_text(self.latest, time.monotonic() - self._started_s, self.time_limit_s)

    def __enter__(self) -> LiveLine:
        self._started_s = time.monotonic()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="memplan-live", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        if not self.console.is_terminal:
            while not self._done.wait(self.log_every_s):
                self.console.print(self.text(), markup=False, highlight=False, soft_wrap=True)
            return
        if self._done.wait(self.delay_s):
            return
        line = Text(self.text())
        with Live(line, console=self.console, transient=True, auto_refresh=False) as live:
            while not self._done.wait(self.refresh_s):
                live.update(Text(self.text()), refresh=True)
