"""Ctrl-C during a solve called from Python (a script, a notebook): the first one stops
the solve, which returns its best valid plan so far (TIMEOUT, "interrupted"), as on the
command line; a second one raises KeyboardInterrupt. Before, dnc, greedy and rl raised
KeyboardInterrupt at the first one and the best plan was lost."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from helpers import greedy_case

from memplan.solver import Budget, Progress, Status, make_solver
from memplan.validate import validate

SOLVERS = ("greedy", "dnc", "rl", "ilp")


def _interrupting(times: int) -> Any:
    """An on_progress callback that sends SIGINT to this process ``times`` times at its
    first call: Ctrl-C while the solve runs, whatever the machine's speed."""
    sent = []

    def on_progress(progress: Progress) -> None:
        if not sent:
            sent.append(progress)
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    return on_progress


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_first_ctrl_c_returns_the_best_plan_so_far(solver: str) -> None:
    problem, _ = greedy_case(3, "MR", n_ops=40)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    budget = Budget(time_limit_s=60, on_progress=_interrupting(1))
    result = make_solver(solver).solve(problem, budget)
    assert budget.interrupted()
    assert result.plan is not None and validate(problem, result.plan) == []
    if result.status is not Status.OPTIMAL:  # a proof may come before the stop is seen
        assert result.status is Status.TIMEOUT and "interrupted" in result.message
    # The caller's handler is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_second_ctrl_c_aborts(solver: str) -> None:
    problem, _ = greedy_case(3, "MR", n_ops=40)
    with pytest.raises(KeyboardInterrupt):
        make_solver(solver).solve(problem, Budget(time_limit_s=60, on_progress=_interrupting(2)))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_callers_own_handler_is_kept() -> None:
    """A program with its own SIGINT handler (the command line's) keeps it: the solve
    does not replace it."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        problem, _ = greedy_case(3, "MR", n_ops=40)
        budget = Budget(time_limit_s=60, on_progress=_interrupting(1))
        make_solver("greedy").solve(problem, budget)
        assert seen == [signal.SIGINT] and not budget.interrupted()
    finally:
        signal.signal(signal.SIGINT, previous)
