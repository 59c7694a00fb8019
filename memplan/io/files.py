"""Safe output files: every file memplan writes goes through this module.

The rules (docs/files.md says the same for users):

- ``-`` means standard output, where the caller allows it (``allow_stdout``).
- A symlink is followed: its final target is replaced, the link itself stays.
- An existing regular file is replaced atomically (a temporary file in the same folder,
  flushed to disk, then renamed over it) and keeps its permission bits, and its owner
  when memplan runs as root.
- Anything else that exists at the path is refused: a folder, a device (``/dev/full``),
  a FIFO, a socket.
- A read-only target is refused: a file or folder the process may not write
  (``access(2)``), or one with no write permission bit at all (``mode & 0o222 == 0``).
  The second rule is what protects a read-only file from root, whom the kernel lets
  write anything: a file someone made read-only is treated as meant to stay as it is.
- The folder must already exist (missing folders are named, never created silently,
  unless the caller asks with ``create_folders``) and must accept a new file, which is
  probed by creating and removing an empty temporary file there: this catches
  read-only file systems, ``/proc`` and other pseudo file systems before any work.
- The files of one command are written together (:func:`atomic_write_many`): all are
  staged as temporary files first, then renamed one after another, with Ctrl-C
  deferred. A Ctrl-C (or a crash) before the renames leaves every target as it was.

Callers check every output path with :func:`check_output_path` before long work
starts (a ten-minute solve must not be wasted on an unwritable ``--plot``), and write
with :func:`atomic_write_bytes`, :func:`atomic_write_text` or
:func:`atomic_write_many`, which check again. Every failure is an
:class:`~memplan.errors.OutputFileError` with one line naming the path and the fix.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from memplan.errors import OutputFileError

#: The path that means standard output.
STDOUT_PATH = "-"

#: Name pattern of the temporary files staged beside a target and of the folder probe:
#: short and independent of the target's name, so a target whose name the file system
#: accepts never fails at the write for a temporary name that is too long, and the probe
#: of :func:`check_output_path` tries exactly the name the writer will use.
TEMP_PREFIX, TEMP_SUFFIX = ".memplan-", ".tmp"

#: What a non-regular file is called in messages, by ``stat`` test.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """A checked output path: where the bytes will really go."""

    given: str  # the path as the user gave it (for messages)
    what: str  # what the file is, for messages (e.g. "-o", "--plot", "results")
    path: Path | None  # the final target after following symlinks; None for stdout
    mode: int | None  # permission bits of the existing file to keep; None for a new one
    owner: tuple[int, int] | None  # (uid, gid) of the existing file; None for a new one

    @property
    def is_stdout(self) -> bool:
        """Whether this target is standard output (``-``)."""
        return self.path is None


def _error(what: str, given: str, problem: str) -> OutputFileError:
    return OutputFileError(f"{what} {given}: {problem}")


def _kind_of(mode: int) -> str | None:
    """What a non-regular file is ('a folder', 'a FIFO (named pipe)', ...), or None."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for messages: 'a regular file', 'a folder', ..."""
    return _kind_of(mode) or "a regular file"


def _missing_folders(folder: Path) -> list[Path]:
    """The folders of ``folder`` that do not exist, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return list(reversed(missing))


def check_output_path(
    path: str | os.PathLike[str],
    what: str = "output",
    *,
    allow_stdout: bool = False,
    create_folders: bool = False,
) -> OutputTarget:
    """Check that ``path`` may be written by the rules of this module; where it goes.

    Args:
        path: the output path; ``-`` is standard output when ``allow_stdout``.
        what: how messages name the file, e.g. the flag that gave it (``--plot``).
        allow_stdout: accept ``-`` for standard output.
        create_folders: create missing parent folders (for folders memplan manages,
            such as a results folder); by default a missing folder is an error.

    Returns:
        The target to write, with the mode and owner of the file it replaces.

    Raises:
        OutputFileError: the path must not or cannot be written; the message says why.
    """
    given = os.fspath(path)
    try:
        return _check_output_path(given, what, allow_stdout, create_folders)
    except OSError as error:  # a name too long for the file system, a path too long, ...
        raise _error(what, given, _os_reason(error)) from None


def _os_reason(error: OSError) -> str:
    """Why an OS call refused a path, as the end of a one-line message."""
    if error.errno == errno.ENAMETOOLONG:
        return (
            "the file name or path is too long for the file system "
            "(File name too long); choose a shorter name"
        )
    return f"cannot use this path ({error.strerror or error}); choose another file name"


def _check_output_path(
    given: str, what: str, allow_stdout: bool, create_folders: bool
) -> OutputTarget:
    """:func:`check_output_path` on a path given as text; an OSError is the caller's."""
    if given == STDOUT_PATH:
        if allow_stdout and sys.stdout is None:  # started with standard output closed (>&-)
            raise _error(what, given, "standard output is closed; give a file name")
        if allow_stdout:
            return OutputTarget(given, what, None, None, None)
        raise _error(what, given, "standard output is not possible here; give a file name")
    if not given.strip():
        raise _error(what, repr(given), "empty file name; give a file name")
    if given.endswith(("/", os.sep)):
        raise _error(what, given, "names a folder; give a file name")
    real = Path(os.path.realpath(given))
    if real.is_symlink():  # realpath stops inside a loop of symlinks
        raise _error(what, given, "is a loop of symlinks; give a file name")
    try:
        info: os.stat_result | None = os.stat(real)
    except FileNotFoundError:  # a new file (or a symlink to a file still to be made)
        info = None
    except NotADirectoryError:
        raise _error(what, given, "a part of the path is a file, not a folder") from None
    except OSError as error:  # a name too long, ...
        raise _error(what, given, _os_reason(error)) from None
    mode = owner = None
    if info is not None:
        kind = _kind_of(info.st_mode)
        if kind is not None:
            hint = "give a file name" if kind == "a folder" else "memplan writes regular files only"
            if allow_stdout:
                hint += " (or - for standard output)"
            link = f" (symlink to {real})" if Path(given).is_symlink() else ""
            raise _error(what, given, f"is {kind}{link}; {hint}")
        mode, owner = stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
        if mode & 0o222 == 0:
            raise _error(
                what,
                given,
                f"is read-only (mode {mode:04o}); make it writable (chmod u+w) or choose "
                "another file name",
            )
    folder = real.parent
    missing = _missing_folders(Path(given).parent) or _missing_folders(folder)
    if missing:
        if not create_folders:
            raise _error(
                what,
                given,
                f"folder {missing[0]} does not exist; create it first (mkdir -p {missing[-1]})",
            )
        # A folder without write bits is meant to stay as it is, even for root, who
        # could create in it: as for a file written into it (_check_folder).
        _check_folder_mode(missing[0].parent, what, given)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _error(what, given, f"cannot create folder {folder} ({error.strerror})") from None
    _check_folder(folder, what, given)
    if info is not None and not os.access(real, os.W_OK):
        raise _error(what, given, "is not writable (permission denied); choose another file name")
    return OutputTarget(given, what, real, mode, owner)


def _check_folder_mode(folder: Path, what: str, given: str) -> None:
    """Refuse a folder without write bits (read-only by intent, even for root)."""
    folder_mode = stat.S_IMODE(folder.stat().st_mode)
    if folder_mode & 0o222 == 0:
        raise _error(
            what,
            given,
            f"folder {folder} is read-only (mode {folder_mode:04o}); choose another folder",
        )


def _check_folder(folder: Path, what: str, given: str) -> None:
    """The folder is a folder, not read-only, and accepts a new file (probed)."""
    if not folder.is_dir():
        raise _error(what, given, f"{folder} is not a folder")
    _check_folder_mode(folder, what, given)
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            raise _error(what, given, _os_reason(error)) from None
        reason = {
            errno.EROFS: "it is on a read-only file system",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
        }.get(error.errno or 0, error.strerror or str(error))
        raise _error(
            what,
            given,
            f"cannot create a file in folder {folder} ({reason}); choose another folder",
        ) from None
    os.close(fd)
    os.unlink(probe)


def _target(item: OutputTarget | str | os.PathLike[str], what: str) -> OutputTarget:
    if isinstance(item, OutputTarget):
        # Check again: the file system may have changed since the first check.
        return check_output_path(
            item.given, item.what, allow_stdout=item.is_stdout, create_folders=False
        )
    return check_output_path(item, what)


def _stage(target: OutputTarget, data: bytes) -> str:
    """Write ``data`` to a new temporary file beside the target; return its name."""
    assert target.path is not None
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=target.path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if target.mode is not None:
                os.fchmod(handle.fileno(), target.mode)
                if target.owner is not None and hasattr(os, "geteuid") and os.geteuid() == 0:
                    os.fchown(handle.fileno(), *target.owner)
            else:
                # mkstemp makes the file owner-only; give it the mode a plain open() would.
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(handle.fileno(), 0o666 & ~umask)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return tmp_name


class _DeferredSigint:
    """While active (main thread only), a SIGINT is counted instead of raising.

    Python runs signal handlers in the main thread between two bytecodes, so a Ctrl-C
    can raise :class:`KeyboardInterrupt` anywhere, e.g. between creating a temporary
    file and remembering its name, or between two renames. Deferring it makes the
    points where it takes effect explicit. Blocking the signal with a thread mask
    would not do: the kernel hands it to another thread, and Python still runs the
    handler in the main thread. A process that ignores SIGINT keeps ignoring it.
    """

    def __init__(self) -> None:
        self.received = 0  # SIGINTs that arrived while active
        self._previous: Any = None  # the handler to restore and to hand them to
        self._installed = False

    def _count(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1

    def __enter__(self) -> _DeferredSigint:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous not in (signal.SIG_IGN, None):
                self._previous = signal.signal(signal.SIGINT, self._count)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def deliver(self) -> None:
        """Hand a SIGINT that arrived while deferred to the handler it displaced."""
        if not (self._installed and self.received):
            return
        if callable(self._previous):
            self._previous(signal.SIGINT, None)
        elif self._previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


def atomic_write_many(
    items: Sequence[tuple[OutputTarget | str | os.PathLike[str], bytes]],
) -> None:
    """Write several files as one step: all of them, or (on Ctrl-C or error) none.

    Each target is checked (:func:`check_output_path`), its bytes go to a temporary
    file beside it, and only when every one is staged are they renamed over their
    targets. Ctrl-C is deferred meanwhile: one pressed before the renames discards
    everything and raises :class:`KeyboardInterrupt`; one pressed during the renames
    (microseconds) takes effect after them. Standard output (``-``) is written last.

    Raises:
        OutputFileError: a target may not be written, or the disk refused the bytes.
        KeyboardInterrupt: Ctrl-C before the renames; nothing was written.
    """
    targets = [(_target(item, "output"), data) for item, data in items]
    staged: list[tuple[str, OutputTarget]] = []
    deferred = _DeferredSigint()
    with deferred:
        try:
            for target, data in targets:
                if target.is_stdout:
                    continue
                try:
                    staged.append((_stage(target, data), target))
                except OSError as error:
                    raise _error(
                        target.what, target.given, f"cannot write ({error.strerror or error})"
                    ) from None
            if deferred.received:
                raise KeyboardInterrupt
            while staged:
                tmp_name, target = staged[0]
                assert target.path is not None
                try:
                    os.replace(tmp_name, target.path)
                except OSError as error:
                    raise _error(
                        target.what,
                        target.given,
                        f"cannot replace the file ({error.strerror or error})",
                    ) from None
                staged.pop(0)
        finally:
            for tmp_name, _target_of in staged:
                Path(tmp_name).unlink(missing_ok=True)
    deferred.deliver()
    for target, data in targets:
        if target.is_stdout:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()


def atomic_write_bytes(
    path: OutputTarget | str | os.PathLike[str],
    data: bytes,
    *,
    what: str = "output",
    create_folders: bool = False,
) -> None:
    """Write ``data`` to ``path`` so that readers never see a half-written file.

    See the module docstring for the rules (symlinks followed, devices and FIFOs
    refused, the mode kept, no silent folder creation unless ``create_folders``).

    Raises:
        OutputFileError: the path may not be written, or writing failed.
    """
    if not isinstance(path, OutputTarget):
        path = check_output_path(path, what, create_folders=create_folders)
    atomic_write_many([(path, data)])


def atomic_write_text(
    path: OutputTarget | str | os.PathLike[str],
    text: str,
    *,
    what: str = "output",
    create_folders: bool = False,
) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), what=what, create_folders=create_folders)


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
