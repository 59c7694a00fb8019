"""The mallocGame as a Gymnasium environment: ``memplan/MallocGame-v0``.

One episode is one game on one :class:`~memplan.solvers.rl.instances.Instance` (a
problem and a fixed order). Actions are the :data:`~memplan.solvers.rl.features.NUM_ACTIONS`
slots of :mod:`memplan.solvers.rl.features` (placements at canonical offsets,
evictions, compact); ``observation["action_mask"]`` (also ``info["action_mask"]``)
says which are legal. An illegal action changes nothing and costs nothing (masked
moves are never penalised), with ``info["illegal"] = True``.

The features mark the move that replays the greedy stack's plan where it applies
(:mod:`~memplan.solvers.rl.reference`). Reward: each move pays the non-compulsory DRAM
traffic it causes, divided by the instance's scale; the last move also gets the greedy
stack's score on the same instance, so an episode's return is
``(greedy bytes - game bytes) / scale``: above 0
beats greedy. The finished plan (validated) is in ``info["plan"]`` at the end.

Instances come from ``options={"instance": ...}`` at reset, from a fixed list given to
the constructor, or from a seeded :class:`~memplan.solvers.rl.instances.InstanceSampler`
(random DAGs by default; catalog families on request)::

    import gymnasium as gym
    import memplan.rl.env  # registers the id
    env = gym.make("memplan/MallocGame-v0", families=())
    obs, info = env.reset(seed=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from memplan.placement import PlacementState
from memplan.rl.sampler import InstanceSampler
from memplan.solvers.rl.features import (
    ACTION_FEATURES,
    FEATURE_MAX,
    GLOBAL_FEATURES,
    NUM_ACTIONS,
    Encoding,
    encode,
)
from memplan.solvers.rl.instances import Instance
from memplan.solvers.rl.render import render_rgb, render_text
from memplan.validate import check_plan

#: The registered id.
ENV_ID = "memplan/MallocGame-v0"


class MallocGameEnv(gym.Env[dict[str, np.ndarray], int]):
    """Replacement and allocation for a fixed order, one move at a time.

    Args:
        instances: play these, in turn (``reset`` cycles through them).
        families: without ``instances``, catalog families the sampler may draw
            (empty: random DAGs only).
        render_mode: ``ansi`` (text memory map) or ``rgb_array`` (a picture).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        instances: Sequence[Instance] | None = None,
        families: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        assert render_mode is None or render_mode in self.metadata["render_modes"]
        self.render_mode = render_mode
        self._instances = list(instances or [])
        self._families = tuple(families)
        self._sampler: InstanceSampler | None = None
        self._next_index = 0
        self.action_space = spaces.Discrete(NUM_ACTIONS)  # type: ignore[assignment]
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "actions": spaces.Box(
                    0.0, FEATURE_MAX, (NUM_ACTIONS, ACTION_FEATURES), dtype=np.float32
                ),
                "globals": spaces.Box(0.0, FEATURE_MAX, (GLOBAL_FEATURES,), dtype=np.float32),
                "action_mask": spaces.MultiBinary(NUM_ACTIONS),
            }
        )
        self.instance: Instance | None = None
        self.state: PlacementState | None = None
        self._encoding: Encoding | None = None

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a game on the next instance (``options["instance"]`` to choose one)."""
        super().reset(seed=seed)
        if options and options.get("instance") is not None:
            self.instance = options["instance"]
        elif self._instances:
            if seed is not None:
                self._next_index = seed % len(self._instances)
            self.instance = self._instances[self._next_index % len(self._instances)]
            self._next_index += 1
        else:
            if self._sampler is None or seed is not None:
                start = seed if seed is not None else int(self.np_random.integers(1 << 30))
                self._sampler = InstanceSampler(start, self._families, baseline=True)
            self.instance = self._sampler.sample()
        assert self.instance is not None
        self.state = self.instance.new_state(undo=False)
        self._encoding = encode(self.state, self.instance.scale_bytes, self.instance.guide)
        return self._observation(), self._info(illegal=False)

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Play the move of slot ``action``; an illegal slot changes nothing."""
        assert self.state is not None and self._encoding is not None and self.instance is not None
        move = self._encoding.moves[int(action)] if 0 <= int(action) < NUM_ACTIONS else None
        if move is None:
            return self._observation(), 0.0, False, False, self._info(illegal=True)
        before = self.state.non_compulsory_bytes
        self.state.apply(move)
        scale = self.instance.scale_bytes
        reward = -(self.state.non_compulsory_bytes - before) / scale
        terminated = self.state.done
        info_extra: dict[str, Any] = {}
        if terminated:
            plan = self.state.plan()
            check_plan(self.instance.problem, plan, what="mallocGame plan")
            if self.instance.baseline_bytes is not None:
                reward += self.instance.baseline_bytes / scale
            info_extra = {
                "plan": plan,
                "non_compulsory_bytes": self.state.non_compulsory_bytes,
                "baseline_bytes": self.instance.baseline_bytes,
            }
        else:
            self._encoding = encode(self.state, scale, self.instance.guide)
        info = self._info(illegal=False)
        info.update(info_extra)
        return self._observation(), float(reward), terminated, False, info

    def render(self) -> str | np.ndarray | None:
        """The memory map so far: text (``ansi``) or an RGB picture (``rgb_array``)."""
        if self.state is None or self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return render_text(self.state)
        return render_rgb(self.state)

    # --------------------------------------------------------------- internals
    def _observation(self) -> dict[str, np.ndarray]:
        if self.state is not None and self.state.done:
            return {
                "actions": np.zeros((NUM_ACTIONS, ACTION_FEATURES), dtype=np.float32),
                "globals": np.zeros(GLOBAL_FEATURES, dtype=np.float32),
                "action_mask": np.zeros(NUM_ACTIONS, dtype=np.int8),
            }
        assert self._encoding is not None
        return {
            "actions": self._encoding.actions.copy(),
            "globals": self._encoding.globals.copy(),
            "action_mask": self._encoding.mask.astype(np.int8),
        }

    def _info(self, illegal: bool) -> dict[str, Any]:
        assert self.state is not None and self.instance is not None
        mask = (
            np.zeros(NUM_ACTIONS, dtype=np.int8)
            if self.state.done
            else self._encoding.mask.astype(np.int8)  # type: ignore[union-attr]
        )
        return {
            "action_mask": mask,
            "illegal": illegal,
            "step": self.state.step,
            "instance": self.instance.name,
        }


def register() -> None:
    """Register :data:`ENV_ID` with Gymnasium (done on import of this module)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:MallocGameEnv")


register()
