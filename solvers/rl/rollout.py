"""Fortified rollouts on the mallocGame: the default policy improved one move at a time.

A *pass* plays one game from the start. At every move it tries ``alternatives`` moves
besides the one the default policy makes there (:func:`~.reference.default_move`: replay
the best game so far, its evictions deferred until their space is needed (a *lazy*
reference), else the online Belady pass), and values each exactly by playing
the default policy from it to the end of the game (the simulator is the model, so a
rollout's traffic is the traffic of a real, complete plan). A rollout that ends below
the best game so far becomes the best game, and from then on the default policy replays
*it*, so the pass follows the best game it knows and never ends above the plan it
started from: Bertsekas' fortified rollout ("Rollout algorithms for combinatorial
optimization", J. Heuristics 1997), here on the reference plan of greedy's stack.

As a tree search it has depth one: a move's children are expanded by a rollout each,
and the network's prior decides *which* children (the top ``alternatives`` slots of its
logits, the default move aside). Without a network the children are drawn uniformly at
random from the same slots with the same number of rollouts: the network-free baseline
at an equal budget, so what the prior is worth shows as the traffic each one reaches.

Why a rollout to the end and not the network's value: an eviction's price is paid when
the tensor is read again, often hundreds of moves later; the Gumbel search's 16-step
rollouts plus the network's value do not see it (its noisy games ended 6-7x above greedy
on pnasnet5_cifar), while one rollout of the default policy costs about 20 us per move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from memplan.placement import Move, PlacementState
from memplan.plan import Plan
from memplan.solvers.rl.features import encode
from memplan.solvers.rl.instances import Instance
from memplan.solvers.rl.network import Network
from memplan.solvers.rl.reference import Reference, default_move


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass found."""

    best_bytes: int  # non-compulsory bytes of the best game (the start's when not improved)
    best_plan: Plan  # that game's plan
    rollouts: int  # rollouts played
    improvements: int  # rollouts that ended below the best game so far
    complete: bool  # False when time cut the pass short (the best game is still complete)


def _play_out(
    state: PlacementState, guide: Reference, move: Move | None, best_bytes: int
) -> tuple[int, Plan] | None:
    """Play ``move`` (if any), then the default policy to the end of the game, and undo
    it all; the game's bytes and plan when it ends below ``best_bytes``, else None."""
    played = 0
    if move is not None:
        state.apply(move)
        played += 1
    while not state.done:
        state.apply(default_move(state, guide))
        played += 1
    moved = state.non_compulsory_bytes
    better = (moved, state.plan()) if moved < best_bytes else None
    for _ in range(played):
        state.undo()
    return better


def _children(
    state: PlacementState,
    instance: Instance,
    guide: Reference,
    alternatives: int,
    network: Network | None,
    rng: np.random.Generator,
) -> list[Move]:
    """The moves to try besides the default one: the prior's best slots, or random ones."""
    encoding = encode(state, instance.scale_bytes, guide)
    default = default_move(state, guide)
    slots = [
        slot
        for slot, move in enumerate(encoding.moves)
        if move is not None and encoding.mask[slot] and move != default
    ]
    if not slots:
        return []
    if network is None:
        picked = rng.permutation(len(slots))[:alternatives]
        return [encoding.moves[slots[int(i)]] for i in picked]
    logits, _ = network(encoding)
    slots.sort(key=lambda slot: -float(logits[slot]))  # stable: ties keep slot order
    return [encoding.moves[slot] for slot in slots[:alternatives]]


def rollout_pass(
    instance: Instance,
    start_plan: Plan,
    start_bytes: int,
    *,
    alternatives: int,
    network: Network | None,
    rng: np.random.Generator,
    should_stop: Callable[[], bool],
) -> PassResult:
    """One fortified pass over ``instance`` from the game ``start_plan`` (see the module).

    Args:
        instance: the game (problem and fixed order).
        start_plan: a complete game of the instance (its plan): the first best game.
        start_bytes: its non-compulsory bytes.
        alternatives: moves tried per game move besides the default one (>= 1).
        network: ranks the alternatives by its prior; None draws them at random.
        rng: the random draws (network-free only).
        should_stop: True when time is up (checked before every rollout).
    """
    assert alternatives >= 1
    best_bytes, best_plan = start_bytes, start_plan
    guide = Reference(best_plan, lazy=True)
    state = instance.new_state()
    rollouts = improvements = 0
    if should_stop():
        return PassResult(best_bytes, best_plan, rollouts, improvements, False)
    # The default game itself first: with the start's evictions deferred it can end
    # below the start (greedy's needless evictions).
    found = _play_out(state, guide, None, best_bytes)
    rollouts += 1
    if found is not None:
        (best_bytes, best_plan), improvements = found, improvements + 1
        guide = Reference(best_plan, lazy=True)
    while not state.done:
        for move in _children(state, instance, guide, alternatives, network, rng):
            if should_stop():
                return PassResult(best_bytes, best_plan, rollouts, improvements, False)
            found = _play_out(state, guide, move, best_bytes)
            rollouts += 1
            if found is not None:
                (best_bytes, best_plan), improvements = found, improvements + 1
                guide = Reference(best_plan, lazy=True)  # follow the better game from here on
        state.apply(default_move(state, guide))
    return PassResult(best_bytes, best_plan, rollouts, improvements, True)


__all__ = ["PassResult", "rollout_pass"]
