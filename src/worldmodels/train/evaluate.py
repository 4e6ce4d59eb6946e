"""Evaluation: run whole episodes with the policy's mode, several environments at once; or measure the
world model itself, by its open-loop predictions of episodes it never trained on.

The trainer takes one evaluator (`train.evaluate`): called with a seed, it answers metrics and says them
in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import EnvConfig
from worldmodels.data.replay import unflatten
from worldmodels.envs import EnvPool, make_env
from worldmodels.envs.record import random_episode
from worldmodels.errors import ConfigError
from worldmodels.spaces import obs_map


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


class Returns:
    """`eval/return`: the mean return of `episodes` episodes of the policy's mode (and its spread)."""

    def __init__(self, agent: Agent, env_cfg: EnvConfig, episodes: int):
        self.agent, self.env_cfg, self.episodes = agent, env_cfg, episodes

    def __call__(self, seed: int) -> dict[str, float]:
        returns = evaluate(self.agent, self.env_cfg, self.episodes, seed)
        return {"eval/return": float(returns.mean()), "eval/return_std": float(returns.std())}

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"eval return {metrics['eval/return']:9.2f} ± {metrics['eval/return_std']:.2f}  ({self.episodes} episodes)"
        )


class OpenLoop:
    """`eval/open_loop_mse`: the world model, shown the first `context` steps of an episode and then only
    its actions, imagines the next `horizon`; the mean squared error of its predictions against what
    happened (frames scaled to [0, 1]), averaged over `episodes` episodes of uniformly random actions
    played once, from seeds of their own, so the model never trained on them."""

    def __init__(self, agent: Agent, env_cfg: EnvConfig, episodes: int, seed: int, context: int = 5, horizon: int = 45):
        if type(agent).open_loop is Agent.open_loop:
            raise ConfigError(
                f"{type(agent).__name__} has no observation decoder to predict with; use train.evaluate=returns"
            )
        self.agent, self.context = agent, context
        self.episodes = [
            random_episode(env_cfg, agent.act_spec, "uniform", seed + i, context + horizon) for i in range(episodes)
        ]
        short = [len(e["reward"]) for e in self.episodes if len(e["reward"]) <= context]
        if short:
            raise ConfigError(
                f"a random episode of {env_cfg.id} ended after {short[0] - 1} steps, within the {context} steps "
                f"an open-loop evaluation shows the model first; use train.evaluate=returns"
            )

    def __call__(self, seed: int) -> dict[str, float]:
        errors = []
        with torch.random.fork_rng(devices=[self.agent.device] if self.agent.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for episode in self.episodes:
                obs = to_tensor(unflatten(episode)["obs"], self.agent.device)
                action = torch.as_tensor(episode["action"], device=self.agent.device)
                predicted = self.agent.open_loop(obs, action, self.context)
                errors.append(_squared_error(obs, predicted, self.context))
        return {"eval/open_loop_mse": float(np.mean(errors)), "eval/open_loop_mse_std": float(np.std(errors))}

    def describe(self, metrics: dict[str, float]) -> str:
        return (
            f"eval open-loop error {metrics['eval/open_loop_mse']:.4g} ± {metrics['eval/open_loop_mse_std']:.2g}"
            f"  ({len(self.episodes)} episodes)"
        )


def _squared_error(real, predicted, context: int) -> float:
    """Mean squared error over the imagined steps (after `context`), of every observation part."""
    if isinstance(real, dict):
        return float(np.mean([_squared_error(real[k], predicted[k], context) for k in real]))
    scale = 255.0 if real.dtype == torch.uint8 else 1.0
    diff = (predicted[context:].float() - real[context:].float()) / scale
    return float(diff.pow(2).mean())


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
