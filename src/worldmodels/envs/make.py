"""`make_env`: an environment id and options → one gymnasium env with the package's standard wrappers.

CartPole-v1, Pendulum-v1, CarRacing-v3, any registered gymnasium id   (gymnasium)
dmc:cartpole-swingup, dmc:walker-walk                                    (dm_control)
atari:Pong, atari:Breakout                                               (ALE)
minatar:Breakout, minatar:SpaceInvaders                                  (MinAtar)
maze:PointMaze_UMaze-v3, maze:PointMaze_Medium-v3                        (gymnasium-robotics PointMaze, from above)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from worldmodels.envs.config import EnvConfig
from worldmodels.envs.wrappers import VECTOR_SPACES, ActionRepeat, FloatObs, RenderedObs
from worldmodels.errors import ConfigError, closest

EXTRAS = {"CarRacing": "box2d", "LunarLander": "box2d", "BipedalWalker": "box2d", "ALE/": "atari"}


def make_env(cfg: EnvConfig, render: bool = False) -> gym.Env:
    """Build the environment named by `cfg.id`: observations per `cfg.obs`, continuous actions in
    [-1, 1], `cfg.action_repeat`. `render=True` makes `env.render()` return RGB frames."""
    suite, _, name = cfg.id.rpartition(":")
    if suite == "dmc":
        from worldmodels.envs.dmc import DMCEnv

        env = DMCEnv(name, cfg.obs, cfg.size, cfg.camera, cfg.render_effects)
        if cfg.max_episode_steps:
            env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps * cfg.action_repeat)
    elif suite == "atari":
        from worldmodels.envs.atari import AtariEnv

        if cfg.obs != "pixels":
            raise ConfigError(f"env '{cfg.id}': Atari observations are frames; use env.obs=pixels")
        env = AtariEnv(name, cfg.size, cfg.grayscale, cfg.action_repeat, cfg.sticky_actions, cfg.noop_max)
        if cfg.max_episode_steps:
            env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
        return env  # frame skip is the action repeat, done inside with max-pooling
    elif suite == "minatar":
        from worldmodels.envs.minatar import MinAtarEnv

        env = MinAtarEnv(name, cfg.obs, cfg.sticky_actions)
        if cfg.max_episode_steps:
            env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps * cfg.action_repeat)
    elif suite == "maze":
        from worldmodels.envs.maze import EPISODE_STEPS, PointMazeEnv

        env = PointMazeEnv(name, cfg.obs, cfg.size)
        env = gym.wrappers.TimeLimit(env, (cfg.max_episode_steps or EPISODE_STEPS) * cfg.action_repeat)
    else:  # a gymnasium id, possibly `module:Env-v0`, which gymnasium imports itself
        env = _make_gym(cfg, render)
    if isinstance(env.action_space, gym.spaces.Box):
        low, high = env.action_space.low, env.action_space.high
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ConfigError(f"env '{cfg.id}': continuous actions need finite bounds, got {env.action_space}")
        ones = np.ones(env.action_space.shape, np.float32)
        env = gym.wrappers.RescaleAction(env, -ones, ones)
    if cfg.action_repeat > 1:
        env = ActionRepeat(env, cfg.action_repeat)
    return env


def _make_gym(cfg: EnvConfig, render: bool) -> gym.Env:
    render = render or cfg.obs != "state"
    try:
        env = gym.make(cfg.id, max_episode_steps=cfg.max_episode_steps, render_mode="rgb_array" if render else None)
    except gym.error.DependencyNotInstalled as err:
        extra = next((e for prefix, e in EXTRAS.items() if cfg.id.startswith(prefix)), None)
        hint = f"install it with: pip install -e '.[{extra}]'" if extra else str(err)
        raise ConfigError(f"env '{cfg.id}' needs a package that is not installed; {hint}") from None
    except gym.error.Error as err:
        known = [k for k in gym.registry if "/" not in k]
        raise ConfigError(
            f"unknown environment id '{cfg.id}'{closest(cfg.id, known)}: {err}; "
            "use a registered gymnasium id such as CartPole-v1, dmc:DOMAIN-TASK or atari:GAME"
        ) from None
    if isinstance(env.observation_space, VECTOR_SPACES) and not _is_image(env.observation_space):
        env = FloatObs(env)
    if cfg.obs != "state":
        return RenderedObs(env, cfg.obs, cfg.size, cfg.grayscale, from_obs=_is_image(env.observation_space))
    return env


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
