"""The rl solver keeps short time limits and answers Ctrl-C inside every phase."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from memplan.accelerator import Accelerator
from memplan.problem import Problem
from memplan.solver import Budget, make_solver
from memplan.solvers.rl import orders as rl_orders
from memplan.solvers.rl import play as rl_play
from memplan.solvers.rl import solver as rl_solver
from memplan.testing import random_dag
from memplan.validate import validate


def _problem(seed: int = 4, n_ops: int = 60) -> Problem:
    problem = Problem(random_dag(seed, n_ops), Accelerator("t", 1, alignment_bytes=64))
    return problem.with_capacity(problem.min_resident_bytes)


def _record_make_instance(monkeypatch: pytest.MonkeyPatch, argument: str) -> list[Any]:
    """Spy on rl's make_instance: the list gets the keyword ``argument`` of every call."""
    seen: list[Any] = []
    real = rl_orders.make_instance

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get(argument))
        return real(*args, **kwargs)

    monkeypatch.setattr(rl_orders, "make_instance", recording)
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


def test_progress_reports_greedys_plan_and_the_bound_before_the_order_search() -> None:
    """The live line said "no plan yet, bound -" until the games ended: greedy's floor
    ran without a progress callback and nothing was reported before every order was
    planned. Greedy's plans, the bound and each better plan are now reported as they come,
    and the last incumbent reported is the plan returned."""
    from memplan.solver import Progress

    seen: list[Progress] = []
    problem = _problem(seed=0, n_ops=30)
    budget = Budget(time_limit_s=20, on_progress=seen.append)
    result = make_solver("rl", {"episodes": "1"}).solve(problem, budget)
    assert result.cost is not None
    phases = [p.message for p in seen]
    first_plan = next(i for i, p in enumerate(seen) if p.incumbent_bytes is not None)
    assert phases[first_plan].startswith("greedy")
    greedy = make_solver("greedy", {}).solve(problem, Budget(time_limit_s=20))
    assert greedy.cost is not None
    floor = next(p for p in seen if p.incumbent_bytes is not None and "greedy" not in p.message)
    assert floor.incumbent_bytes == greedy.cost.non_compulsory_bytes
    first_bound = next(i for i, p in enumerate(seen) if p.bound_bytes is not None)
    searched = phases.index("planning the searched order")
    assert first_plan < first_bound < searched
    incumbents = [p.incumbent_bytes for p in seen[first_plan:]]
    assert None not in incumbents and incumbents == sorted(incumbents, reverse=True)
    assert incumbents[-1] == result.cost.non_compulsory_bytes


def test_episodes_0_says_truthfully_why_the_passes_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``episodes=0`` stopped once the search was exhausted (after 6 passes, at 5 s of
    30 s) and when interrupted, and said "played rollout games until the time limit"
    both times. It stops when a pass that tried every alternative at every move found
    nothing (another would replay it) and says so; Ctrl-C makes it TIMEOUT, saying
    interrupted; the time limit says time limit."""
    from memplan.solver import Status

    problem = _problem(seed=2, n_ops=30)
    options = {"episodes": "0", "order": "model"}
    result = make_solver("rl", options).solve(problem, Budget(time_limit_s=30))
    assert result.status is Status.FEASIBLE and result.stats["stopped_by"] == {"model": "exhausted"}
    assert "the search is exhausted" in result.message
    assert "time limit" not in result.message and result.wall_s < 25

    budget = Budget(time_limit_s=30)
    real = rl_play.rollout_pass

    def interrupting(*args: Any, **kwargs: Any) -> Any:
        budget.stop_event.set()  # Ctrl-C during the first pass
        return real(*args, **kwargs)

    monkeypatch.setattr(rl_play, "rollout_pass", interrupting)
    result = make_solver("rl", options).solve(problem, budget)
    assert result.status is Status.TIMEOUT and "interrupted (Ctrl-C)" in result.message
    assert result.plan is not None and validate(problem, result.plan) == []

    def never_exhausted(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        return dataclasses.replace(found, improvements=max(found.improvements, 1))

    monkeypatch.setattr(rl_play, "rollout_pass", never_exhausted)
    result = make_solver("rl", {**options, "max_time_s": "2"}).solve(problem, Budget(30))
    assert (
        result.status is Status.FEASIBLE and "model order: until the time limit" in result.message
    )
