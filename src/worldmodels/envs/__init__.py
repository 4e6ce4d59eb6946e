"""Environments: `make_env(cfg)` for one, `EnvPool` for several stepped together with seeded episodes."""

import os

# MuJoCo (dm_control, PointMaze) renders without a display through EGL unless told otherwise. It reads this
# once, when `mujoco` is first imported by anyone, so it is set here, before any suite is.
os.environ.setdefault("MUJOCO_GL", "egl")

import worldmodels.envs.continuous_cartpole  # noqa: F401  (registers wm/CartPoleContinuous-v0)
import worldmodels.envs.two_room  # noqa: F401  (registers wm/TwoRoom-v0)
from worldmodels.envs import dummy
from worldmodels.envs.make import make_env
from worldmodels.envs.pool import EnvPool, Step

dummy.register()

__all__ = ["EnvPool", "Step", "make_env"]
