"""What models see of an environment's spaces, and the conversion of model actions to env actions.

Models always see one-hot vectors for discrete actions and [-1, 1]^A for continuous ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from worldmodels.errors import ConfigError


@dataclass(frozen=True)
class ObsSpec:
    """One observation array (`shape`, `dtype`), or a dict of them in `parts` (for `env.obs=both`).

    Frames are uint8 `[H, W, C]`; vectors float32 `[D]`.
    """

    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    parts: tuple[tuple[str, ObsSpec], ...] = ()

    @classmethod
    def of(cls, space: gym.Space, env_id: str) -> ObsSpec:
        if isinstance(space, gym.spaces.Dict):
            return cls(parts=tuple((k, cls.of(v, env_id)) for k, v in space.spaces.items()))
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"env '{env_id}': observation space {space} is not supported; expected a Box or Dict")
        return cls(tuple(space.shape), str(space.dtype))

    @property
    def is_image(self) -> bool:
        return self.dtype == "uint8" and len(self.shape) == 3

    def items(self) -> list[tuple[str, ObsSpec]]:
        """(key, spec) of every array: `[("", self)]` for a single array."""
        return list(self.parts) if self.parts else [("", self)]


Obs = np.ndarray | dict
"""A batch of observations: an array `[N, ...]` or a dict of them."""


def obs_map(fn: Callable, *obs: Obs) -> Obs:
    """Apply `fn` to each array of one or more observation batches of the same structure."""
    if isinstance(obs[0], dict):
        return {k: fn(*(o[k] for o in obs)) for k in obs[0]}
    return fn(*obs)


@dataclass(frozen=True)
class ActSpec:
    discrete: bool
    dim: int
    """Number of actions (discrete) or action dimensions (continuous)."""

    @classmethod
    def of(cls, space: gym.Space, env_id: str) -> ActSpec:
        if isinstance(space, gym.spaces.Discrete):
            return cls(True, int(space.n))
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            return cls(False, int(space.shape[0]))
        raise ConfigError(f"env '{env_id}': action space {space} is not supported; expected Discrete or a 1-D Box")

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Model actions `[N, dim]` → env actions: indices `[N]` or values `[N, dim]` in [-1, 1]."""
        if self.discrete:
            return action.argmax(-1)
        return np.clip(action, -1.0, 1.0)

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniformly random model actions `[n, dim]`."""
        if self.discrete:
            return np.eye(self.dim, dtype=np.float32)[rng.integers(self.dim, size=n)]
        return rng.uniform(-1.0, 1.0, size=(n, self.dim)).astype(np.float32)


def obs_set(batch: Obs, index: Any, rows: Obs) -> None:
    """`batch[index] = rows` for each array, in place."""
    if isinstance(batch, dict):
        for key in batch:
            batch[key][index] = rows[key]
    else:
        batch[index] = rows
