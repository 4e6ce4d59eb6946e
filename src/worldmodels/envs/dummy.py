"""A tiny, fast environment for tests: a point on a line that should reach the origin.

`wm/Dummy-v0` has 3 discrete actions (left, stay, right); `wm/DummyContinuous-v0` one action in
[-1, 1]. Reward −|x| per step; leaving [-1, 1] terminates, 50 steps truncate. It renders a 64×64
frame (a bright square at x), so it serves pixel mode too.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class DummyEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, continuous: bool = False, render_mode: str | None = None):
        self.continuous = continuous
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(3)
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.x, self.v = 0.0, 0.0

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.x, self.v = float(self.np_random.uniform(-0.8, 0.8)), 0.0
        return self._obs(), {}

    def step(self, action):
        push = float(np.asarray(action).reshape(-1)[0]) if self.continuous else float(int(action) - 1)
        self.v = 0.5 * self.v + 0.1 * push
        self.x += self.v
        terminated = abs(self.x) > 1.0
        return self._obs(), -abs(self.x), terminated, False, {}

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.v], np.float32)

    def render(self) -> np.ndarray:
        frame = np.zeros((64, 64, 3), np.uint8)
        col = int(np.clip((self.x + 1) / 2 * 59, 0, 59))
        frame[28:36, col : col + 5] = (255, 200, 50)
        frame[:, 31:33, 2] = 120  # the goal line
        return frame


def register() -> None:
    for env_id, continuous in (("wm/Dummy-v0", False), ("wm/DummyContinuous-v0", True)):
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=DummyEnv, kwargs={"continuous": continuous}, max_episode_steps=50)
