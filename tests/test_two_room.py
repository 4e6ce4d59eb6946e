"""wm/TwoRoom-v0: the wall blocks, the door lets through, seeding is deterministic, both observation modes."""

import numpy as np
import pytest

from worldmodels.config import EnvConfig
from worldmodels.envs import make_env
from worldmodels.envs.two_room import DOOR_HIGH, DOOR_LOW, WALL_LEFT, WALL_RIGHT, in_wall, move


def walk(env, start, action, steps):
    env.reset(options={"position": start})
    for _ in range(steps):
        _, _, _, _, info = env.step(np.asarray(action, np.float32))
    return info["position"]


def test_the_wall_blocks_and_the_door_lets_through():
    env = make_env(EnvConfig(id="wm/TwoRoom-v0"))
    below_door = walk(env, (0.2, 0.2), (1.0, 0.0), 20)  # straight right, below the door
    assert below_door[0] == pytest.approx(WALL_LEFT) and below_door[1] == pytest.approx(0.2)
    through = walk(env, (0.2, 0.5), (1.0, 0.0), 20)  # straight right, through the door
    assert through[0] > WALL_RIGHT and through[1] == pytest.approx(0.5)
    from_right = walk(env, (0.9, 0.8), (-1.0, 0.0), 20)
    assert from_right[0] == pytest.approx(WALL_RIGHT)
    # inside the doorway, walking up stops at the door's edge; then it can still leave sideways
    assert move(np.array([0.5, 0.55]), np.array([0.0, 0.1]))[1] == pytest.approx(DOOR_HIGH)
    assert move(np.array([0.5, DOOR_HIGH]), np.array([0.05, 0.0]))[0] == pytest.approx(0.55)
    # a diagonal that would clip the wall's corner stops on the face, not inside
    hit = move(np.array([0.45, 0.35]), np.array([0.05, -0.02]))
    assert hit[0] == WALL_LEFT and not in_wall(hit)


def test_random_walks_never_enter_the_wall_and_cross_it_only_through_the_door():
    env = make_env(EnvConfig(id="wm/TwoRoom-v0"))
    rng = np.random.default_rng(0)
    crossings = 0
    for episode in range(20):  # starting beside the wall, at any height
        _, info = env.reset(seed=episode, options={"position": (0.46 + 0.08 * (episode % 2), rng.uniform(0.2, 0.8))})
        before = info["position"]
        for _ in range(100):
            _, _, _, truncated, info = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
            after = info["position"]
            assert not in_wall(after) and np.all((after >= 0) & (after <= 1))
            if (before[0] < 0.5) != (after[0] < 0.5):  # crossed the wall's middle: where it did is in the door
                y = np.interp(0.5, *zip(*sorted([(before[0], before[1]), (after[0], after[1])])))
                assert DOOR_LOW <= y <= DOOR_HIGH
                crossings += 1
            before = after
        assert truncated  # 100 steps truncate
    assert crossings > 0


def test_seeding_is_deterministic_and_pixels_show_the_agent():
    def rollout(seed):
        env = make_env(EnvConfig(id="wm/TwoRoom-v0", obs="pixels"))
        frame, info = env.reset(seed=seed)
        frames, positions = [frame], [info["position"]]
        env.action_space.seed(seed)
        for _ in range(10):
            frame, _, _, _, info = env.step(env.action_space.sample())
            frames.append(frame)
            positions.append(info["position"])
        return np.stack(frames), np.stack(positions)

    frames, positions = rollout(3)
    again, positions_again = rollout(3)
    assert frames.shape == (11, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, again)
    np.testing.assert_array_equal(positions, positions_again)
    assert not np.array_equal(positions, rollout(4)[1])
    # the red disc's centre of mass is at the agent's position (row 0 is the top, y = 1)
    red = (frames[0, ..., 0] == 255).nonzero()
    centre = np.array([red[1].mean() + 0.5, 64 - (red[0].mean() + 0.5)]) / 64
    np.testing.assert_allclose(centre, positions[0], atol=1 / 64)
    state = make_env(EnvConfig(id="wm/TwoRoom-v0", obs="state"))
    obs, info = state.reset(seed=3)
    np.testing.assert_array_equal(obs, positions[0])
    assert obs.dtype == np.float32
