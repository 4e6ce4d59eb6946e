"""What models see of an environment's spaces, and the conversion of model actions to env actions.

Models always see one-hot vectors for discrete actions and [-1, 1]^A for continuous ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from worldmodels.errors import ConfigError


@dataclass(frozen=True)
class ObsSpec:
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def of(cls, space: gym.Space, env_id: str) -> ObsSpec:
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"env '{env_id}': observation space {space} is not supported; expected a Box")
        return cls(tuple(space.shape), str(space.dtype))


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
