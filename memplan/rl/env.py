"""The mallocGame as a Gymnasium environment: ``memplan/MallocGame-v0``.

One episode is one game on one :class:`~memplan.solvers.rl.instances.Instance` (a
problem and a fixed order). Actions are the :data:`~memplan.solvers.rl.features.NUM_ACTIONS`
slots of :mod:`memplan.solvers.rl.features` (placements at canonical offsets,
evictions, compact); ``observation["action_mask"]`` (also ``info["action_mask"]``)
says which are legal. An illegal action (a masked slot) changes nothing and costs
nothing (masked moves are never penalised), with ``info["illegal"] = True``. Once an
episode has ended (``terminated``), every ``step`` raises
:class:`gymnasium.error.ResetNeeded` until ``reset()``.

The mask is never all zero: the compact slot is set in every observation, the
terminal one included (its features are all zero). No move is played after the end,
but Gymnasium's vector envs (default ``NEXT_STEP`` autoreset) hand the terminal
observation to the policy and ignore the action it picks (they reset instead), so a
masked-categorical policy must stay defined there: with an all-zero mask its softmax
was NaN.

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

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from memplan.errors import ConfigError
from memplan.placement import PlacementState
from memplan.rl.sampler import MAX_TRAIN_OPS, InstanceSampler, catalog_workloads
from memplan.solvers.rl.features import (
    ACTION_FEATURES,
    COMPACT_SLOT,
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
#: The keys ``reset(options=...)`` understands.
RESET_OPTIONS = ("instance",)


class MallocGameEnv(gym.Env[dict[str, np.ndarray], int]):
    """Replacement and allocation for a fixed order, one move at a time.

    Episodes and actions:

    - ``reset(seed=..., options=...)`` starts a game; the only option is ``instance``
      (an :class:`~memplan.solvers.rl.instances.Instance` to play, or ``None`` for the
      next one). Bad options are refused before anything changes.
    - ``step(action)`` takes a slot: a Python ``int`` or a numpy integer (scalar or
      0-d array) in ``[0, NUM_ACTIONS)``. A masked (illegal) slot changes nothing,
      costs nothing and returns ``info["illegal"] = True``.
    - After the last move (``terminated``) the episode is over: any further ``step``,
      legal-looking or not, raises :class:`gymnasium.error.ResetNeeded` (as
      Gymnasium's order enforcing does before the first ``reset``); call ``reset()``.
    - The terminal observation's ``action_mask`` has the compact slot alone (never all
      zero, so a masked policy is defined on it; the action it picks is never played:
      vector envs reset instead, see the module docstring).

    Errors: bad constructor arguments and reset options raise
    :class:`~memplan.errors.ConfigError` naming the argument and what is allowed; an
    action of the wrong type raises :class:`TypeError`, one outside the action space
    :class:`ValueError`; ``step`` before ``reset`` or after the end raises
    :class:`gymnasium.error.ResetNeeded`.

    Args:
        instances: play these, in turn (``reset`` cycles through them); None (the
            default) samples them (an empty sequence is refused).
        families: without ``instances``, catalog families the sampler may draw
            (empty: random DAGs only); each must have a catalog workload of at most
            :data:`~memplan.rl.sampler.MAX_TRAIN_OPS` ops.
        render_mode: ``ansi`` (text memory map) or ``rgb_array`` (a picture).

    Raises:
        ConfigError: ``instances`` is empty or holds something other than instances, ``families``
            is a plain string or names an unknown (or too large) family, or
            ``render_mode`` is unknown.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        instances: Sequence[Instance] | None = None,
        families: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        modes = self.metadata["render_modes"]
        if render_mode is not None and render_mode not in modes:
            raise ConfigError(
                f"render_mode {render_mode!r} is unknown; use one of {', '.join(modes)} or None"
            )
        self.render_mode = render_mode
        self._instances = _check_instances(instances)
        self._families = _check_families(families)
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
        """Start a game on the next instance (``options["instance"]`` to choose one).

        Raises:
            ConfigError: ``options`` is not a mapping, has a key other than
                :data:`RESET_OPTIONS`, or its ``instance`` is not an ``Instance``
                (checked before any state changes).
        """
        chosen = _check_reset_options(options)
        super().reset(seed=seed)
        if chosen is not None:
            self.instance = chosen
        elif self._instances is not None:
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

    def step(
        self, action: int | np.integer[Any] | np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Play the move of slot ``action``; an illegal (masked) slot changes nothing.

        Raises:
            ResetNeeded: no game is running (before the first ``reset``, or after the
                episode ended): call ``reset()``.
            TypeError: ``action`` is not an integer (a float, string, bool, array...).
            ValueError: ``action`` is outside ``[0, NUM_ACTIONS)``.
        """
        if self.state is None or self.instance is None or self._encoding is None:
            raise ResetNeeded("no episode is running; call reset() before step()")
        if self.state.done:
            raise ResetNeeded("the episode is over; call reset() before step()")
        move = self._encoding.moves[_check_action(action)]
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
                "action_mask": _terminal_mask(),
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
            _terminal_mask() if self.state.done else self._encoding.mask.astype(np.int8)  # type: ignore[union-attr]
        )
        return {
            "action_mask": mask,
            "illegal": illegal,
            "step": self.state.step,
            "instance": self.instance.name,
        }


def _terminal_mask() -> np.ndarray:
    """The mask after the end: the compact slot alone, so that a masked policy stays
    defined on the terminal observation (the action it picks is never played)."""
    mask = np.zeros(NUM_ACTIONS, dtype=np.int8)
    mask[COMPACT_SLOT] = 1
    return mask


def _check_action(action: object) -> int:
    """The slot of ``action``: a Python int or numpy integer (0-d array too), in range."""
    value = action[()] if isinstance(action, np.ndarray) and action.ndim == 0 else action
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"action must be an integer slot in [0, {NUM_ACTIONS}) (int or numpy integer), "
            f"not {type(action).__name__} {action!r}"
        )
    slot = int(value)
    if not 0 <= slot < NUM_ACTIONS:
        raise ValueError(
            f"action {slot} is outside the action space: use a slot in [0, {NUM_ACTIONS})"
        )
    return slot


def _check_instances(instances: object) -> list[Instance] | None:
    """``instances`` as a non-empty list, each checked to be an :class:`Instance` (None:
    sample them)."""
    if instances is None:
        return None
    if isinstance(instances, Instance | str | bytes) or not isinstance(instances, Iterable):
        raise ConfigError(
            f"instances must be a sequence of Instance objects, not {type(instances).__name__}"
        )
    result = list(instances)
    for i, item in enumerate(result):
        if not isinstance(item, Instance):
            raise ConfigError(
                f"instances[{i}] must be a memplan.solvers.rl.instances.Instance, "
                f"not {type(item).__name__}"
            )
    if not result:
        raise ConfigError(
            "instances is empty: give at least one Instance to play, or None (the default) "
            "to sample random instances"
        )
    return result


def _check_families(families: object) -> tuple[str, ...]:
    """``families`` as a tuple, each a catalog family with a workload small enough to train on.

    The same test as the sampler's (:func:`~memplan.rl.sampler.catalog_workloads`), one
    family at a time, so no name is silently dropped.
    """
    if isinstance(families, str | bytes) or not isinstance(families, Iterable):
        raise ConfigError(
            f"families must be a sequence of family names such as ('resnet',), "
            f"not {type(families).__name__} {families!r}"
        )
    names = tuple(families)
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"families: {name!r} is not a family name (a str)")
    bad = [name for name in names if not catalog_workloads((name,))]
    if bad:
        from memplan.graphs.catalog import list_workloads

        allowed = sorted({w.family for w in list_workloads() if w.ops <= MAX_TRAIN_OPS})
        close = difflib.get_close_matches(bad[0], allowed, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise ConfigError(
            f"families: {bad[0]!r} has no catalog workload of at most {MAX_TRAIN_OPS} ops"
            f"{hint}; allowed families: {', '.join(allowed)}"
        )
    return names


def _check_reset_options(options: object) -> Instance | None:
    """The instance ``options`` chooses (None: the next one); refuses unknown keys."""
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise ConfigError(
            f"reset(options=...) must be a dict (keys: {', '.join(RESET_OPTIONS)}), "
            f"not {type(options).__name__}"
        )
    unknown = [key for key in options if key not in RESET_OPTIONS]
    if unknown:
        raise ConfigError(
            f"reset(options=...): unknown key {', '.join(repr(k) for k in unknown)}; "
            f"known keys: {', '.join(RESET_OPTIONS)}"
        )
    instance = options.get("instance")
    if instance is not None and not isinstance(instance, Instance):
        raise ConfigError(
            'reset(options={"instance": ...}) must be a memplan.solvers.rl.instances.Instance '
            f"or None, not {type(instance).__name__}"
        )
    return instance


def register() -> None:
    """Register :data:`ENV_ID` with Gymnasium (done on import of this module)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:MallocGameEnv")


register()
