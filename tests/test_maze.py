"""maze:PointMaze_UMaze-v3: the suite's physics exactly, frames from above that put the point where it is,
starts where told, walls that stop it, and goal_success run on it end to end."""

import json
import os

import gymnasium as gym
import numpy as np
import pytest

from worldmodels.cli import main
from worldmodels.config import EnvConfig
from worldmodels.envs import make_env  # first: it picks MuJoCo's headless renderer before mujoco is imported
from worldmodels.envs.maze import FRAME_SKIP
from worldmodels.errors import ConfigError

pytest.importorskip("gymnasium_robotics", reason="gymnasium-robotics not installed (pip install -e '.[maze]')")

UMAZE = "maze:PointMaze_UMaze-v3"


def walk(env, start, action, steps):
    env.reset(options={"position": start})
    for _ in range(steps):
        _, _, _, _, info = env.step(np.asarray(action, np.float32))
    return info["position"]


def green(frame: np.ndarray) -> np.ndarray:
    """The (row, column) centre of the point's green disc in a frame."""
    r, g, b = (frame[..., c].astype(int) for c in range(3))
    return np.argwhere((g > r + 40) & (g > b + 40)).mean(0)


def test_frames_are_64x64_from_above_with_the_point_where_it_is():
    env = make_env(EnvConfig(id=UMAZE, obs="pixels"))
    assert env.observation_space.shape == (64, 64, 3)
    for x, y in [(-1.0, 1.0), (1.0, -1.0), (0.9, 0.1)]:
        frame, info = env.reset(options={"position": (x, y)})
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert np.allclose(info["position"], (x, y))
        # orthographic, the 5 m maze across 64 pixels, x to the right and y up
        assert np.allclose(green(frame), (31.5 - y * 64 / 5, 31.5 + x * 64 / 5), atol=0.5)
    state, info = make_env(EnvConfig(id=UMAZE)).reset(seed=3)
    assert state.shape == (4,) and np.allclose(state[:2], info["position"]) and not state[2:].any()


def test_steps_are_the_suite_s_physics_and_walls_stop_the_point():
    suite = gym.make("PointMaze_UMaze-v3", disable_env_checker=True).unwrapped
    os.remove(suite.tmp_xml_file_path)  # compiled; the suite would leave it in the temporary folder
    suite.reset(seed=0)
    suite.point_env.set_state(np.array([-1.0, 1.0]), np.zeros(2))
    env = make_env(EnvConfig(id=UMAZE))
    env.reset(options={"position": (-1.0, 1.0)})
    rng = np.random.default_rng(0)
    for _ in range(60):  # long enough to hit walls
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        for _ in range(FRAME_SKIP):
            theirs = suite.step(action)[0]["observation"]
        ours = env.step(action)[0]
    assert np.allclose(ours, theirs, atol=1e-5)
    right = walk(env, (-1.0, 1.0), (1.0, 0.0), 4)  # from rest: x grows, y stays
    assert 0.3 < right[0] + 1.0 < 0.6 and right[1] == pytest.approx(1.0, abs=1e-4)
    assert walk(env, (-1.0, 1.0), (1.0, 0.0), 30)[0] == pytest.approx(1.4, abs=0.02)  # the outer wall at x = 1.5
    assert walk(env, (-1.0, 1.0), (0.0, -1.0), 30)[1] == pytest.approx(0.6, abs=0.02)  # the inner wall at y = 0.5


def test_seeded_starts_are_free_and_bad_ids_and_starts_are_refused():
    env = make_env(EnvConfig(id=UMAZE))
    starts = [env.reset(seed=s)[1]["position"] for s in range(30)]
    assert all(env.unwrapped.free(p) for p in starts) and len({tuple(p) for p in starts}) == 30
    assert np.array_equal(env.reset(seed=7)[1]["position"], starts[7])
    with pytest.raises(ValueError, match="not a free"):
        env.reset(options={"position": (0.0, 0.0)})  # the U's inner wall
    with pytest.raises(ConfigError, match="PointMaze_UMaze-v3"):
        make_env(EnvConfig(id="maze:PointMaze_Umaze-v3"))


def test_goal_success_runs_on_the_maze_from_pixels(tmp_path, capsys):
    args = ["train", "jepa_wm_tiny", f"env.id={UMAZE}", "env.obs=pixels", "agent.representation.encoder.image.depth=4"]
    assert main([*args, "train.steps=24", "train.prefill=16", "train.eval_episodes=3", "--run-dir", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    found = next(r for r in reversed(rows) if "eval/goal_success_k4" in r)
    assert {f"eval/{m}_k{k}" for m in ("goal_success", "random_success", "goal_distance") for k in (4, 8)} <= set(found)
    assert "within 0.25 after k steps: 2 and 1 steps of 0.25" in capsys.readouterr().out
