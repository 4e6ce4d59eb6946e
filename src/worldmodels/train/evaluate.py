"""Evaluation: run whole episodes with the policy's mode, several environments at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import EnvConfig
from worldmodels.envs import EnvPool, make_env, obs_map


def evaluate(agent: Agent, env_cfg: EnvConfig, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` episodes, each in its own environment, acting deterministically: `[episodes]`.

    Torch's random state is forked: latent samples drawn while acting depend on `seed` alone, and the
    caller's random stream (a training run's) is left exactly as it was.
    """
    with torch.random.fork_rng(devices=[agent.device] if agent.device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _evaluate(agent, env_cfg, episodes, seed)


def _evaluate(agent: Agent, env_cfg: EnvConfig, episodes: int, seed: int) -> np.ndarray:
    pool = EnvPool(env_cfg, seed, num_envs=episodes)
    returns = np.full(episodes, np.nan)
    state = agent.initial_state(episodes)
    is_first = torch.ones(episodes, dtype=torch.bool, device=agent.device)
    try:
        while np.isnan(returns).any():
            obs = to_tensor(pool.obs, agent.device)
            action, state, _ = agent.act(obs, is_first, state, explore=False)
            out = pool.step(action.cpu().numpy())
            for i, ret, _ in out.finished:
                if np.isnan(returns[i]):  # only each environment's first episode counts
                    returns[i] = ret
            is_first = torch.as_tensor(out.is_first, device=agent.device)
    finally:
        pool.close()
    return returns


def record_video(agent: Agent, env_cfg: EnvConfig, path: Path, seed: int, fps: int = 30) -> tuple[Path, float]:
    """Render one deterministic episode to a GIF; returns the path and the episode's return."""
    import imageio.v2 as imageio

    env = make_env(env_cfg, render=True)
    obs, _ = env.reset(seed=seed)
    frames, total, done = [env.render()], 0.0, False
    state = agent.initial_state(1)
    is_first = torch.ones(1, dtype=torch.bool, device=agent.device)
    while not done:
        action, state, _ = agent.act(to_tensor(obs_map(lambda x: x[None], obs), agent.device), is_first, state, False)
        obs, reward, terminated, truncated, _ = env.step(agent.act_spec.to_env(action.cpu().numpy())[0])
        total += float(reward)
        done = terminated or truncated
        is_first[:] = False
        frames.append(env.render())
    env.close()
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    return path, total
