import numpy as np
import pytest

from worldmodels.config import EnvConfig
from worldmodels.data import Replay
from worldmodels.envs import EnvPool
from worldmodels.errors import CheckpointError, ConfigError


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


@pytest.mark.parametrize("capacity, saves", [(100, [300]), (5000, [700, 2100, 2600])])
def test_fifo_eviction_and_exact_chunked_save_load(tmp_path, capacity, saves):
    pool = EnvPool(EnvConfig(id="CartPole-v1", num_envs=2), seed=1)
    replay = Replay(capacity=capacity, num_streams=2, seed=5)
    rng = np.random.default_rng(1)
    first = pool.first_records()
    replay.add(first.records, first.streams)
    done = 0
    for until in saves:  # saving repeatedly writes only the new chunks
        for _ in range(until - done):
            out = pool.step(pool.act_spec.random(2, rng))
            replay.add(out.records, out.streams)
        done = until
        tail, meta = replay.save(tmp_path)
    assert len(replay) == min(capacity, replay.added)
    copy = Replay(capacity=capacity, num_streams=2, seed=99)
    copy.load(tmp_path, tail, meta)
    for key in replay.data:
        np.testing.assert_array_equal(copy.data[key], replay.data[key])
    a, b = replay.sample(8, 10), copy.sample(8, 10)  # same rows and the same sampler state
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    if meta["chunks"][0]:
        chunk = tmp_path / meta["chunks"][0][0]["name"]
        chunk.write_bytes(chunk.read_bytes()[:-10])
        with pytest.raises(CheckpointError, match=f"replay chunk '{chunk}' is corrupt"):
            Replay(capacity=capacity, num_streams=2, seed=0).load(tmp_path, tail, meta)


def test_frames_are_stored_as_uint8_and_dicts_flattened():
    pool = EnvPool(EnvConfig(id="wm/Dummy-v0", obs="both"), seed=0)
    replay = Replay(capacity=500, num_streams=1, seed=0)
    _fill(replay, pool, 100, np.random.default_rng(0))
    assert replay.data["obs/image"].dtype == np.uint8 and replay.data["obs/state"].dtype == np.float32
    batch = replay.sample(4, 6)
    assert batch["obs"]["image"].shape == (4, 6, 64, 64, 3) and batch["obs"]["state"].shape == (4, 6, 2)


def test_prioritised_sampling_follows_priorities_and_saves(tmp_path):
    pool = EnvPool(EnvConfig(id="CartPole-v1"), seed=0)
    replay = Replay(capacity=1000, num_streams=1, seed=0, priority=(1.0, 1.0))
    _fill(replay, pool, 50, np.random.default_rng(0))
    batch = replay.sample(16, 5)
    assert batch["index"].shape == (16,) and np.allclose(batch["weight"], 1.0)  # all new rows share max priority
    # one start row gets 100 times the priority of each of the others: it is sampled far more often,
    # and its importance weight is the smallest
    favourite = batch["index"][0]
    replay.priorities[:] = 0.1
    replay.update_priorities(np.array([favourite]), np.array([10.0]))
    again = replay.sample(400, 5)
    hits = again["index"] == favourite
    assert 0.5 < hits.mean() < 0.9
    assert again["weight"][hits].max() < again["weight"][~hits].min()
    tail, meta = replay.save(tmp_path)
    copy = Replay(capacity=1000, num_streams=1, seed=1, priority=(1.0, 1.0))
    copy.load(tmp_path, tail, meta)
    np.testing.assert_array_equal(copy.sample(8, 5)["index"], replay.sample(8, 5)["index"])


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
