"""The rl solver keeps short time limits and answers Ctrl-C inside every phase."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from memplan.accelerator import Accelerator
from memplan.problem import Problem
from memplan.solver import Budget, make_solver
from memplan.solvers.rl import solver as rl_solver
from memplan.testing import random_dag
from memplan.validate import validate


def _problem(seed: int = 4, n_ops: int = 60) -> Problem:
    problem = Problem(random_dag(seed, n_ops), Accelerator("t", 1, alignment_bytes=64))
    return problem.with_capacity(problem.min_resident_bytes)


def _record_make_instance(monkeypatch: pytest.MonkeyPatch, argument: str) -> list[Any]:
    """Spy on rl's make_instance: the list gets the keyword ``argument`` of every call."""
    seen: list[Any] = []
    real = rl_solver.make_instance

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get(argument))
        return real(*args, **kwargs)

    monkeypatch.setattr(rl_solver, "make_instance", recording)
    return seen


def test_greedys_stack_inside_rl_gets_the_stop_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every instance rl builds runs greedy's stack with the solve's stop flag, so Ctrl-C
    stops it (hrnet_add7: answered 6 s late while the searched order's stack ran on)."""
    seen = _record_make_instance(monkeypatch, "stop_event")
    budget, problem = Budget(time_limit_s=20), _problem()
    result = make_solver("rl", {"search": "rollout"}).solve(problem, budget)
    assert result.plan is not None and validate(problem, result.plan) == []
    with_baseline = [s for s in seen if s is not None]
    assert with_baseline and all(s is budget.stop_event for s in with_baseline)


def test_a_short_limit_starts_neither_the_order_search_nor_the_part_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below the time their set-up needs (loading the search's kernels, importing CP-SAT)
    they are not started: at a 0.1-s limit they ran to 0.38 s and 0.46 s."""
    calls: list[str] = []
    for name in ("_searched_order", "_part_bound"):
        real = getattr(rl_solver.RlSolver, name)

        def wrapped(self: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(rl_solver.RlSolver, name, wrapped)
    monkeypatch.setattr(rl_solver, "PART_BOUND_MIN_S", 10.0)  # as if CP-SAT were not loaded
    problem = _problem()
    result = make_solver("rl").solve(problem, Budget(time_limit_s=0.1))
    assert result.plan is not None and validate(problem, result.plan) == []
    assert "_searched_order" not in calls
    assert "searched" not in result.stats["reference_bytes"]
    assert "ilp" not in str(result.stats.get("bound_method", ""))  # no part bound ran


def test_a_checkpoint_of_another_shape_is_refused_up_front_naming_the_file(
    tmp_path: Any,
) -> None:
    """Checked when the solver is made (before a model loads), and the file is named."""
    import numpy as np

    from memplan.errors import ConfigError
    from memplan.solvers.rl.network import FORMAT_VERSION, Network

    network = Network.initial(0)
    name = next(iter(network.params))
    params = {**network.params, name: np.zeros((3, 3), dtype=np.float32)}
    path = tmp_path / "narrow.npz"
    meta = json.dumps(dict(network.meta, format_version=FORMAT_VERSION))
    np.savez(path, meta=np.array(meta), **params)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: network parameter {name!r}")):
        make_solver("rl", {"network": str(path)})


def test_the_online_pass_scaling_an_instance_stops_with_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The online Belady pass that sets an instance's feature scale had no limit: on one
    input read by 10,000 ops it took 26 s of a 5-s rl solve. Every instance rl builds now
    passes a budget that ends at the solve's deadline; a stopped pass leaves the capacity
    as the scale (no game is played after the deadline)."""
    from memplan.solvers.rl.instances import make_instance, online_bytes

    problem = _problem()
    full = make_instance(problem, "model", baseline=False)
    online = online_bytes(problem, full.timeline)
    assert online > problem.capacity_bytes  # the pass sets the scale here
    assert full.scale_bytes == online
    stopped = make_instance(problem, "model", baseline=False, budget=Budget(time_limit_s=0))
    assert stopped.scale_bytes == problem.capacity_bytes

    budgets = _record_make_instance(monkeypatch, "budget")
    result = make_solver("rl", {"search": "rollout"}).solve(problem, Budget(time_limit_s=20))
    assert result.plan is not None and validate(problem, result.plan) == []
    assert budgets and all(b is not None and b.time_limit_s <= 20 for b in budgets)
