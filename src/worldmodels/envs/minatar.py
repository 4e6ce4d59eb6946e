"""MinAtar (Young & Tian 2019): `minatar:GAME`, five Atari games on a 10×10 grid of binary channels.

Small pixel-like tasks that transformer and diffusion world models can learn on a CPU. An observation is the
game's channels as uint8 frames `[10, 10, C]` (0 or 255, so image encoders read them like any frame), or
with `env.obs=state` the same channels flattened to float32 `[100·C]`. Actions are the game's minimal set;
sticky actions with MinAtar's own probability (0.1; `env.sticky_actions` sets another); difficulty ramping
on, as in the paper. A game ends by itself (termination); `MAX_STEPS` agent steps cut an episode that goes
on (truncation).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from worldmodels.errors import ConfigError, closest

GAMES = {"asterix": "asterix", "breakout": "breakout", "freeway": "freeway", "seaquest": "seaquest",
         "spaceinvaders": "space_invaders"}  # fmt: skip
STICKY = 0.1
MAX_STEPS = 10_000
SCALE = 16
"""`render()` draws each cell as SCALE × SCALE pixels."""


def _game(name: str, sticky: float):
    key = name.replace("_", "").replace("-", "").lower()
    if key not in GAMES:
        names = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]
        raise ConfigError(f"unknown MinAtar game 'minatar:{name}'{closest(name, names)}; valid: {', '.join(names)}")
    try:
        from minatar import Environment
    except ImportError as err:
        raise ConfigError(f"minatar is not installed ({err}); install it with: pip install -e '.[minatar]'") from None
    return Environment(GAMES[key], sticky_action_prob=sticky)


class MinAtarEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, game: str, obs: str = "pixels", sticky: float | None = None):
        if obs not in ("pixels", "state"):
            raise ConfigError(f"env 'minatar:{game}': observations are its channels; use env.obs=pixels or state")
        self._game = _game(game, STICKY if sticky is None else sticky)
        self._actions = self._game.minimal_action_set()
        self.obs = obs
        shape = tuple(self._game.state_shape())  # (10, 10, C)
        self.action_space = gym.spaces.Discrete(len(self._actions))
        if obs == "pixels":
            self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        else:
            self.observation_space = gym.spaces.Box(0.0, 1.0, (int(np.prod(shape)),), np.float32)
        self.render_mode = "rgb_array"
        rng = np.random.default_rng(0)  # a fixed colour per channel, for videos
        self._palette = rng.integers(64, 256, (shape[2], 3)).astype(np.uint8)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self._game.seed(int(self.np_random.integers(2**31)))
        self._game.reset()
        self._steps = 0
        return self._observe(), {}

    def step(self, action):
        reward, terminated = self._game.act(self._actions[int(action)])
        self._steps += 1
        return self._observe(), float(reward), bool(terminated), self._steps >= MAX_STEPS, {}

    def _observe(self) -> np.ndarray:
        channels = self._game.state()  # bool [10, 10, C]
        if self.obs == "pixels":
            return channels.astype(np.uint8) * 255
        return channels.reshape(-1).astype(np.float32)

    def render(self) -> np.ndarray:
        """RGB `[10·SCALE, 10·SCALE, 3]`: each occupied cell in its channel's colour (the last channel on top)."""
        channels = self._game.state()
        frame = np.zeros((*channels.shape[:2], 3), np.uint8)
        for c in range(channels.shape[2]):
            frame[channels[..., c]] = self._palette[c]
        return frame.repeat(SCALE, 0).repeat(SCALE, 1)
