"""dm_control tasks as gymnasium envs: `dmc:DOMAIN-TASK`, states or rendered frames.

dm_control ends every episode by its time limit with discount 1 (a truncation); a discount of 0
marks a true terminal state.
"""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np

from worldmodels.envs.wrappers import image_space, observation_space
from worldmodels.errors import ConfigError, closest

# Cameras that show the agent well, as in the Dreamer papers; others use camera 0.
CAMERAS = {"quadruped": 2}


def _not_settotalmass(record: logging.LogRecord) -> bool:
    """dm_control's own cheetah model uses MuJoCo's deprecated `settotalmass`, which MuJoCo warns of (through
    absl) at every load: in every evaluation, nothing a user can change."""
    return "settotalmass" not in record.getMessage()


def _suite():
    try:
        from dm_control import suite
    except ImportError as err:
        raise ConfigError(f"dm_control is not installed ({err}); install it with: pip install -e '.[dmc]'") from None
    absl = logging.getLogger("absl")
    if _not_settotalmass not in absl.filters:
        absl.addFilter(_not_settotalmass)
    return suite


class DMCEnv(gym.Env):
    """One dm_control task; `obs` is `state` (all observations flattened), `pixels` or `both`."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        name: str,
        obs: str = "state",
        size: tuple[int, int] = (64, 64),
        camera: int | None = None,
        render_effects: bool = False,
    ):
        suite = _suite()
        domain, sep, task = name.partition("-")
        tasks = [f"{d}-{t}" for d, t in suite.ALL_TASKS]
        if not sep or (domain, task.replace("-", "_")) not in suite.ALL_TASKS:
            raise ConfigError(f"unknown dm_control task 'dmc:{name}'{closest(name, tasks)}; e.g. dmc:cartpole-swingup")
        self._env = suite.load(domain, task.replace("-", "_"), task_kwargs={"random": 0})
        # Shadows (a 2048² shadow map) and reflections dominate software rendering: without them this CPU
        # renders 64×64 frames ~3.5× faster (56 → 195 frames/s), with the same bodies in the same places.
        self._flags = {} if render_effects else {"shadow": False, "reflection": False}
        self.obs_mode, self.size = obs, size
        self.camera = CAMERAS.get(domain, 0) if camera is None else camera
        self.render_mode = "rgb_array"
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32), spec.maximum.astype(np.float32))
        dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        state = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.observation_space = observation_space(obs, image_space(size, False), state)

    def _observe(self, time_step) -> np.ndarray | dict[str, np.ndarray]:
        if self.obs_mode == "pixels":
            return self.render()
        state = np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in time_step.observation.values()])
        return state if self.obs_mode == "state" else {"image": self.render(), "state": state}

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        return self._observe(self._env.reset()), {}

    def step(self, action):
        time_step = self._env.step(np.asarray(action, np.float64))
        terminated = time_step.last() and time_step.discount == 0
        truncated = time_step.last() and not terminated
        return self._observe(time_step), float(time_step.reward or 0.0), bool(terminated), bool(truncated), {}

    def render(self) -> np.ndarray:
        return self._env.physics.render(*self.size, camera_id=self.camera, render_flag_overrides=self._flags)
