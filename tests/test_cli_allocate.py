"""Tests of ``memplan allocate``: output file, exit codes, JSON, bad and hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alloc_helpers import CAPACITY, challenging_file

from memplan.cli import EXIT_BAD_INPUT, EXIT_NO_PLAN, EXIT_OK, main
from memplan.dsa import validate_packing
from memplan.io.buffers_csv import read_buffers_csv

CSV = "id,lower,upper,size\nb1,0,3,4\nb2,3,9,4\nb3,0,9,4\nb4,9,21,4\nb5,0,21,4\n"


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(CSV)
    return path


def test_packs_writes_a_valid_csv_and_prints_a_table(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    code = main(["allocate", str(small_csv), "--capacity", "12", "-o", str(out)])
    assert code == EXIT_OK
    printed = capsys.readouterr().out
    assert "height" in printed and "max live" in printed and "optimal" in printed
    rows = out.read_text().splitlines()
    assert rows[0] == "id,lower,upper,size,offset"
    placed = read_buffers_csv(out)
    offsets = [b.fixed_offset_bytes for b in placed]
    assert all(o is not None for o in offsets)
    buffers = read_buffers_csv(small_csv)
    assert validate_packing(buffers, [int(o or 0) for o in offsets], 12) == []


def test_json_output(small_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["allocate", str(small_csv), "--json", "--algorithm", "exact", "--minimize"])
    assert code == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "optimal" and data["fits"] is True
    assert data["height_bytes"] == data["max_live_bytes"] == data["lower_bound_bytes"] == 12
    assert data["ratio"] == 1.0
    assert data["capacity_bytes"] is None


def test_infeasible_exits_1_and_writes_nothing(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    code = main(["allocate", str(small_csv), "--capacity", "11", "-o", str(out), "--json"])
    assert code == EXIT_NO_PLAN
    assert json.loads(capsys.readouterr().out)["status"] == "infeasible"
    assert not out.exists()


def test_alignment_flag_is_honoured(
    small_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    code = main(["allocate", str(small_csv), "--alignment", "8", "-o", str(out), "--json"])
    assert code == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    placed = read_buffers_csv(out)
    assert all(b.alignment_bytes == 8 for b in placed)
    assert all((b.fixed_offset_bytes or 0) % 8 == 0 for b in placed)
    assert data["height_bytes"] >= 12


def test_greedy_algorithm_and_units(small_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["allocate", str(small_csv), "--capacity", "1KiB", "--algorithm", "greedy-by-size"])
    assert code == EXIT_OK
    assert "greedy-by-size" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("id,lower,size\n1,0,4\n", ":1: missing column(s) upper"),
        ("id,lower,upper,size\n1,0,4,four\n", ":2: size 'four' is not an integer"),
        ("id,lower,upper,size\n1,0,4,-4\n", ":2: buffer '1': negative size"),
        ("id,lower,upper,size\n1,5,4,4\n", ":2: buffer '1': empty lifetime"),
        ("id,lower,upper,size\n1,0,4,4\n1,1,4,4\n", ":3: duplicate id '1'"),
        ("id,lower,upper,size,offset\n1,0,4,4,0\n2,1,4,4,3\n", ":3: buffer '2' at fixed"),
        ("id,lower,upper,size,alignment,offset\n1,0,4,4,4,2\n", ":2: buffer '1': fixed offset"),
        ("id,id,lower,upper,size\n1,1,0,4,4\n", ":1: column(s) id appear more than once"),
        ("id,lower,upper,size\n1,0,4,1_000\n", ":2: size '1_000' is not an integer"),
        ("id,lower,upper,size\n1,0,4,\uff14\n", ":2: size '\uff14' is not an integer"),
    ],
)
def test_bad_csv_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    code = main(["allocate", str(path), "--capacity", "100"])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("memplan allocate: error: ")
    assert f"{path}{fragment}" in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--algorithm", "nope"], "unknown allocator 'nope'"),
        (["--capacity", "lots"], "--capacity"),
        (["--alignment", "0"], "--alignment 0"),
        (["--time-limit", "-1"], "--time-limit"),
        (["--time-limit", "inf"], "--time-limit must be a finite number of seconds >= 0 (or none"),
        (["--time-limit", "soon"], "--time-limit 'soon' is not a number of seconds"),
        (["--seed", "-3"], "--seed -3: a seed is a whole number from 0 to 2147483647"),
        (["--seed", "2147483648"], "--seed 2147483648: a seed is a whole number"),
        (["--option", "seed=-1"], "option seed=-1 must be between 0 and 2147483647"),
    ],
)
def test_bad_options_exit_2(
    small_csv: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    assert main(["allocate", str(small_csv), *args]) == EXIT_BAD_INPUT
    assert fragment in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["allocate", str(tmp_path / "none.csv")]) == EXIT_BAD_INPUT
    assert "cannot read" in capsys.readouterr().err


def test_timeout_without_packing_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    path = challenging_file("D")
    code = main(["allocate", str(path), "--capacity", "986112", "--time-limit", "0.5", "--json"])
    assert code == EXIT_NO_PLAN
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "timeout" and data["fits"] is False
    assert data["height_bytes"] > 986112  # the portfolio's packing, above the capacity
    assert "no packing within 986112 B" in data["message"]


def test_challenging_file_at_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = challenging_file("K")
    out = tmp_path / "K.out.csv"
    code = main(["allocate", str(path), "--capacity", str(CAPACITY), "-o", str(out), "--json"])
    assert code == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["height_bytes"] <= CAPACITY
    placed = read_buffers_csv(out)
    buffers = read_buffers_csv(path)
    offsets = [int(b.fixed_offset_bytes or 0) for b in placed]
    assert validate_packing(buffers, offsets, CAPACITY) == []


# ----------------------------------------------------------------- hostile input

OVERLAP_2_62 = "id,lower,upper,size\na,0,2,4611686018427387904\nb,1,3,4611686018427387904\n"


@pytest.mark.parametrize(
    ("data", "args", "fragment"),
    [
        (b"id,lower,upper,size\nx,0,2,100000000000000000000000\n", [], "outside the 64-bit"),
        (b"id,lower,upper,size\nx,0,2,\xe9\n", [], "not UTF-8 text (byte 0xe9"),
        (CSV.encode(), ["--capacity", "1" + "0" * 29, "--algorithm", "exact"], "64-bit range"),
        (OVERLAP_2_62.encode(), [], "sizes add up to 9223372036854775808 bytes"),
        (b"id,lower,upper,size\n", [], "no buffers: the file has a header but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [], "binary file (a NUL byte"),
        (CSV.encode(), ["--option", "kernels=gpu"], "option kernels='gpu' is not allowed"),
    ],
)
def test_hostile_input_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: bytes,
    args: list[str],
    fragment: str,
) -> None:
    path = tmp_path / "hostile.csv"
    path.write_bytes(data)
    code = main(["allocate", str(path), *args])
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("memplan allocate: error: ") and fragment in err
    assert "Traceback" not in err and "None B" not in err


def test_infeasible_says_so_and_never_claims_optimal(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for algorithm in ("auto", "exact", "portfolio", "greedy-by-size"):
        code = main(["allocate", str(small_csv), "--capacity", "11", "--algorithm", algorithm])
        out, err = capsys.readouterr()
        assert code == EXIT_NO_PLAN
        text = out + err
        assert "infeasible" in text and "no packing fits 11 B" in text
        assert "optimal" not in text and "None B" not in text


def test_a_dense_instance_is_packed_without_its_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """100,000 buffers all live at step 50: 5e9 overlapping pairs, about 40 GB of graph.
    It was refused (exit 1, no packing); the sweep over time stacks them: optimal."""
    path = tmp_path / "dense.csv"
    rows = "".join(f"b{i},{i % 10},{90 + i % 10},{64 + i % 7}\n" for i in range(100_000))
    path.write_text("id,lower,upper,size\n" + rows)
    out_csv = tmp_path / "out.csv"
    code = main(["allocate", str(path), "--capacity", "1GiB", "--json", "-o", str(out_csv)])
    data = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK and data["status"] == "optimal"
    assert data["height_bytes"] == data["max_live_bytes"] == data["lower_bound_bytes"]
    assert "4999950000 overlapping pairs) was not needed" in data["message"]
    assert len(out_csv.read_text().splitlines()) == 100_001


def test_memory_guard_keeps_the_sweeps_packing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A graph over the memory limit: the packing made without it, and why, in the table."""
    path = tmp_path / "cliques.csv"
    rows = "".join(f"b{i},{i * 7 % 400},{i * 7 % 400 + 250},{64 + i % 7}\n" for i in range(3000))
    path.write_text("id,lower,upper,size\n" + rows)
    limit = "--option", "memory_limit_bytes=1000000"
    code = main(["allocate", str(path), "--capacity", "1GiB", "--json", *limit])
    data = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK and data["fits"] and data["algorithm"] == "auto:portfolio:sweep"
    assert data["message"].startswith("over the memory limit: the overlap graph of 3000")
    assert "kept a packing by a best-fit sweep over time" in data["message"]


def test_option_flag_reaches_the_allocator(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["allocate", str(small_csv), "--json", "--option", "kernels=python", "--minimize"])
    assert code == EXIT_OK
    assert json.loads(capsys.readouterr().out)["stats"]["kernels"] == "python"


def test_ctrl_c_stops_the_search_and_reports_it() -> None:
    """A real SIGINT during the exact search: the search stops and says so, exit 1."""
    import subprocess
    import sys

    path = challenging_file("D")
    code = (
        "import os, signal, sys, threading\n"
        "from memplan.cli import main\n"
        "threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        f"sys.exit(main(['allocate', {str(path)!r}, '--capacity', '986112',\n"
        "                '--time-limit', '120', '--algorithm', 'exact']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=False
    )
    assert run.returncode == EXIT_NO_PLAN, run.stderr
    assert "stopping; Ctrl-C again to abort" in run.stderr
    assert "timeout: stopped: no packing within 986112 B found yet" in run.stderr


def test_alignment_flag_conflict_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fixed.csv"
    path.write_text("id,lower,upper,size,offset\n0,0,1,64,5\n")
    assert main(["allocate", str(path), "--alignment", "64"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}: with --alignment 64: buffer '0': fixed offset 5" in err


def test_time_limit_counts_reading_the_csv(
    small_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV that takes longer to read than the time limit: the command does not start a
    search with a fresh limit after it (300,000 rows took 4 s to read, and a
    ``--time-limit 1`` run lasted 4.7 s while reporting 0.55 s)."""
    import time

    import memplan.io.buffers_csv as buffers_csv

    real = buffers_csv.read_buffers_csv

    def slow_read(path: str) -> list[object]:
        time.sleep(0.5)
        return real(path)

    monkeypatch.setattr(buffers_csv, "read_buffers_csv", slow_read)
    code = main(["allocate", str(small_csv), "--time-limit", "0.3", "--json", "--minimize"])
    data = json.loads(capsys.readouterr().out)
    assert data["wall_s"] >= 0.5  # the time reported includes the reading
    assert code == EXIT_NO_PLAN and data["status"] == "timeout"


def test_time_limit_counts_the_start_up_of_the_command(
    small_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script's start-up (interpreter, imports: 1 to 3 s on a loaded
    machine) was outside the limit: ``--time-limit 10`` runs lasted 11 to 13 s."""
    import time

    import memplan.cli

    monkeypatch.setattr(memplan.cli, "launched_at_s", time.monotonic() - 2.0)
    code = main(["allocate", str(small_csv), "--time-limit", "1.5", "--json", "--minimize"])
    data = json.loads(capsys.readouterr().out)
    assert code == EXIT_NO_PLAN and data["status"] == "timeout"
    assert data["message"] == "out of time before packing started" and data["wall_s"] >= 2.0
    monkeypatch.setattr(memplan.cli, "launched_at_s", time.monotonic() - 0.5)
    code = main(["allocate", str(small_csv), "--time-limit", "30", "--json", "--minimize"])
    data = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK and data["status"] == "optimal" and data["wall_s"] >= 0.5


def test_time_limit_keeps_back_the_wrap_up(
    small_csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Printing, writing and the interpreter's exit took 0.3-0.4 s after a search that
    used the whole limit: a --time-limit 10 command ended at 10.1-10.4 s."""
    import memplan.dsa

    limits: list[float | None] = []
    real = memplan.dsa.allocate

    def recorded(*args: object, **kwargs: object) -> object:
        limits.append(kwargs["budget"].time_limit_s)  # type: ignore[attr-defined]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(memplan.dsa, "allocate", recorded)
    for given in ("10", "1", "none"):
        assert main(["allocate", str(small_csv), "--time-limit", given, "--json"]) == EXIT_OK
    capsys.readouterr()
    assert limits == [pytest.approx(9.6), pytest.approx(0.95), None]


def test_the_process_age_is_read(tmp_path: Path) -> None:
    """The console script starts the budget when the process started (Linux /proc)."""
    import subprocess
    import sys

    from memplan.cli import MAX_PROCESS_AGE_S, process_age_s

    assert 0.0 <= process_age_s() <= MAX_PROCESS_AGE_S
    script = "import time; time.sleep(0.3); from memplan.cli import process_age_s as a; print(a())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if Path("/proc/self/stat").exists():
        assert 0.3 <= float(out.stdout) < 10, out.stderr


def test_a_heuristic_that_gives_up_does_not_say_out_of_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """greedy-by-size misses the optimum 15 B here after a few milliseconds: the status
    said 'timeout (out of time; best packing so far ...)' with 60 s left."""
    path = tmp_path / "g.csv"
    path.write_text("id,lower,upper,size,alignment\nb0,0,1,7,12\nb1,2,3,8,1\nb2,1,3,7,3\n")
    code = main(["allocate", str(path), "--capacity", "15", "--algorithm", "greedy-by-size"])
    assert code == EXIT_NO_PLAN
    out = " ".join(capsys.readouterr().out.split())  # the table wraps its cells
    assert "out of time" not in out
    assert "heuristic" in out and "proves nothing" in out
    assert main(["allocate", str(path), "--capacity", "15", "--json"]) == EXIT_OK  # auto finds it


def test_ctrl_c_after_the_search_does_not_cut_the_report(
    small_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Ctrl-C once the search is over (while the file is written and the result printed)
    made the command exit 130, 'aborted, nothing written', with the file written."""
    import os
    import signal

    import memplan.cli.allocate as allocate_cli

    report = allocate_cli._report

    def interrupted_report(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        report(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(allocate_cli, "_report", interrupted_report)
    out = tmp_path / "out.csv"
    code = main(["allocate", str(small_csv), "--capacity", "12", "-o", str(out), "--json"])
    assert code == EXIT_OK and out.exists()
    assert json.loads(capsys.readouterr().out)["output"] == str(out)


def test_ctrl_c_while_the_process_exits_keeps_the_exit_code(small_csv: Path) -> None:
    """The command is done (file written, result printed); a Ctrl-C during the
    interpreter's shutdown printed a KeyboardInterrupt traceback, or, later in it, killed
    the process by SIGINT (exit -2, 130 in a shell: "aborted, nothing written")."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, threading, time\n"
        "import memplan.cli as cli\n"
        "returned = threading.Event()\n"
        "def main(real=cli.main):\n"
        "    try:\n"
        "        return real()\n"
        "    finally:\n"
        "        returned.set()\n"
        "cli.main = main\n"
        "def ctrl_c_at_exit():  # the interpreter waits for this thread before it ends\n"
        "    returned.wait()\n"
        "    time.sleep(0.05)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.3)\n"
        "threading.Thread(target=ctrl_c_at_exit).start()\n"
        f"sys.argv = ['memplan', 'allocate', {str(small_csv)!r}, '--json']\n"
        "cli.entry_point()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=False
    )
    assert run.returncode == EXIT_OK, run.stderr
    assert "KeyboardInterrupt" not in run.stderr and "Traceback" not in run.stderr
    assert json.loads(run.stdout)["status"] == "optimal"


def test_ctrl_c_with_a_packing_says_stopped_not_out_of_time() -> None:
    """The packing kept after a Ctrl-C was shown as 'timeout (out of time; best packing so
    far)', noted 'not proven minimal before the time ran out', with most of the time
    limit left."""
    import subprocess
    import sys

    path = challenging_file("D")
    code = (
        "import os, signal, sys, threading\n"
        "from memplan.cli import main\n"
        "threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
        f"sys.exit(main(['allocate', {str(path)!r}, '--minimize', '--time-limit', '120']))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=False
    )
    assert run.returncode == EXIT_OK, run.stderr
    out = " ".join(word for word in run.stdout.split() if word != "│")  # the table's cells
    assert "stopped by Ctrl-C" in out and "out of time" not in out
    assert "not proven minimal before it was stopped" in out and "time ran out" not in out


def test_sigterm_stops_the_search_and_writes_the_packing(tmp_path: Path) -> None:
    """SIGTERM (timeout, kill, a job scheduler) killed allocate with nothing written; now
    it stops the search as Ctrl-C does and the packing found is written."""
    import subprocess
    import sys

    path = challenging_file("D")
    out = tmp_path / "offsets.csv"
    code = (
        "import os, signal, sys, threading\n"
        "from memplan.cli import main\n"
        "threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"
        f"sys.exit(main(['allocate', {str(path)!r}, '--minimize', '--time-limit', '120',"
        f" '-o', {str(out)!r}]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=100, check=False
    )
    assert run.returncode == EXIT_OK, run.stderr
    assert "SIGTERM: stopping" in run.stderr
    text = " ".join(word for word in run.stdout.split() if word != "│")
    assert "stopped by SIGTERM" in text
    assert out.read_text().startswith("id,lower,upper,size,offset")


def test_cpsat_share_listed_as_it_runs(
    small_csv: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``memplan solvers`` listed auto's cpsat_share as 0.0 with nothing more, while
    ``allocate --help`` said 0.5: both are true of some caller, so the listing now says
    which runs what, checked against the shares that really run."""
    from memplan.dsa import Buffer, allocate
    from memplan.solvers.alloc.auto import AutoAllocator

    ran: list[float] = []
    original = AutoAllocator.allocate

    def spy(self: AutoAllocator, *args: object) -> object:
        ran.append(self.cpsat_share)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(AutoAllocator, "allocate", spy)
    assert main(["allocate", str(small_csv), "--capacity", "100", "--json"]) == EXIT_OK
    allocate([Buffer("a", 0, 1, 4)], 100)
    cli_share, python_share = ran
    capsys.readouterr()
    assert main(["solvers", "--json"]) == EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    auto = next(p for p in listed if p["kind"] == "allocator" and p["name"] == "auto")
    option = next(o for o in auto["options"] if o["name"] == "cpsat_share")
    assert option["default"] == python_share
    assert f"memplan allocate runs {cli_share}" in option["help"]
    assert f"The default {python_share:g} is what memplan.dsa.allocate" in option["help"]


class _SearchSpy:
    """Stands in for :func:`memplan.dsa.allocate`, recording each search's budget."""

    def __init__(self) -> None:
        from memplan.dsa import allocate

        self.real = allocate
        self.budgets: list[object] = []

    def __call__(self, buffers: object, capacity: object, **kwargs: object) -> object:
        self.budgets.append(kwargs["budget"])
        return self.real(buffers, capacity, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def search_spy(monkeypatch: pytest.MonkeyPatch) -> _SearchSpy:
    import memplan.dsa

    spy = _SearchSpy()
    monkeypatch.setattr(memplan.dsa, "allocate", spy)
    return spy


@pytest.mark.parametrize(
    ("args", "make", "expected"),
    [
        (["--minimize"], lambda d: d / "no" / "out.csv", "/no does not exist; create it"),
        (["--minimize"], lambda d: d, "is a folder; give a file name"),
        # No packing fits 11 B: the bad path was never reported (exit 1, the status only).
        (["--capacity", "11"], lambda d: d, "is a folder; give a file name"),
    ],
    ids=["missing-folder", "folder", "folder-no-packing"],
)
def test_a_bad_output_is_refused_before_the_search(
    small_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    search_spy: _SearchSpy,
    args: list[str],
    make: object,
    expected: str,
) -> None:
    """-o was checked only at the write: a folder or a missing folder cost the whole
    search (4.7 s of a --time-limit 4 run) and printed the error without the result."""
    target = make(tmp_path)  # type: ignore[operator]
    code = main(["allocate", str(small_csv), *args, "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT and out == ""
    assert f"-o {target}: " in err and expected in err and err.count("\n") == 1, err
    assert search_spy.budgets == []  # refused before the search


def test_a_write_that_fails_after_the_search_still_prints_the_result(
    small_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A disk that fills during the search: the packing found was lost with the error."""
    import errno
    import os

    import memplan.io.files as files

    def disk_full(target: object, data: bytes) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_stage", disk_full)
    code = main(["allocate", str(small_csv), "--capacity", "12", "-o", str(tmp_path / "o.csv")])
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert "optimal" in out and "height" in out and "written" not in out
    assert err.count("\n") == 1 and "No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_output_to_standard_output_is_the_csv_alone(
    small_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-o - was refused ('standard output is not possible here'), though docs/files.md
    says -o - writes to standard output."""
    from memplan.io.buffers_csv import parse_buffers_csv

    code = main(["allocate", str(small_csv), "--capacity", "12", "-o", "-"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    placed = parse_buffers_csv(out, "stdout")  # nothing but the CSV on standard output
    assert out.splitlines()[0] == "id,lower,upper,size,offset" and len(placed) == 5
    offsets = [int(b.fixed_offset_bytes or 0) for b in placed]
    assert validate_packing(read_buffers_csv(small_csv), offsets, 12) == []
    assert "optimal" in err and "standard output" in err  # the table, on stderr


def test_output_to_standard_output_and_json_are_refused_together(
    small_csv: Path, capsys: pytest.CaptureFixture[str], search_spy: _SearchSpy
) -> None:
    code = main(["allocate", str(small_csv), "-o", "-", "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_BAD_INPUT and out == "" and search_spy.budgets == []
    assert "-o - and --json would both write to standard output" in err


def test_time_limit_none_means_no_limit(
    small_csv: Path, capsys: pytest.CaptureFixture[str], search_spy: _SearchSpy
) -> None:
    """'--time-limit none', which optimize takes, was refused: 'must be a number'."""
    code = main(["allocate", str(small_csv), "--time-limit", "none", "--json"])
    assert code == EXIT_OK
    assert json.loads(capsys.readouterr().out)["status"] == "optimal"
    assert [b.time_limit_s for b in search_spy.budgets] == [None]  # type: ignore[attr-defined]


def test_help_names_the_no_limit_and_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["allocate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "'none' for no limit" in text and "'-' for standard output" in text
