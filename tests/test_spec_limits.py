"""Limits of accelerator specs, scratchpad budgets and solver budgets (sweep 4).

Each bad value gets one ConfigError naming the file and field (or the spec), never a
TypeError or OverflowError from deep inside, and in the CLI one line with exit 2:

- a spec file whose top level is no object (an array, a string, a number, null);
- integer fields (``capacity_bytes``, ``alignment_bytes``) given as floats or out of
  range (alignment at most :data:`memplan.accelerator.MAX_ALIGNMENT_BYTES`);
- NaN, infinite, boolean or non-numeric rates and energies;
- byte counts parsed exactly (2^63-1 is kept, anything above it refused);
- ``Budget`` and ``Accelerator`` arguments of the wrong type.
"""

from __future__ import annotations

import json
import math
import re
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_models import run_cli

from memplan.accelerator import MAX_ALIGNMENT_BYTES, Accelerator, load_accelerator
from memplan.budgets import is_budget_spec, resolve_budget
from memplan.cli import EXIT_BAD_INPUT
from memplan.errors import ConfigError
from memplan.problem import Problem
from memplan.solver import Budget, Status, make_solver
from memplan.testing import random_dag
from memplan.units import MAX_BYTES, brief_repr, parse_bytes

WORKLOAD = "randwire_ws_tiny"  # a stored workload: no ONNX file needed


def _problem(alignment_bytes: int = 64) -> Problem:
    problem = Problem(random_dag(3, 12), Accelerator("t", 0, alignment_bytes=alignment_bytes))
    return problem.with_capacity(problem.min_resident_bytes * 2)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ 1. non-object tops
@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "an array"), ('"hello"', "a string"), ("42", "a number"), ("null", "null")],
)
def test_a_spec_file_that_is_no_object_is_refused_naming_the_file(tmp_path, text, kind):
    path = _write(tmp_path, "list.json", text)
    with pytest.raises(ConfigError) as info:
        load_accelerator(path)
    assert str(info.value) == (
        f"{path}: not an accelerator spec (expected an object/table of fields, got {kind})"
    )


@pytest.mark.parametrize("data", [[1, 2], "hello", 3.5, None, ("a", "b")])
def test_from_dict_refuses_a_non_mapping(data: Any):
    with pytest.raises(ConfigError, match=r"^spec\.json: not an accelerator spec"):
        Accelerator.from_dict(data, "spec.json")


@pytest.mark.parametrize("command", ["optimize", "inspect"])
def test_cli_reports_a_list_spec_in_one_line(tmp_path, capsys, command):
    path = _write(tmp_path, "list.json", "[1, 2]")
    code, _, err = run_cli(capsys, command, WORKLOAD, "--accelerator", path)
    assert code == EXIT_BAD_INPUT
    assert "not an accelerator spec (expected an object/table of fields" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_score_reports_a_list_spec_in_one_line(tmp_path, capsys):
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(capsys, "optimize", WORKLOAD, "--scratchpad", "MP", "-o", plan)
    assert code == 0, err
    spec = _write(tmp_path, "list.json", "[1, 2]")
    code, _, err = run_cli(capsys, "score", WORKLOAD, plan, "--accelerator", spec)
    assert code == EXIT_BAD_INPUT
    assert "list.json: not an accelerator spec" in err and "Traceback" not in err


# ------------------------------------------------------------- 2. integer byte fields
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('"alignment_bytes": 1e30', "alignment_bytes must be an integer, got 1e+30"),
        ('"alignment_bytes": 64.0', "alignment_bytes must be an integer, got 64.0"),
        ('"alignment_bytes": 4611686018427387904', "alignment_bytes must be <= 2^40"),
        ('"alignment_bytes": 1099511627777', "alignment_bytes must be <= 2^40"),
        ('"alignment_bytes": 0', "alignment_bytes must be >= 1, got 0"),
        ('"capacity_bytes": 1e6', "capacity_bytes must be an integer, got 1000000.0"),
        ('"capacity_bytes": 9223372036854775808', "capacity_bytes must be <= 2^63-1"),
        ('"capacity_bytes": 1e400', "capacity_bytes must be an integer, got inf"),
    ],
)
def test_integer_fields_are_integers_in_range(tmp_path, fields, message):
    text = (
        "{" + fields + "}" if "capacity_bytes" in fields else '{"capacity_bytes": 1,' + fields + "}"
    )
    path = _write(tmp_path, "al.json", text)
    with pytest.raises(ConfigError) as info:
        load_accelerator(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


def test_the_largest_values_are_accepted(tmp_path):
    path = _write(
        tmp_path,
        "edge.json",
        json.dumps({"capacity_bytes": MAX_BYTES, "alignment_bytes": MAX_ALIGNMENT_BYTES}),
    )
    acc = load_accelerator(path)
    assert (acc.capacity_bytes, acc.alignment_bytes) == (MAX_BYTES, 1 << 40)


def test_an_alignment_above_the_limit_never_reaches_the_planner(tmp_path, capsys):
    """It used to crash in liveness.py with OverflowError (1e30) or advise > 2^63-1."""
    for value in ("1e30", str(1 << 62)):
        path = _write(
            tmp_path, "al.json", f'{{"capacity_bytes": 1048576, "alignment_bytes": {value}}}'
        )
        for argv in (
            ("optimize", WORKLOAD, "--accelerator", path, "--scratchpad", "2*MR"),
            ("inspect", WORKLOAD, "--accelerator", path),
        ):
            code, _, err = run_cli(capsys, *argv)
            assert code == EXIT_BAD_INPUT, err
            assert f"{path}: alignment_bytes must be" in err and "Traceback" not in err


# ---------------------------------------------------------------- 3. rates and energies
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "bw.toml",
            "capacity_bytes = 1024\ndram_bytes_per_s = nan\n",
            "dram_bytes_per_s must be a finite number > 0, got nan",
        ),
        (
            "bw.toml",
            "capacity_bytes = 1024\ndram_bytes_per_s = inf\n",
            "dram_bytes_per_s must be a finite number > 0, got inf",
        ),
        (
            "mac.json",
            '{"capacity_bytes": 1024, "mac_per_s": NaN}',
            "mac_per_s must be a finite number > 0, got nan",
        ),
        (
            "e.json",
            '{"capacity_bytes": 1024, "mac_energy_j": Infinity}',
            "mac_energy_j must be a finite number >= 0, got inf",
        ),
        (
            "e.json",
            '{"capacity_bytes": 1024, "sram_energy_j_per_byte": true}',
            "sram_energy_j_per_byte must be a number >= 0, got True",
        ),
        ("n.json", '{"capacity_bytes": 1024, "name": 5}', "name must be a string, got 5"),
        ("n.json", '{"capacity_bytes": 1024, "name": null}', "name must be a string, got None"),
    ],
)
def test_non_finite_rates_and_energies_are_refused_naming_file_and_field(
    tmp_path, name, text, message
):
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as info:
        load_accelerator(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    "field", ["dram_bytes_per_s", "mac_per_s", "dram_energy_j_per_byte", "mac_energy_j"]
)
@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, True, "1e9", None, pytest.param(10**400, id="10**400")],
)
def test_the_constructor_refuses_bad_rates_and_energies(field, value):
    with pytest.raises(ConfigError, match=rf"^accelerator 'x': {field} must be"):
        Accelerator("x", 1024, **{field: value})


def test_cli_refuses_a_nan_bandwidth_before_planning(tmp_path, capsys):
    """A NaN rate used to give a plan with latency nan that validate/score refuse."""
    spec = _write(tmp_path, "bwnan.toml", "capacity_bytes = 1048576\ndram_bytes_per_s = nan\n")
    plan = tmp_path / "plan.json"
    code, _, err = run_cli(capsys, "optimize", WORKLOAD, "--accelerator", spec, "-o", plan)
    assert code == EXIT_BAD_INPUT
    assert err.strip().endswith(f"{spec}: dram_bytes_per_s must be a finite number > 0, got nan")
    assert not plan.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dram_bytes_per_s", 1e-320, "dram_bytes_per_s must be at least 1 (bytes per second)"),
        ("mac_per_s", 5e-324, "mac_per_s must be at least 1 (MACs per second)"),
        ("mac_per_s", 0.5, "mac_per_s must be at least 1 (MACs per second)"),
        (
            "dram_energy_j_per_byte",
            1e308,
            "dram_energy_j_per_byte must be at most 1 (joules per byte)",
        ),
        ("mac_energy_j", 2.0, "mac_energy_j must be at most 1 (joules per MAC)"),
    ],
)
def test_rates_below_one_and_energies_above_one_joule_are_refused(field, value, message):
    """A bandwidth of 1e-320 B/s (or an energy of 1e308 J/B) made latency or energy inf,
    which optimize wrote as ``Infinity`` (no JSON) into a plan file score then refused."""
    with pytest.raises(ConfigError, match=rf"^accelerator 'x': {re.escape(message)}, got"):
        Accelerator("x", 1024, **{field: value})


def test_the_limits_of_rates_and_energies_are_accepted():
    acc = Accelerator("x", 1024, dram_bytes_per_s=1, mac_per_s=1.0, mac_energy_j=1.0)
    assert (acc.dram_bytes_per_s, acc.mac_per_s, acc.mac_energy_j) == (1.0, 1.0, 1.0)


def test_cli_refuses_a_denormal_bandwidth_before_planning(tmp_path, capsys):
    spec = _write(tmp_path, "slow.toml", "capacity_bytes = 1048576\ndram_bytes_per_s = 1e-320\n")
    plan = tmp_path / "plan.json"
    code, out, err = run_cli(
        capsys, "optimize", WORKLOAD, "--accelerator", spec, "-o", plan, "--json"
    )
    assert code == EXIT_BAD_INPUT, err
    assert f"{spec}: dram_bytes_per_s must be at least 1 (bytes per second)" in err
    assert "Infinity" not in out and "Traceback" not in err
    assert not plan.exists()


# ------------------------------------------------------------------- 4. exact byte counts
def test_byte_counts_are_parsed_exactly():
    assert parse_bytes("9223372036854775807") == MAX_BYTES
    assert parse_bytes("8589934591GiB") == 8589934591 * 1024**3
    assert parse_bytes("1.5MiB") == 1572864
    assert parse_bytes("0.1kB") == 100
    with pytest.raises(ConfigError, match="not a whole number of bytes"):
        parse_bytes("1.5")
    with pytest.raises(
        ConfigError, match=r"'9223372036854775808' is above the largest size, 2\^63-1"
    ):
        parse_bytes("9223372036854775808", "--capacity")
    assert parse_bytes("99999999999999999999999", max_bytes=None) == 99999999999999999999999
    with pytest.raises(ConfigError, match="must be a string"):
        parse_bytes(65536)  # type: ignore[arg-type]


def test_a_budget_of_2_63_minus_1_is_kept_exactly():
    problem = _problem(alignment_bytes=1)
    assert resolve_budget("9223372036854775807", problem).capacity_bytes == MAX_BYTES
    aligned = resolve_budget("9223372036854775807", _problem())
    assert aligned.capacity_bytes == MAX_BYTES // 64 * 64


@pytest.mark.parametrize(
    "spec", ["9223372036854775808", "99999999999999999999999", "8589934592GiB"]
)
def test_a_budget_above_2_63_minus_1_is_refused_naming_the_spec(spec):
    with pytest.raises(ConfigError) as info:
        resolve_budget(spec, _problem())
    assert str(info.value) == (
        f"scratchpad {spec!r} is above the largest scratchpad, 2^63-1 = {MAX_BYTES} bytes"
    )
    assert not is_budget_spec(spec)


def test_a_huge_multiple_is_refused_and_a_huge_spec_does_not_crash():
    problem = _problem()
    with pytest.raises(ConfigError, match="above the largest scratchpad"):
        resolve_budget("1" + "0" * 30 + "*MR", problem)
    with pytest.raises(ConfigError, match=r"scratchpad '1111+\.\.\. is above the largest"):
        resolve_budget("1" * 5000, problem)  # more digits than int() may convert
    assert resolve_budget("0.5*MR", problem).capacity_bytes == (
        problem.min_resident_bytes // 2 // 64 * 64
    )


@pytest.mark.parametrize("spec", [None, 65536, 0.5])
def test_a_budget_spec_that_is_no_string_is_a_config_error(spec):
    with pytest.raises(ConfigError, match="is not a budget; pass a string"):
        resolve_budget(spec, _problem())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"), [("9223372036854775807", None), ("99999999999999999999999", "above")]
)
def test_cli_scratchpad_is_exact_and_named(tmp_path, capsys, value, shown):
    plan = tmp_path / "plan.json"
    code, out, err = run_cli(capsys, "optimize", WORKLOAD, "--scratchpad", value, "-o", plan)
    if shown is None:
        assert code == 0, err
        assert f"{MAX_BYTES // 64 * 64:,} B" in out
    else:
        assert code == EXIT_BAD_INPUT
        assert f"--scratchpad: scratchpad '{value}' is above the largest scratchpad" in err
        assert "99999999999999991611392" not in err  # the float rounding it used to show


# ------------------------------------------------------------ 5. Budget and Accelerator
@pytest.mark.parametrize("value", ["5", True, math.nan, [5], object()])
def test_budget_refuses_a_limit_that_is_no_number(value):
    with pytest.raises(ConfigError, match=r"^Budget: time_limit_s must be a number of seconds"):
        Budget(time_limit_s=value)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (None, None),
        (5, 5.0),
        (np.float64(2.5), 2.5),
        (Fraction(1, 2), 0.5),
        (math.inf, math.inf),
        pytest.param(10**400, math.inf, id="10**400"),
    ],
)
def test_budget_keeps_numbers_as_float_seconds(value, stored):
    budget = Budget(time_limit_s=value)
    assert budget.time_limit_s == stored
    assert budget.time_limit_s is None or type(budget.time_limit_s) is float
    assert budget.remaining_s() > 0


@pytest.mark.parametrize("limit", [0, -1])
def test_budget_zero_or_negative_still_times_out_with_a_plan(limit):
    result = make_solver("greedy").solve(_problem(), Budget(time_limit_s=limit))
    assert result.status is Status.TIMEOUT and result.plan is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"started_at_s": "now"}, "started_at_s must be a finite"),
        ({"started_at_s": math.nan}, "started_at_s must be a finite"),
        ({"stop_event": True}, "stop_event must be a threading.Event"),
        ({"on_progress": 3}, "on_progress must be a callable"),
    ],
)
def test_budget_refuses_other_bad_fields(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Budget(**kwargs)
    Budget(stop_event=threading.Event(), on_progress=print)  # the right kinds pass


@pytest.mark.parametrize("capacity", [1.5, 2048.0, None, "1MB", True, -1, 2**63])
def test_accelerator_and_with_capacity_refuse_a_bad_capacity(capacity):
    with pytest.raises(ConfigError, match=r"^accelerator 'x': capacity_bytes must be"):
        Accelerator("x", capacity)
    acc = Accelerator("x", 1024)
    with pytest.raises(ConfigError, match="capacity_bytes must be"):
        acc.with_capacity(capacity)
    with pytest.raises(ConfigError, match="capacity_bytes must be"):
        _problem().with_capacity(capacity)


def test_numpy_integers_become_ints_and_rates_floats():
    acc = Accelerator("x", np.int64(4096), alignment_bytes=np.int32(128), mac_per_s=10**12)
    assert type(acc.capacity_bytes) is int and type(acc.alignment_bytes) is int
    assert type(acc.mac_per_s) is float
    json.dumps(acc.to_dict())  # JSON-ready
    assert Accelerator.from_dict(acc.to_dict()) == acc


def test_brief_repr_keeps_messages_short_and_printable():
    assert brief_repr(10**5000) == "<an integer of about 5001 digits>"
    assert brief_repr("x" * 200).endswith("...") and len(brief_repr("x" * 200)) == 60
    assert brief_repr(1.5) == "1.5"
    with pytest.raises(ConfigError, match="about 5001 digits"):
        Accelerator("x", 10**5000)
