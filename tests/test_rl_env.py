"""The mallocGame environment: Gymnasium's checker, legal random play, rewards, render."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from memplan.accelerator import Accelerator  # noqa: E402
from memplan.errors import ConfigError  # noqa: E402
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
    assert env.action_space == gym.spaces.Discrete(NUM_ACTIONS)


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


# ------------------------------------------------------------------ the episode's end


def _finish(env: MallocGameEnv) -> int:
    """Play the first legal slot until the game ends; the last slot played."""
    obs, _ = env.reset(seed=0)
    for _ in range(100_000):
        slot = int(np.flatnonzero(obs["action_mask"])[0])
        obs, _, terminated, _, _ = env.step(slot)
        if terminated:
            return slot
    raise AssertionError("the game did not end")


def test_any_step_after_the_end_raises_reset_needed_until_reset() -> None:
    env = MallocGameEnv(_instances(range(1), n_ops=12))
    last = _finish(env)
    assert env.state is not None
    before = env.state.signature()
    # The slot that was legal on the last move, an other one, and one out of range:
    # one error for all, naming the fix, and the finished game stays as it was.
    for slot in (last, (last + 1) % NUM_ACTIONS, COMPACT_SLOT, -1, 1.5):
        with pytest.raises(gym.error.ResetNeeded, match=r"episode is over; call reset\(\)"):
            env.step(slot)  # type: ignore[arg-type]
    assert env.state.signature() == before
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    assert not info["illegal"]


def test_step_before_reset_raises_reset_needed() -> None:
    with pytest.raises(gym.error.ResetNeeded, match=r"call reset\(\)"):
        MallocGameEnv(_instances(range(1), n_ops=12)).step(COMPACT_SLOT)


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    ("families", "match"),
    [
        (("bogus",), r"families: 'bogus'.*allowed families: .*resnet"),
        (("resnet", "bogus"), r"families: 'bogus'"),
        (("resnett",), r"did you mean 'resnet'"),
        (("densenet",), r"'densenet' has no catalog workload of at most \d+ ops"),
        ("resnet", r"families must be a sequence of family names.*not str 'resnet'"),
        ((3,), r"families: 3 is not a family name"),
    ],
)
def test_bad_families_are_refused(families: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        gym.make(ENV_ID, families=families)
    with pytest.raises(ConfigError, match=match):
        MallocGameEnv(families=families)  # type: ignore[arg-type]


def test_good_families_are_accepted() -> None:
    MallocGameEnv(families=("resnet", "vgg"))
    MallocGameEnv(families=["mobilenet"])
    MallocGameEnv(families=())


def test_bad_instances_and_render_mode_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"instances\[1\] must be a .*Instance, not str"):
        MallocGameEnv([*_instances(range(1), n_ops=12), "foo"])
    with pytest.raises(ConfigError, match=r"instances must be a sequence"):
        MallocGameEnv(_instances(range(1), n_ops=12)[0])
    with pytest.raises(ConfigError, match=r"render_mode 'human' is unknown; use one of ansi"):
        MallocGameEnv(render_mode="human")


@pytest.mark.parametrize("empty", [[], (), iter([])])
def test_an_empty_instances_list_is_refused_not_replaced_by_random_dags(empty: object) -> None:
    """``instances=[]`` was taken as "sample" and played random DAGs; None (the default)
    samples, an empty sequence is an error naming it."""
    with pytest.raises(ConfigError, match=r"instances is empty: give at least one Instance"):
        MallocGameEnv(empty)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"instances is empty"):
        gym.make(ENV_ID, instances=[])
    assert MallocGameEnv(None)._instances is None


def test_bad_reset_options_are_refused_before_anything_changes() -> None:
    instances = _instances(range(2), n_ops=12)
    env = MallocGameEnv(instances[:1])
    obs, _ = env.reset(seed=0)
    env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    instance, state = env.instance, env.state
    assert state is not None
    signature = state.signature()
    bad: list[tuple[Any, str]] = [
        ({"instance": "foo"}, r'options=\{"instance": \.\.\.\}\) must be a .*Instance.*not str'),
        ({"instanse": instances[1]}, r"unknown key 'instanse'; known keys: instance"),
        ({"instance": instances[1], "seed": 3}, r"unknown key 'seed'; known keys: instance"),
        (["instance"], r"options=\.\.\.\) must be a dict"),
    ]
    for options, match in bad:
        with pytest.raises(ConfigError, match=match):
            env.reset(options=options)
        assert env.instance is instance and env.state is state
        assert state.signature() == signature
    # Good options still work: a chosen instance, None (the next one), no keys.
    env.reset(options={"instance": instances[1]})
    assert env.instance is instances[1]
    env.reset(options={"instance": None})
    assert env.instance is instances[0]
    env.reset(options={})


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (1.5, TypeError),
        (1.0, TypeError),
        ("3", TypeError),
        (True, TypeError),
        (np.bool_(True), TypeError),
        (np.float64(2.0), TypeError),
        (np.array(2.0), TypeError),
        (np.array([2]), TypeError),
        (None, TypeError),
        (-1, ValueError),
        (NUM_ACTIONS, ValueError),
        (np.int64(NUM_ACTIONS + 5), ValueError),
    ],
)
def test_step_refuses_actions_that_are_not_slots(action: object, error: type) -> None:
    env = MallocGameEnv(_instances(range(1), n_ops=12))
    env.reset(seed=0)
    assert env.state is not None
    before = env.state.signature()
    with pytest.raises(error, match=r"action .*\[0, \d+\)"):
        env.step(action)  # type: ignore[arg-type]
    assert env.state.signature() == before


@pytest.mark.parametrize("kind", [int, np.int64, np.int32, np.uint8, np.array])
def test_step_accepts_python_and_numpy_integers(kind: Any) -> None:
    instances = _instances(range(1), n_ops=12)
    env, reference = MallocGameEnv(instances), MallocGameEnv(instances)
    obs, _ = env.reset(seed=0)
    reference.reset(seed=0)
    slot = int(np.flatnonzero(obs["action_mask"])[0])
    _, reward, _, _, info = env.step(kind(slot))
    _, expected, _, _, _ = reference.step(slot)
    assert not info["illegal"] and reward == expected
    assert env.state is not None and reference.state is not None
    assert env.state.signature() == reference.state.signature()


def test_the_terminal_mask_is_never_all_zero_so_vector_envs_give_no_nan() -> None:
    """Gymnasium's vector envs (NEXT_STEP autoreset) hand the terminal observation to the
    policy; its mask was all zero, so a masked softmax was NaN. It now has the compact
    slot alone (the action picked there is ignored: the vector env resets), in the
    observation and in ``info`` alike; a plain env still refuses a step after the end."""
    env = MallocGameEnv(_instances(range(1), n_ops=12))
    obs, _ = env.reset(seed=0)
    terminated, info = False, {}
    while not terminated:
        obs, _, terminated, _, info = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    assert np.flatnonzero(obs["action_mask"]).tolist() == [COMPACT_SLOT]
    assert np.array_equal(obs["action_mask"], info["action_mask"])
    assert env.observation_space.contains(obs)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(COMPACT_SLOT)

    vector = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", families=())
    obs, _ = vector.reset(seed=0)
    ends = 0
    for _ in range(2_000):
        masks = obs["action_mask"]
        logits = np.where(masks == 1, 0.0, -np.inf)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        assert not np.isnan(probs).any()  # every row has a legal slot
        obs, _, terminated, _, _ = vector.step(probs.argmax(axis=1))
        ends += int(terminated.sum())
        if ends >= 2:
            break
    vector.close()
    assert ends >= 2
