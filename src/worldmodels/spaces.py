"""What models see of an environment: observation and action specs, and observation batches.

Models always see one-hot vectors for discrete actions and [-1, 1]^A for continuous ones. This module
imports no environment package (components import it); `envs/spaces.py` reads specs off gymnasium spaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ObsSpec:
    """One observation array (`shape`, `dtype`), or a dict of them in `parts` (for `env.obs=both`).

    Frames are uint8 `[H, W, C]`; vectors float32 `[D]`.
    """

    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    parts: tuple[tuple[str, ObsSpec], ...] = ()

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
