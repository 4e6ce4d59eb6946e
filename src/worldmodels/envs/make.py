"""`make_env`: an environment id and options → one gymnasium env, with the package's standard wrappers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.errors import ConfigError, closest

SUITES = ("dmc", "atari")


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


class FloatObs(gym.ObservationWrapper):
    """Vector observations as float32."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low, space.high, space.shape, np.float32)

    def observation(self, obs):
        return np.asarray(obs, dtype=np.float32)


def make_env(cfg: EnvConfig, render: bool = False) -> gym.Env:
    """Build the environment named by `cfg.id` with action repeat and [-1, 1] continuous actions.

    `render=True` makes `env.render()` return RGB frames.
    """
    suite = cfg.id.split(":", 1)[0] if ":" in cfg.id else None
    if suite in SUITES:
        raise ConfigError(f"env '{cfg.id}': the '{suite}:' suite is not available in this version of worldmodels")
    if cfg.obs != "state":
        raise ConfigError(f"env.obs='{cfg.obs}' is not available yet; use env.obs=state")
    try:
        env = gym.make(cfg.id, max_episode_steps=cfg.max_episode_steps, render_mode="rgb_array" if render else None)
    except gym.error.Error as err:
        known = [k for k in gym.registry if "/" not in k]
        raise ConfigError(
            f"unknown environment id '{cfg.id}'{closest(cfg.id, known)}: {err}; "
            "use a registered gymnasium id such as CartPole-v1 or Pendulum-v1"
        ) from None
    if isinstance(env.action_space, gym.spaces.Box):
        low, high = env.action_space.low, env.action_space.high
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ConfigError(f"env '{cfg.id}': continuous actions need finite bounds, got {env.action_space}")
        ones = np.ones(env.action_space.shape, np.float32)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
    if isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.dtype != np.uint8:
        env = FloatObs(env)
    if cfg.action_repeat > 1:
        env = ActionRepeat(env, cfg.action_repeat)
    return env
