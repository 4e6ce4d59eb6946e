import numpy as np
import pytest

from worldmodels.config import EnvConfig
from worldmodels.data import Replay
from worldmodels.envs import EnvPool
from worldmodels.errors import ConfigError


def _fill(replay: Replay, pool: EnvPool, steps: int, rng: np.random.Generator) -> None:
    first = pool.first_records()
    replay.add(first.records, first.streams)
    for _ in range(steps):
        out = pool.step(pool.act_spec.random(pool.num_envs, rng))
        replay.add(out.records, out.streams)


def test_sequences_never_mix_episodes_without_is_first():
    pool = EnvPool(EnvConfig(id="CartPole-v1", num_envs=3), seed=0)
    replay = Replay(capacity=3000, num_streams=3, seed=0)
    # tag every observation with its env and episode so the test can read where each row came from
    _fill(replay, pool, 400, np.random.default_rng(0))
    batch = replay.sample(64, 20)
    assert batch["obs"].shape == (64, 20, 4) and batch["action"].shape == (64, 20, 2)
    # within a window, a new episode starts only where is_first is set: after a terminal row,
    # the next row must be marked first, and a first row carries a zero action and reward
    term, first = batch["is_terminal"], batch["is_first"]
    assert (first[:, 1:][term[:, :-1]]).all()
    assert (batch["action"][first] == 0).all() and (batch["reward"][first] == 0).all()


def test_fifo_eviction_and_exact_save_load():
    pool = EnvPool(EnvConfig(id="CartPole-v1", num_envs=2), seed=1)
    replay = Replay(capacity=100, num_streams=2, seed=5)
    _fill(replay, pool, 300, np.random.default_rng(1))
    assert len(replay) == 100 and replay.added > 300
    arrays, meta = replay.state_dict()
    copy = Replay(capacity=100, num_streams=2, seed=99)
    copy.load_state_dict(arrays, meta)
    a, b = replay.sample(8, 10), copy.sample(8, 10)  # same rows and the same sampler state
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_truncation_is_not_termination():
    pool = EnvPool(EnvConfig(id="Pendulum-v1", max_episode_steps=5), seed=0)
    rng = np.random.default_rng(0)
    outs = [pool.step(pool.act_spec.random(1, rng)) for _ in range(5)]
    last = outs[-1]
    assert last.finished and last.finished[0][2] == 5
    assert not last.records["is_terminal"].any()  # a time limit ends the episode but is no terminal state
    assert last.records["is_first"].tolist() == [False, True]


def test_pool_restores_the_running_episode_exactly():
    cfg = EnvConfig(id="CartPole-v1", num_envs=2)
    a = EnvPool(cfg, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(30):
        a.step(a.act_spec.random(2, rng))
    b = EnvPool(cfg, seed=3)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.obs, b.obs)
    actions = a.act_spec.random(2, rng)
    np.testing.assert_array_equal(a.step(actions).obs, b.step(actions).obs)


def test_unknown_env_and_suites_fail_clearly():
    with pytest.raises(ConfigError, match="unknown environment id 'CartPole-v0x'"):
        EnvPool(EnvConfig(id="CartPole-v0x"), seed=0)
