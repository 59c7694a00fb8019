"""Tree search on the mallocGame with the game's own simulator as the model.

Why Gumbel search (Danihelka et al., "Policy improvement by planning with Gumbel",
ICLR 2022) and not PUCT (AlphaZero): a game here is long (one move per tensor arrival,
hundreds to thousands per episode) and a CPU affords only a handful of simulations
per move (8 to 32). PUCT needs many visits per move before its visit counts mean
anything, and with few simulations it may never try the move the prior ranks second.
Gumbel search samples ``m`` distinct moves without replacement (Gumbel-top-k on the
prior's logits), splits the simulations among them by *sequential halving*, and picks
the survivor with the best ``gumbel + logit + sigma(Q)``: it is guaranteed to improve
on the prior in expectation even with 2 simulations, and its training target (the
softmax of ``logits + sigma(completed Q)``) is defined for every move, visited or not.
The model is exact: the simulator (:class:`memplan.placement.PlacementState`) plays and
undoes moves, so nothing is learned about the dynamics (as in AlphaZero; MuZero's
learned model is unnecessary when the rules are known and cheap).

Values are in units of the instance's scale: a move's reward is minus the
non-compulsory bytes it causes, a state's value is minus the traffic still to come.
A leaf is valued by an :class:`Evaluator`: the network (:class:`NetworkEvaluator`), or
without one, a uniform prior and a random rollout to the end of the game
(:class:`RolloutEvaluator`), the network-free baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from memplan.placement import PlacementState
from memplan.solvers.rl.features import NUM_ACTIONS, Encoding, encode
from memplan.solvers.rl.instances import Instance
from memplan.solvers.rl.network import Network
from memplan.solvers.rl.reference import Reference, default_move

#: Most simulations per move a game is searched with: a game has hundreds of moves, so
#: more would run for hours (``rl train`` and ``rl evaluate`` refuse more).
MAX_SIMULATIONS = 4096
#: sigma(q) = (C_VISIT + max visits) * C_SCALE * q, as in the Gumbel MuZero paper.
C_VISIT, C_SCALE = 50.0, 0.1


class Evaluator(Protocol):
    """Prior logits and a value for a state (values: minus the future traffic / scale)."""

    def __call__(self, state: PlacementState, encoding: Encoding) -> tuple[np.ndarray, float]:
        """Logits per slot (-inf where masked) and the state's value."""
        ...


@dataclass
class NetworkEvaluator:
    """The network's prior; its value after a short rollout of the default policy.

    The leaf's value is the exact traffic of ``rollout_steps`` game steps played by
    :func:`~memplan.solvers.rl.reference.default_move` (replay the reference plan where
    it applies, else the online Belady pass), plus the network's value of the state
    reached (0 at the end of the game): an n-step return, as MuZero's targets use. With
    ``rollout_steps=0`` the value is the network's alone.
    """

    network: Network  # the weights
    scale_bytes: float  # the instance's scale
    reference: Reference | None = None  # the plan the default policy replays
    rollout_steps: int = 0  # game steps of default play before the network's value

    def __call__(self, state: PlacementState, encoding: Encoding) -> tuple[np.ndarray, float]:
        logits, value = self.network(encoding)
        if self.rollout_steps <= 0:
            return logits, value
        before, played, horizon = state.non_compulsory_bytes, 0, state.step + self.rollout_steps
        while not state.done and state.step < horizon:
            state.apply(default_move(state, self.reference))
            played += 1
        tail = 0.0
        if not state.done:
            tail = self.network(encode(state, self.scale_bytes, self.reference))[1]
        cost = state.non_compulsory_bytes - before
        for _ in range(played):
            state.undo()
        return logits, -cost / self.scale_bytes + tail


@dataclass
class RolloutEvaluator:
    """No network: a uniform prior, and the value of one random game to the end.

    The rollout places the next tensor at a random candidate offset when one exists,
    else evicts a random candidate (compacts when none is left); then every rollout
    move is undone.
    """

    scale_bytes: float  # the instance's scale
    rng: np.random.Generator  # the rollout's randomness

    def __call__(self, state: PlacementState, encoding: Encoding) -> tuple[np.ndarray, float]:
        logits = np.where(encoding.mask, 0.0, -np.inf)
        before, played = state.non_compulsory_bytes, 0
        while not state.done:
            offsets = state.offset_candidates()
            if offsets:
                state.place(offsets[int(self.rng.integers(len(offsets)))])
            else:
                victims = state.eviction_candidates()
                if victims:
                    state.evict(victims[int(self.rng.integers(len(victims)))])
                else:
                    state.compact()
            played += 1
        cost = state.non_compulsory_bytes - before
        for _ in range(played):
            state.undo()
        return logits, -cost / self.scale_bytes


@dataclass
class Node:
    """A searched state: its encoding, prior, value, and statistics per slot."""

    encoding: Encoding | None  # None at a finished game
    logits: np.ndarray  # prior logits per slot (-inf where masked)
    value: float  # the evaluator's value of this state
    visits: np.ndarray = field(default_factory=lambda: np.zeros(NUM_ACTIONS))  # per slot
    q_sum: np.ndarray = field(default_factory=lambda: np.zeros(NUM_ACTIONS))  # sums of Q
    rewards: np.ndarray = field(default_factory=lambda: np.zeros(NUM_ACTIONS))  # per slot
    children: dict[int, Node] = field(default_factory=dict)  # slot -> next state

    def q(self) -> np.ndarray:
        """Mean Q per slot (0 where not visited)."""
        return np.divide(self.q_sum, np.maximum(self.visits, 1.0))

    def completed_q(self) -> np.ndarray:
        """Q of visited slots; the node's value for the others (Gumbel MuZero's completion)."""
        return np.where(self.visits > 0, self.q(), self.value)

    def sigma(self) -> np.ndarray:
        """sigma(completed Q) with Q in units of the instance's scale, not min-max normalised.

        Rewards are already divided by the instance's scale, so Q differences keep
        their meaning: min-max normalisation per node would blow a difference of a few
        bytes (noise of a rollout) up to the full range and overrule a confident prior.
        """
        completed = self.completed_q()
        completed = completed - completed[np.isfinite(self.logits)].max()
        return (C_VISIT + self.visits.max()) * C_SCALE * completed

    def improved_policy(self) -> np.ndarray:
        """softmax(logits + sigma(completed Q)) over the legal slots."""
        scores = self.logits + self.sigma()
        scores = scores - scores[np.isfinite(scores)].max()
        weights = np.where(np.isfinite(scores), np.exp(scores), 0.0)
        return weights / weights.sum()


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What one search decided."""

    slot: int  # the slot to play
    policy: np.ndarray  # the improved policy at the root (a training target)
    root_value: float  # the evaluator's value of the root
    encoding: Encoding  # the root's encoding (the network's input)


class GumbelSearch:
    """Gumbel search with sequential halving at the root.

    Args:
        evaluator: the prior and value of a state.
        scale_bytes: the instance's scale (rewards are bytes / scale).
        simulations: simulations per move (>= 1).
        considered: how many moves the root samples (Gumbel-top-k).
        rng: the Gumbel noise and rollouts' randomness.
        noise: sample Gumbel noise (diversity across episodes); off: pick by the prior.
        reference: a plan whose suggested moves the features mark.
        should_stop: True when time is up: checked before every simulation, so a search
            with many simulations per move still honours the time limit (the move is then
            chosen from the simulations run so far).
    """

    def __init__(
        self,
        evaluator: Evaluator,
        scale_bytes: float,
        *,
        simulations: int = 16,
        considered: int = 8,
        rng: np.random.Generator | None = None,
        noise: bool = True,
        reference: Reference | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        assert simulations >= 1 and considered >= 1
        self.reference = reference
        self.should_stop = should_stop
        self.evaluator = evaluator
        self.scale_bytes = float(scale_bytes)
        self.simulations = simulations
        self.considered = considered
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.noise = noise
        self.evaluations = 0  # leaf evaluations so far (a budget counter)

    def _expand(self, state: PlacementState) -> Node:
        if state.done:
            return Node(None, np.full(NUM_ACTIONS, -np.inf), 0.0)
        encoding = encode(state, self.scale_bytes, self.reference)
        logits, value = self.evaluator(state, encoding)
        self.evaluations += 1
        return Node(encoding, logits, value)

    def _play(self, state: PlacementState, node: Node, slot: int) -> None:
        assert node.encoding is not None
        move = node.encoding.moves[slot]
        assert move is not None
        before = state.non_compulsory_bytes
        state.apply(move)
        node.rewards[slot] = -(state.non_compulsory_bytes - before) / self.scale_bytes

    def _simulate(self, state: PlacementState, root: Node, slot: int) -> None:
        """One simulation that starts with ``slot`` at the root; the state is restored."""
        path: list[tuple[Node, int]] = []
        node, action = root, slot
        while True:
            self._play(state, node, action)
            path.append((node, action))
            child = node.children.get(action)
            if child is None:
                child = self._expand(state)
                node.children[action] = child
                value = child.value
                break
            if child.encoding is None:  # finished game
                value = 0.0
                break
            node, action = child, self._interior_choice(child)
        for parent, taken in reversed(path):
            value = parent.rewards[taken] + value
            parent.q_sum[taken] += value
            parent.visits[taken] += 1
        for _ in path:
            state.undo()

    @staticmethod
    def _interior_choice(node: Node) -> int:
        """Gumbel MuZero's deterministic rule: the slot the visits lag most behind pi'."""
        policy = node.improved_policy()
        gap = policy - node.visits / (1.0 + node.visits.sum())
        gap[policy <= 0] = -np.inf
        return int(np.argmax(gap))

    def run(self, state: PlacementState) -> SearchResult:
        """Search from ``state`` (a game under way) and return the move to play."""
        root = self._expand(state)
        assert root.encoding is not None, "the game is over"
        legal = np.flatnonzero(root.encoding.mask)
        if legal.size == 1:
            slot = int(legal[0])
            return SearchResult(slot, root.encoding.mask.astype(float), root.value, root.encoding)
        gumbel = self.rng.gumbel(size=NUM_ACTIONS) if self.noise else np.zeros(NUM_ACTIONS)
        base = gumbel + root.logits
        m = min(self.considered, legal.size, self.simulations) if self.simulations > 1 else 1
        remaining = list(legal[np.argsort(-base[legal], kind="stable")[:m]])
        budget = self.simulations
        phases = max(1, math.ceil(math.log2(len(remaining)))) if len(remaining) > 1 else 1
        stop = self.should_stop
        while budget > 0:
            per_action = max(1, budget // (phases * len(remaining)))
            for slot in remaining:
                for _ in range(per_action):
                    if budget <= 0:
                        break
                    if stop is not None and stop():
                        budget = 0  # time is up: choose among the moves as they stand
                        break
                    self._simulate(state, root, int(slot))
                    budget -= 1
            if len(remaining) == 1:
                break
            score = base + root.sigma()
            remaining.sort(key=lambda s: -score[s])
            remaining = remaining[: max(1, len(remaining) // 2)]
            phases = max(1, phases - 1)
        score = base + root.sigma()
        slot = int(max(remaining, key=lambda s: score[s]))
        return SearchResult(slot, root.improved_policy(), root.value, root.encoding)


def search_for(
    instance: Instance,
    network: Network | None,
    *,
    simulations: int,
    considered: int,
    rollout_steps: int,
    rng: np.random.Generator,
    noise: bool,
    should_stop: Callable[[], bool] | None = None,
) -> GumbelSearch:
    """The search of one game on ``instance``: network-guided, or network-free (None);
    ``should_stop`` is checked before every simulation."""
    evaluator: Evaluator
    if network is None:
        evaluator = RolloutEvaluator(instance.scale_bytes, rng)
    else:
        evaluator = NetworkEvaluator(
            network, instance.scale_bytes, instance.guide, rollout_steps=rollout_steps
        )
    return GumbelSearch(
        evaluator,
        instance.scale_bytes,
        simulations=simulations,
        considered=considered,
        rng=rng,
        noise=noise,
        reference=instance.guide,
        should_stop=should_stop,
    )


def play_episode(
    state: PlacementState,
    search: GumbelSearch,
    *,
    should_stop: object = None,
    on_move: object = None,
) -> bool:
    """Play ``state`` to its end with ``search``; returns False when stopped early.

    Args:
        state: a game (played in place).
        search: the searcher.
        should_stop: a callable returning True when time is up (checked every move).
        on_move: a callable ``(SearchResult, non_compulsory_bytes_before)`` per move.
    """
    while not state.done:
        if callable(should_stop) and should_stop():
            return False
        before = state.non_compulsory_bytes
        if not _forced(state):
            result = search.run(state)
            move = result.encoding.moves[result.slot]
            assert move is not None
            state.apply(move)
            if callable(on_move):
                on_move(result, before)
        else:
            state.compact()
    return True


def _forced(state: PlacementState) -> bool:
    """True when compact is the only legal move (no offset fits, nothing to evict)."""
    return not state.offset_candidates() and not state.eviction_candidates()


__all__ = [
    "Evaluator",
    "GumbelSearch",
    "NetworkEvaluator",
    "RolloutEvaluator",
    "SearchResult",
    "play_episode",
    "search_for",
]
