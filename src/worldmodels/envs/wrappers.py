"""Wrappers that give every suite the same face: action repeat, float32 vectors, rendered frames."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from PIL import Image

from worldmodels.errors import ConfigError


def resize(frame: np.ndarray, size: tuple[int, int], grayscale: bool = False) -> np.ndarray:
    """An RGB frame `[H, W, 3]` → uint8 `[h, w, C]` (C = 1 in grayscale), area-averaged."""
    image = Image.fromarray(np.asarray(frame, np.uint8))
    if grayscale:
        image = image.convert("L")
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BOX)
    out = np.asarray(image, np.uint8)
    return out[..., None] if out.ndim == 2 else out


def image_space(size: tuple[int, int], grayscale: bool) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, (*size, 1 if grayscale else 3), np.uint8)


def observation_space(mode: str, image: gym.spaces.Box, state: gym.Space) -> gym.Space:
    """The space of `env.obs=mode`: `state`, `pixels` (the image) or `both` (a dict `{image, state}`)."""
    if mode == "state":
        return state
    return image if mode == "pixels" else gym.spaces.Dict({"image": image, "state": state})


class ActionRepeat(gym.Wrapper):
    """Repeat each action `repeat` times, summing rewards, stopping early when the episode ends."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


VECTOR_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
    gym.spaces.Tuple,
)
"""Observation spaces that `FloatObs` turns into float32 vectors."""


class FloatObs(gym.ObservationWrapper):
    """Vector observations as float32. A Box keeps its shape; a Discrete becomes a one-hot vector, and a
    MultiDiscrete, MultiBinary or Tuple the concatenation of its parts' (gymnasium's `flatten`), so that
    FrozenLake's cell, Taxi's state or Blackjack's tuple reach a model as vectors."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.source = env.observation_space
        flat = self.source if isinstance(self.source, gym.spaces.Box) else gym.spaces.flatten_space(self.source)
        low, high = (np.asarray(b, dtype=np.float32) for b in (flat.low, flat.high))  # MuJoCo's are float64
        self.observation_space = gym.spaces.Box(low, high, flat.shape, np.float32)

    def observation(self, obs):
        if not isinstance(self.source, gym.spaces.Box):
            obs = gym.spaces.flatten(self.source, obs)
        return np.asarray(obs, dtype=np.float32)


class RenderedObs(gym.ObservationWrapper):
    """Frames as observations, resized: `pixels` gives the frame, `both` a dict `{"image": frame,
    "state": vector}`. Frames come from `env.render()` (make the env with `render_mode="rgb_array"`),
    or, with `from_obs`, from the env's own image observation (CarRacing)."""

    def __init__(self, env: gym.Env, mode: str, size: tuple[int, int], grayscale: bool, from_obs: bool = False):
        super().__init__(env)
        self.mode, self.size, self.grayscale, self.from_obs = mode, size, grayscale, from_obs
        if from_obs and mode == "both":
            raise ConfigError("env.obs=both needs a vector state, but this environment observes only images")
        self.observation_space = observation_space(mode, image_space(size, grayscale), env.observation_space)

    def observation(self, obs):
        frame = resize(obs if self.from_obs else self.env.render(), self.size, self.grayscale)
        return frame if self.mode == "pixels" else {"image": frame, "state": obs}
