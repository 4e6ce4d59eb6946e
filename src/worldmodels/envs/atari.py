"""Atari (ALE) with the standard preprocessing of the Dreamer and MuZero papers: `atari:GAME`.

Frame skip = `env.action_repeat` (4 by convention) with a max over the last two frames, resize to
`env.size`, grayscale or RGB, sticky actions, up to `noop_max` no-op starts, the episode ends on game
over (not on a lost life), and at most 108k frames per episode (a truncation).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from worldmodels.envs.wrappers import image_space, resize
from worldmodels.errors import ConfigError, closest

MAX_FRAMES = 108_000
STICKY = 0.25
"""Probability of repeating the previous action (Machado et al. 2018), unless `env.sticky_actions` says otherwise."""


def _ale_id(game: str) -> str:
    try:
        import ale_py
    except ImportError as err:
        raise ConfigError(f"ale-py is not installed ({err}); install it with: pip install -e '.[atari]'") from None
    gym.register_envs(ale_py)
    games = {k[4:-3].lower(): k for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5")}
    key = game.replace("_", "").replace("-", "").lower()
    if key not in games:
        names = sorted(k[4:-3] for k in games.values())
        raise ConfigError(f"unknown Atari game 'atari:{game}'{closest(game, names)}; e.g. atari:Pong, atari:Breakout")
    return games[key]


class AtariEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        game: str,
        size: tuple[int, int] = (64, 64),
        grayscale: bool = False,
        repeat: int = 4,
        sticky: float | None = None,
        noop_max: int = 30,
    ):
        self._env = gym.make(
            _ale_id(game),
            frameskip=1,
            repeat_action_probability=STICKY if sticky is None else sticky,
            full_action_space=False,
            max_num_frames_per_episode=MAX_FRAMES,
        )
        self.size, self.grayscale, self.repeat, self.noop_max = size, grayscale, repeat, noop_max
        self.action_space = self._env.action_space
        self.observation_space = image_space(size, grayscale)
        self.render_mode = "rgb_array"
        self._frames = [np.zeros(self._env.observation_space.shape, np.uint8)] * 2

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        frame, _ = self._env.reset(seed=seed)
        for _ in range(int(self.np_random.integers(0, self.noop_max + 1))):
            frame, _, terminated, truncated, _ = self._env.step(0)
            if terminated or truncated:
                frame, _ = self._env.reset()
        self._frames = [frame, frame]
        return self._observe(), {}

    def step(self, action):
        total, terminated, truncated = 0.0, False, False
        for k in range(self.repeat):
            frame, reward, terminated, truncated, _ = self._env.step(int(action))
            total += float(reward)
            if k >= self.repeat - 2:
                self._frames[k - self.repeat + 2] = frame
            if terminated or truncated:
                self._frames = [frame, frame]
                break
        return self._observe(), total, terminated, truncated, {}

    def _observe(self) -> np.ndarray:
        # the max over two frames removes the flicker of sprites drawn every other frame
        return resize(np.maximum(self._frames[0], self._frames[1]), self.size, self.grayscale)

    def render(self) -> np.ndarray:
        return np.maximum(self._frames[0], self._frames[1])

    def close(self):
        self._env.close()
