"""Every suite creates, resets and steps in state and pixel mode; optional suites skip with a reason."""

import importlib.util
import logging
import warnings

import gymnasium as gym
import numpy as np
import pytest

from worldmodels.config import EnvConfig, load_config
from worldmodels.envs import EnvPool, make_env
from worldmodels.envs.wrappers import FloatObs
from worldmodels.errors import ConfigError

HAS = {m: importlib.util.find_spec(m) is not None for m in ("dm_control", "ale_py", "Box2D", "minatar")}
needs = {
    "dmc": pytest.mark.skipif(not HAS["dm_control"], reason="dm_control not installed (pip install -e '.[dmc]')"),
    "atari": pytest.mark.skipif(not HAS["ale_py"], reason="ale-py not installed (pip install -e '.[atari]')"),
    "box2d": pytest.mark.skipif(not HAS["Box2D"], reason="box2d not installed (pip install -e '.[box2d]')"),
    "minatar": pytest.mark.skipif(not HAS["minatar"], reason="minatar not installed (pip install -e '.[minatar]')"),
}

CASES = [
    pytest.param("wm/Dummy-v0", "state", (2,), id="dummy-state"),
    pytest.param("wm/DummyContinuous-v0", "pixels", (64, 64, 3), id="dummy-pixels"),
    pytest.param("CartPole-v1", "pixels", (64, 64, 3), id="gym-pixels"),
    pytest.param("dmc:cartpole-swingup", "state", (5,), id="dmc-state", marks=needs["dmc"]),
    pytest.param("dmc:cartpole-swingup", "pixels", (64, 64, 3), id="dmc-pixels", marks=needs["dmc"]),
    pytest.param("atari:Pong", "pixels", (64, 64, 3), id="atari-pixels", marks=needs["atari"]),
    pytest.param("CarRacing-v3", "pixels", (64, 64, 3), id="carracing-pixels", marks=needs["box2d"]),
    pytest.param("minatar:Breakout", "pixels", (10, 10, 4), id="minatar-pixels", marks=needs["minatar"]),
    pytest.param("minatar:SpaceInvaders", "state", (600,), id="minatar-state", marks=needs["minatar"]),
    pytest.param("FrozenLake-v1", "state", (16,), id="gym-discrete-state"),
]


@pytest.mark.parametrize("env_id, obs, shape", CASES)
def test_suite_creates_resets_and_steps(env_id, obs, shape):
    repeat = 4 if env_id.startswith("atari:") else 2
    pool = EnvPool(EnvConfig(id=env_id, obs=obs, action_repeat=repeat), seed=0, num_envs=1)
    try:
        assert pool.obs_spec.shape == shape
        assert pool.obs.shape == (1, *shape)
        assert pool.obs.dtype == (np.uint8 if obs == "pixels" else np.float32)
        rng = np.random.default_rng(0)
        for _ in range(3):
            out = pool.step(pool.act_spec.random(1, rng))
        assert out.obs.shape == (1, *shape) and np.isfinite(out.records["reward"]).all()
        if obs == "pixels":
            assert out.obs.std() > 0  # a real rendered frame, not a blank
    finally:
        pool.close()


def test_discrete_and_tuple_observations_become_one_hot_vectors():
    """FrozenLake's cell index is a one-hot vector of its 16 cells; Blackjack's (sum, card, ace) tuple the
    concatenation of three one-hots (32 + 11 + 2)."""
    lake = make_env(EnvConfig(id="FrozenLake-v1"))
    obs, _ = lake.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (16,) and obs[0] == 1 and obs.sum() == 1  # the start cell
    obs, *_ = lake.step(2)  # right, or a slip to another cell
    assert obs.sum() == 1 and lake.observation_space.contains(obs)
    blackjack = make_env(EnvConfig(id="Blackjack-v1"))
    obs, _ = blackjack.reset(seed=0)
    assert obs.shape == (45,) and obs.sum() == 3 and blackjack.observation_space.contains(obs)


def test_float64_box_bounds_become_float32_without_a_warning():
    """MuJoCo's tasks give float64 bounds; gymnasium warns when a float32 Box is built from them."""

    class Float64Env(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
        action_space = gym.spaces.Discrete(2)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        space = FloatObs(Float64Env()).observation_space
    assert space.dtype == np.float32 and space.low.dtype == np.float32 and np.isneginf(space.low).all()


@needs["dmc"]
def test_dmc_both_gives_a_dict_and_actions_are_normalised():
    env = make_env(EnvConfig(id="dmc:walker-walk", obs="both", size=(32, 32)))
    obs, _ = env.reset(seed=1)
    assert obs["image"].shape == (32, 32, 3) and obs["state"].shape == (24,)
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    with pytest.raises(ConfigError, match="unknown dm_control task 'dmc:cartpole-swingx'.*cartpole-swingup"):
        make_env(EnvConfig(id="dmc:cartpole-swingx"))


@needs["dmc"]
def test_dmc_cheetah_loads_without_mujoco_s_settotalmass_warning(caplog):
    with caplog.at_level(logging.WARNING):
        make_env(EnvConfig(id="dmc:cheetah-run")).close()
    assert not [r for r in caplog.records if "settotalmass" in r.getMessage()]


@needs["atari"]
def test_atari_options_and_errors():
    env = make_env(EnvConfig(id="atari:pong", obs="pixels", grayscale=True, action_repeat=4))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 1) and obs.dtype == np.uint8
    with pytest.raises(ConfigError, match="unknown Atari game 'atari:Pongg'.*did you mean 'Pong'"):
        make_env(EnvConfig(id="atari:Pongg", obs="pixels"))
    with pytest.raises(ConfigError, match="use env.obs=pixels"):
        make_env(EnvConfig(id="atari:Pong"))


def test_dict_observations_flow_through_the_pool():
    pool = EnvPool(EnvConfig(id="wm/Dummy-v0", obs="both", num_envs=2), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):  # past the 50-step limit: resets happen
        out = pool.step(pool.act_spec.random(2, rng))
    assert set(pool.obs) == {"image", "state"} and pool.obs["image"].shape == (2, 64, 64, 3)
    assert [key for key, _ in pool.obs_spec.items()] == ["image", "state"]
    rows = len(out.streams)
    assert out.records["obs"]["image"].shape[0] == rows and out.records["obs"]["state"].shape == (rows, 2)
    pool.close()


def test_async_pool_matches_sync_pool():
    """Worker processes give the same episodes as in-process envs, finished episodes tracked per env."""
    cfgs = [EnvConfig(id="wm/Dummy-v0", num_envs=3, vectorization=v) for v in ("sync", "async")]
    pools = [EnvPool(cfg, seed=7) for cfg in cfgs]
    rng = np.random.default_rng(0)
    finished = [[], []]
    try:
        for _ in range(120):
            action = pools[0].act_spec.random(3, rng)
            outs = [pool.step(action) for pool in pools]
            np.testing.assert_array_equal(outs[0].obs, outs[1].obs)
            for k, out in enumerate(outs):
                finished[k] += out.finished
        assert finished[0] == finished[1] and {i for i, _, _ in finished[0]} == {0, 1, 2}
        restored = EnvPool(cfgs[1], seed=7)
        restored.load_state_dict(pools[1].state_dict())
        np.testing.assert_array_equal(restored.obs, pools[1].obs)
        restored.close()
    finally:
        for pool in pools:
            pool.close()


def test_missing_optional_package_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dm_control(name, *args, **kwargs):
        if name.startswith("dm_control"):
            raise ImportError("No module named 'dm_control'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dm_control)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[dmc\]'"):
        make_env(EnvConfig(id="dmc:cartpole-swingup"))


@needs["minatar"]
def test_minatar_frames_actions_seeds_and_errors():
    env = make_env(EnvConfig(id="minatar:space_invaders", obs="pixels"))
    obs, _ = env.reset(seed=3)
    assert obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 255} and obs.any()
    assert env.action_space.n == 4  # its minimal action set: no-op, left, right, fire
    assert env.render().shape == (160, 160, 3)

    def episode(seed: int) -> list[float]:
        env.reset(seed=seed)
        rng = np.random.default_rng(0)
        rewards, done = [], False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(4)))
            rewards.append(reward)
            done = terminated or truncated
        return rewards

    assert episode(5) == episode(5)
    with pytest.raises(ConfigError, match="unknown MinAtar game 'minatar:Breakuot'.*Breakout"):
        make_env(EnvConfig(id="minatar:Breakuot"))
    with pytest.raises(ConfigError, match="use env.obs=pixels or state"):
        make_env(EnvConfig(id="minatar:Breakout", obs="both"))


@needs["minatar"]
def test_minatar_sticky_actions_follow_the_config():
    """Breakout's paddle (channel 0) under 5 presses of `right` (action 2) from a no-op start: it moves 5
    cells without sticky actions, never with sticky actions always on (the first action, no-op, repeats)."""

    def paddle_moves(sticky: float) -> int:
        env = make_env(EnvConfig(id="minatar:Breakout", obs="pixels", sticky_actions=sticky))
        obs, _ = env.reset(seed=0)
        start = np.argwhere(obs[..., 0])[0, 1]
        env.step(0)
        for _ in range(5):
            obs, *_ = env.step(2)
        return int(np.argwhere(obs[..., 0])[0, 1] - start)

    assert paddle_moves(0.0) == 5 and paddle_moves(1.0) == 0


def test_an_action_repeat_per_suite_is_resolved_by_the_env_id():
    """`env.action_repeat: {dmc: 8}` repeats 8 times on dm_control and once elsewhere: the resolved config
    holds the count (so results and probe keys see a number), and an unknown suite is a ConfigError."""
    assert EnvConfig(id="dmc:cartpole-swingup", action_repeat={"dmc": 8}).action_repeat == 8
    assert EnvConfig(id="CartPole-v1", action_repeat={"dmc": 8, "gym": 2}).action_repeat == 2
    assert EnvConfig(id="minatar:Breakout", action_repeat={"dmc": 8}).action_repeat == 1
    # Gymnasium's classic-control family has its own key, and falls back to Gymnasium's as a whole
    assert EnvConfig(id="Pendulum-v1", action_repeat={"classic_control": 4, "gym": 2}).action_repeat == 4
    assert EnvConfig(id="LunarLander-v3", action_repeat={"classic_control": 4, "gym": 2}).action_repeat == 2
    assert EnvConfig(id="LunarLander-v3", action_repeat={"classic_control": 4}).action_repeat == 1
    assert load_config("planet", ["env.id=CartPole-v1"]).env.action_repeat == 4
    assert load_config("planet", ["env.id=LunarLander-v3"]).env.action_repeat == 1  # Box2D: not classic control
    assert load_config("planet", []).env.action_repeat == 8  # its own dm_control task
    assert load_config("tdmpc2", ["env.id=Pendulum-v1", "env.action_repeat=3"]).env.action_repeat == 3
    with pytest.raises(ConfigError, match="mapping of suites"):
        load_config("planet", ["env.action_repeat={dcm: 8}"])
