"""``optimize --objective`` and ``--timeline``: plan for latency, draw the timeline.

``--objective latency`` asks the solver to lower the ``overlap`` timing model's latency
(:mod:`memplan.timing`) at the traffic it would reach anyway; only solvers declaring
the capability :data:`memplan.timing.OBJECTIVE_LATENCY` accept it (``memplan solvers``
lists them; greedy does, through the prefetch pass). ``--timeline`` adds the compute
and DMA lanes to ``--plot``, which it does by itself for ``--objective latency``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from memplan.errors import ConfigError
from memplan.timing import OBJECTIVE_LATENCY, OBJECTIVES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from memplan.plan import Plan
    from memplan.problem import Problem


def add_objective_arguments(planning: Any, output: Any) -> None:
    """Add ``--objective`` to the planning group and ``--timeline`` to the output group."""
    planning.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help=(
            "what the solver minimises: traffic (default: non-compulsory DRAM bytes) or "
            "latency (then also the overlap timing model's seconds, at that traffic; "
            "solvers that support it: greedy, by its prefetch pass; 'memplan solvers' "
            "lists them)"
        ),
    )
    output.add_argument(
        "--timeline",
        action="store_true",
        help="add the timeline (compute and DMA lanes over time, stalls marked) to --plot; "
        "on by default with --objective latency",
    )


def objective_options(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the solver option that ``--objective`` asks for.

    Raises:
        ConfigError: the solver does not support the objective, or ``--option
            objective=...`` says otherwise.
    """
    # None: not given, so --option objective=... (if any) decides; an explicit
    # --objective traffic beside --option objective=latency was silently overridden.
    chosen = getattr(args, "objective", None)
    objective = chosen or OBJECTIVES[0]
    given = options.get("objective")
    if given is not None and chosen is not None and str(given) != chosen:
        raise ConfigError(
            f"--objective {objective} and --option objective={given} disagree; give one"
        )
    if chosen is None and given is not None and str(given) in OBJECTIVES:
        # --option objective=latency is --objective latency for the timeline and the
        # notes too (the --plot figure lacked the timeline it promises for latency).
        args.objective = str(given)
        return options
    if objective == OBJECTIVES[0]:
        return options
    from memplan.registry import PluginKind, capabilities_of, providers
    from memplan.solver import solver_class

    if OBJECTIVE_LATENCY not in capabilities_of(solver_class(args.solver)):
        able = providers(PluginKind.SOLVER, OBJECTIVE_LATENCY)
        raise ConfigError(
            f"solver {args.solver!r} does not support --objective {objective}; solvers that "
            f"do: {', '.join(able) or 'none installed'}"
        )
    return {**options, "objective": objective}


def objective_note(args: argparse.Namespace, problem: Problem) -> str | None:
    """A note when ``--objective latency`` cannot move the latency the output leads with.

    The objective lowers the ``overlap`` model's latency; an accelerator timed by the
    ``serial`` model reports that model's figure first, which depends on the traffic
    only, so the run seemed to change nothing.
    """
    if getattr(args, "objective", None) != "latency":
        return None
    accelerator = problem.accelerator
    if accelerator.timing_model == "overlap":
        return None
    return (
        f"--objective latency lowers the overlap model's latency; accelerator "
        f"{accelerator.name!r} has timing_model = {accelerator.timing_model!r}, whose "
        "latency (shown first) is the same for every plan with the same traffic; see the "
        'overlap figure beside it, or use a spec with timing_model = "overlap"'
    )


def wants_timeline(args: argparse.Namespace) -> bool:
    """Whether ``--plot`` draws the timeline too."""
    return bool(getattr(args, "timeline", False)) or getattr(args, "objective", "") == "latency"


def plan_figure(problem: Problem, plan: Plan, timeline: bool) -> Figure:
    """The ``--plot`` figure: the memory map, with the timeline below when asked."""
    if not timeline:
        from memplan.viz.plots import plot_plan

        return plot_plan(problem, plan)
    from memplan.timing import simulate
    from memplan.viz.timeline import plot_schedule

    return plot_schedule(problem, plan, [("", simulate(problem, plan, "overlap"))])
