"""The mallocGame environment: Gymnasium's checker, legal random play, rewards, render."""

from __future__ import annotations

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from memplan.accelerator import Accelerator  # noqa: E402
from memplan.problem import Problem  # noqa: E402
from memplan.rl.env import ENV_ID, MallocGameEnv  # noqa: E402
from memplan.solvers.rl.features import COMPACT_SLOT, NUM_ACTIONS  # noqa: E402
from memplan.solvers.rl.instances import Instance, make_instance  # noqa: E402
from memplan.testing import random_dag  # noqa: E402
from memplan.validate import validate  # noqa: E402


def _instances(seeds: range, n_ops: int = 24) -> list[Instance]:
    """Tight instances (M_R + 5 %) of seeded random DAGs, with greedy baselines."""
    result = []
    for seed in seeds:
        problem = Problem(random_dag(seed, n_ops), Accelerator("t", 1, alignment_bytes=64))
        capacity = int(problem.min_resident_bytes * 1.05) // 64 * 64
        problem = problem.with_capacity(max(capacity, problem.min_resident_bytes))
        result.append(make_instance(problem, "model", alloc_time_limit_s=0.5))
    return result


def test_check_env_passes_on_sampled_and_given_instances() -> None:
    # Made through the registry, so check_env also tries the other render mode.
    for mode in ("ansi", "rgb_array"):
        check_env(gym.make(ENV_ID, render_mode=mode).unwrapped, skip_render_check=False)
    check_env(gym.make(ENV_ID, instances=_instances(range(2)), render_mode="rgb_array").unwrapped)


def _play_randomly(env: MallocGameEnv, seed: int) -> tuple[float, dict]:
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    total = 0.0
    for _ in range(100_000):
        legal = np.flatnonzero(obs["action_mask"])
        assert legal.size and obs["action_mask"][COMPACT_SLOT] == 1  # never stuck
        assert np.array_equal(obs["action_mask"], info["action_mask"])
        obs, reward, terminated, truncated, info = env.step(int(rng.choice(legal)))
        assert not truncated and not info["illegal"]
        total += reward
        if terminated:
            return total, info
    raise AssertionError("a random game did not end")


@pytest.mark.parametrize("seed", range(6))
def test_random_legal_player_finishes_with_a_valid_plan(seed: int) -> None:
    instances = _instances(range(seed, seed + 1), n_ops=12 + 5 * seed)
    env = MallocGameEnv(instances)
    total, info = _play_randomly(env, seed)
    instance = env.instance
    assert instance is not None and instance.baseline_bytes is not None
    plan = info["plan"]
    assert validate(instance.problem, plan) == []
    # The return is (greedy bytes - game bytes) / scale.
    expected = (instance.baseline_bytes - info["non_compulsory_bytes"]) / instance.scale_bytes
    assert total == pytest.approx(expected)


def test_sampled_games_from_the_registered_id_finish_valid() -> None:
    env = gym.make(ENV_ID)
    for seed in range(3):
        _, info = _play_randomly(env.unwrapped, seed)
        assert validate(env.unwrapped.instance.problem, info["plan"]) == []


def test_same_seed_same_instance_and_observation() -> None:
    first, second = MallocGameEnv(), MallocGameEnv()
    a, _ = first.reset(seed=5)
    b, _ = second.reset(seed=5)
    assert first.instance is not None and second.instance is not None
    assert first.instance.name == second.instance.name
    for key in a:
        assert np.array_equal(a[key], b[key])


def test_illegal_action_changes_nothing_and_costs_nothing() -> None:
    env = MallocGameEnv(_instances(range(1)))
    obs, _ = env.reset(seed=0)
    illegal = int(np.flatnonzero(obs["action_mask"] == 0)[0])
    assert env.state is not None
    before = env.state.signature()
    _, reward, terminated, _, info = env.step(illegal)
    assert info["illegal"] and reward == 0.0 and not terminated
    assert env.state.signature() == before
    assert env.action_space.n == NUM_ACTIONS


def test_render_draws_the_memory_map_so_far() -> None:
    env = MallocGameEnv(_instances(range(1)), render_mode="ansi")
    obs, _ = env.reset(seed=0)
    for _ in range(4):
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    text = env.render()
    assert isinstance(text, str) and "memory map" in text and "step" in text
    picture = MallocGameEnv(_instances(range(1)), render_mode="rgb_array")
    picture.reset(seed=0)
    image = picture.render()
    assert isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
    assert image.dtype == np.uint8 and len(np.unique(image.reshape(-1, 3), axis=0)) > 2
