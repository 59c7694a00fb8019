"""How much a prior over moves could be worth in the rl solver's rollout search, held out.

A fortified rollout pass (:mod:`memplan.solvers.rl.rollout`) tries, at every move of a
game, a few moves besides the default policy's (replay the reference lazily, else
Belady), each valued by a rollout to the end; the network's prior only chooses *which*
few. So a prior can beat random choices only at states where some other move, followed
by the default policy, ends below the default game. This script counts those states
exhaustively: on the catalog workloads of the held-out families (the shipped agent never
trained on them), both scopes, M_R and M_H, the model and min-peak orders, it plays the
default game and at each state with a choice plays every legal move to the end.

Run: ``python benchmarks/rl_headroom.py [--workloads ...] [--cap-s 15] [--max-ops 420]``;
prints one line per instance (states with a choice, states where another move ends
lower) and the totals. A state count below the game's length means the per-instance
time cap cut the game short.
"""

from __future__ import annotations

import argparse
import time

from memplan.accelerator import load_accelerator
from memplan.budgets import resolve_budget
from memplan.graphs import catalog
from memplan.io.loading import load_model
from memplan.placement import PlacementState
from memplan.problem import Problem, Scope
from memplan.rl.sampler import HELD_OUT_FAMILIES, catalog_workloads
from memplan.solvers.rl.features import encode
from memplan.solvers.rl.instances import Instance, make_instance
from memplan.solvers.rl.reference import Reference, default_move


def _to_end(state: PlacementState, guide: Reference) -> int:
    """Play the default policy to the end; the number of moves played."""
    played = 0
    while not state.done:
        state.apply(default_move(state, guide))
        played += 1
    return played


def headroom(instance: Instance, cap_s: float) -> tuple[int, int]:
    """(states with more than one legal move, states where another move ends lower)."""
    assert instance.reference is not None
    guide = Reference(instance.reference, lazy=True)
    state = instance.new_state()
    started, choices, improving = time.monotonic(), 0, 0
    while not state.done and time.monotonic() - started < cap_s:
        encoding = encode(state, instance.scale_bytes, guide)
        default = default_move(state, guide)
        legal = [m for m, ok in zip(encoding.moves, encoding.mask, strict=True) if ok and m]
        if len(legal) > 1:
            choices += 1
            ends = []
            for move in legal:
                state.apply(move)
                played = 1 + _to_end(state, guide)
                ends.append((move == default, state.non_compulsory_bytes))
                for _ in range(played):
                    state.undo()
            default_end = min(end for is_default, end in ends if is_default)
            improving += any(end < default_end for _, end in ends)
        state.apply(default)
    return choices, improving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=None)
    parser.add_argument("--cap-s", type=float, default=15.0, help="seconds per instance")
    parser.add_argument("--max-ops", type=int, default=420, help="largest graph (ops)")
    args = parser.parse_args()
    workloads = args.workloads or catalog_workloads(HELD_OUT_FAMILIES, max_ops=args.max_ops)
    accelerator = load_accelerator("edge-npu")
    total_choices = total_improving = instances = 0
    for workload in workloads:
        graph = load_model(catalog.load_model(workload)).graph
        for scope in (Scope.ACTIVATIONS, Scope.ALL):
            base = Problem(graph, accelerator, scope)
            for spec in ("MR", "MH"):
                problem = base.with_capacity(resolve_budget(spec, base).capacity_bytes)
                for order in ("model", "min-peak"):
                    instance = make_instance(problem, order, alloc_time_limit_s=2.0)
                    if not instance.baseline_bytes:
                        continue  # greedy moves nothing: no game to improve
                    choices, improving = headroom(instance, args.cap_s)
                    instances += 1
                    total_choices += choices
                    total_improving += improving
                    print(
                        f"{workload} {scope.value} {spec} {order}: {choices} states with a "
                        f"choice, {improving} where another move ends lower",
                        flush=True,
                    )
    print(
        f"\ninstances {instances}; states with a choice {total_choices}; states where "
        f"another move ends below the default game {total_improving}"
    )


if __name__ == "__main__":
    main()
