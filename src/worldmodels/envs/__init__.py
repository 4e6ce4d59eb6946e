"""Environments: `make_env(cfg)` for one, `EnvPool` for several stepped together with seeded episodes."""

from worldmodels.envs.make import make_env
from worldmodels.envs.pool import EnvPool, Step
from worldmodels.envs.spaces import ActSpec, ObsSpec

__all__ = ["ActSpec", "EnvPool", "ObsSpec", "Step", "make_env"]
