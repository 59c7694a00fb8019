"""memplan.io.files: what may be written, how, and that nothing is left half-done."""

from __future__ import annotations

import errno
import os
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest
from cli_models import ctrl_c_while_staging

import memplan.io.files as files
from memplan.errors import OutputFileError
from memplan.io.files import (
    atomic_write_bytes,
    atomic_write_many,
    atomic_write_text,
    check_output_path,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_the_umask_mode_and_nothing_else_is_left(tmp_path):
    target = tmp_path / "plan.json"
    atomic_write_text(target, "new\n")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "new\n"
    assert _mode(target) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_existing_file_is_replaced_and_keeps_its_mode(tmp_path):
    target = tmp_path / "plan.json"
    target.write_text("old")
    target.chmod(0o640)
    inode = target.stat().st_ino
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640
    assert target.stat().st_ino != inode  # replaced by rename, not rewritten in place


def test_symlink_is_followed_and_stays_a_symlink(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert real.read_text() == "new" and _mode(real) == 0o600
    # A dangling link: its target is created.
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("made.json")
    atomic_write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "made.json").read_text() == "made"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe); memplan writes regular files only"),
        (lambda p: p.mkdir(), "is a folder; give a file name"),
        (lambda p: (p.write_text("keep"), p.chmod(0o444)), "is read-only (mode 0444)"),
    ],
    ids=["fifo", "folder", "read-only"],
)
def test_non_regular_and_read_only_targets_are_refused(tmp_path, make, expected):
    target = tmp_path / "out.json"
    make(target)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputFileError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        atomic_write_text(target, "new", what="-o")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if target.is_file():
        assert target.read_text() == "keep" and _mode(target) == 0o444


def test_devices_and_proc_are_refused():
    for path, expected in (
        ("/dev/full", "is a character device"),
        ("/dev/null", "is a character device"),
        ("/proc/self/status", "is read-only"),
    ):
        if os.path.exists(path):
            with pytest.raises(OutputFileError, match=expected):
                check_output_path(path, "-o")
    if os.path.isdir("/proc/self"):
        with pytest.raises(OutputFileError, match=r"folder /proc/.* is read-only"):
            check_output_path("/proc/self/new.json", "-o")


def test_symlink_to_a_device_names_the_target(tmp_path):
    link = tmp_path / "plan.json"
    link.symlink_to("/dev/null")
    with pytest.raises(OutputFileError, match=r"character device \(symlink to /dev/null\)"):
        check_output_path(link, "-o", allow_stdout=True)
    assert link.is_symlink()


def test_missing_folders_are_named_not_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputFileError) as info:
        check_output_path("a/b/plan.json", "-o")
    assert "folder a does not exist; create it first (mkdir -p a/b)" in str(info.value)
    assert not (tmp_path / "a").exists()
    target = check_output_path("a/b/plan.json", "results", create_folders=True)
    assert (tmp_path / "a" / "b").is_dir() and target.path == tmp_path / "a/b/plan.json"


def test_read_only_folder_and_bad_names(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputFileError, match=r"folder .*locked is read-only \(mode 0555\)"):
            check_output_path(folder / "plan.json", "-o")
        # A results folder made inside it was created (as root), though the folder's own
        # files were refused.
        with pytest.raises(OutputFileError, match=r"folder .*locked is read-only \(mode 0555\)"):
            check_output_path(folder / "new" / "results.jsonl", "-o", create_folders=True)
        assert not (folder / "new").exists()
    finally:
        folder.chmod(0o755)
    (tmp_path / "file").write_text("")
    cases = [
        (str(tmp_path / "file" / "x.json"), "a part of the path is a file"),
        ("", "empty file name"),
        (str(tmp_path) + "/", "names a folder"),
        ("-", "standard output is not possible here"),
    ]
    for path, expected in cases:
        with pytest.raises(OutputFileError, match=expected):
            check_output_path(path, "--csv")
    assert check_output_path("-", "-o", allow_stdout=True).is_stdout


def test_symlink_loop_is_refused(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OutputFileError, match="loop of symlinks"):
        check_output_path(tmp_path / "a", "-o")


def test_read_only_file_system_is_one_line(tmp_path, monkeypatch):
    """EROFS from the probe (as a read-only mount gives) is reported, not raised."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputFileError) as info:
        check_output_path(tmp_path / "plan.json", "-o")
    assert "it is on a read-only file system" in str(info.value)
    assert "\n" not in str(info.value)


def test_disk_errors_while_writing_leave_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "plan.json"
    target.write_text("old")
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputFileError, match=r"cannot write \(No space left on device"):
        atomic_write_text(target, "new")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_many_files_are_all_or_none_on_ctrl_c_while_staging(tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.csv"
    a.write_text("old a")
    ctrl_c_while_staging(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_many([(a, b"new a"), (b, b"new b")])
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_real_sigint_while_staging_writes_nothing(tmp_path, monkeypatch):
    """A SIGINT sent to the process while files are staged cancels every write."""
    a, b = tmp_path / "a.json", tmp_path / "b.csv"
    a.write_text("old a")
    real_stage = files._stage

    def stage_and_signal(target, data):
        name = real_stage(target, data)
        if target.path == b:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs now, whichever thread received it
        return name

    monkeypatch.setattr(files, "_stage", stage_and_signal)
    # Other threads (a solver's, say) may receive the signal; the result is the same.
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write_many([(a, b"new a"), (b, b"new b")])
    finally:
        stop.set()
    assert a.read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_during_the_renames_comes_after_them(tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.csv"
    real_replace = os.replace

    def replace_and_signal(source, target):
        real_replace(source, target)
        if Path(target) == a:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    monkeypatch.setattr(os, "replace", replace_and_signal)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_many([(a, b"a"), (b, b"b")])
    assert a.read_bytes() == b"a" and b.read_bytes() == b"b"  # both complete
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv"]


def test_an_ignored_sigint_stays_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.SIG_IGN)
    installed = []
    monkeypatch.setattr(signal, "signal", lambda *args: installed.append(args))
    atomic_write_text(tmp_path / "x.txt", "x")
    assert installed == [] and (tmp_path / "x.txt").read_text() == "x"


def test_bytes_and_stdout(tmp_path, capfdbinary):
    atomic_write_bytes(tmp_path / "x.bin", b"\x00\x01")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\x01"
    target = check_output_path("-", "-o", allow_stdout=True)
    atomic_write_many([(target, b"to stdout\n"), (tmp_path / "y.txt", b"file")])
    assert capfdbinary.readouterr().out == b"to stdout\n"
    assert (tmp_path / "y.txt").read_bytes() == b"file"
