"""Evaluation: run whole episodes with the policy's mode, several environments at once; or measure the
world model itself, by its open-loop predictions of episodes it never trained on.

The trainer takes one evaluator (`train.evaluate`): called with a seed, it answers metrics and says them
in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import EnvConfig
from worldmodels.data.replay import unflatten
from worldmodels.envs import EnvPool, make_env
from worldmodels.envs.record import Chooser, play_episode, random_episode
from worldmodels.errors import ConfigError
from worldmodels.spaces import Obs, obs_map


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


HORIZONS = (1, 5, 10)
"""Imagined steps at which the open-loop evaluation reports its errors on their own."""


class AgentPolicy:
    """A trained agent as a chooser of actions for `envs.record` (`wm record --policy RUN`): each call gives
    a chooser for one new episode, acting as evaluation does (by `agent.eval_policy`; samples when `explore`)."""

    def __init__(self, agent: Agent, name: str = "agent", explore: bool = False):
        self.agent, self.name, self.explore = agent, name, explore

    def __call__(self) -> Chooser:
        agent = self.agent
        state, first = agent.initial_state(1), torch.ones(1, dtype=torch.bool, device=agent.device)

        @torch.no_grad()
        def choose(obs: Obs) -> np.ndarray:
            nonlocal state
            action, state, _ = agent.act(
                to_tensor(obs_map(lambda x: x[None], obs), agent.device), first, state, self.explore
            )
            first[:] = False
            return action[0].cpu().numpy()

        return choose

    def __str__(self) -> str:
        return self.name


def agent_episode(
    agent: Agent, env_cfg: EnvConfig, seed: int, max_steps: int, explore: bool = False
) -> tuple[Obs, np.ndarray, np.ndarray]:
    """Observations `[T, ...]`, the actions that led to them `[T, A]` and the rewards received on arriving
    `[T]` (zeros first) of one episode of the agent's policy (its mode, or samples when `explore`)."""
    episode = play_episode(env_cfg, agent.act_spec, AgentPolicy(agent, explore=explore)(), seed, max_steps)
    return unflatten(episode)["obs"], episode["action"], episode["reward"]


class OpenLoop:
    """The world model alone: shown the first `context` steps of an episode and then only its actions, it
    imagines up to `horizon` more, on episodes from seeds of their own that it never trained on, played by
    the policy its data comes from: the agent's own (sampled; each evaluation plays them again with the
    current policy, from the same seeds) for a model learning online, where random play would end within
    a few steps in many games (10 on average in MinAtar Breakout), or uniformly random actions, played
    once, for a model learnt from a random-policy dataset (`policy="uniform"`).

    Metrics (observations scaled to [0, 1]): `eval/reconstruction_mse` (and `_wrong` for frames) over the
    `context` real steps, as the model renders them; `eval/open_loop_mse` over every imagined step, and at the h-th
    imagined step for h in HORIZONS (over the episodes that last that long) `eval/open_loop_mse_h{h}`, and
    for frames `eval/open_loop_wrong_h{h}`, the fraction of pixels with a channel off by more than half its
    range (for MinAtar's 0/255 channels: the cells predicted wrong); beside each, `eval/copy_last_*`, the same for
    repeating the last real observation, the baseline a model of the dynamics must beat. A model with a
    reward head adds `eval/open_loop_reward_mae` over the imagined steps, beside `eval/zero_reward_mae`."""

    def __init__(
        self,
        agent: Agent,
        env_cfg: EnvConfig,
        episodes: int,
        seed: int,
        policy: Literal["agent", "uniform"],
        context: int = 5,
        horizon: int = 45,
    ):
        if type(agent).open_loop is Agent.open_loop:
            raise ConfigError(
                f"{type(agent).__name__} has no observation decoder to predict with; use train.evaluate=returns"
            )
        self.agent, self.env_cfg, self.episodes, self.seed = agent, env_cfg, episodes, seed
        self.context, self.horizon = context, horizon
        self.uniform = None
        if policy == "uniform":
            self.uniform = [
                random_episode(env_cfg, agent.act_spec, "uniform", seed + i, context + horizon) for i in range(episodes)
            ]

    def _episode(self, i: int) -> tuple[Obs, np.ndarray, np.ndarray]:
        if self.uniform is None:
            return agent_episode(self.agent, self.env_cfg, self.seed + i, self.context + self.horizon - 1, explore=True)
        episode = self.uniform[i]
        return unflatten(episode)["obs"], episode["action"], episode["reward"]

    def __call__(self, seed: int) -> dict[str, float]:
        found: dict[str, list[float]] = {}
        with torch.random.fork_rng(devices=[self.agent.device] if self.agent.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for i in range(self.episodes):
                obs, action, reward = self._episode(i)
                if len(action) <= self.context:
                    continue
                obs, action = to_tensor(obs, self.agent.device), torch.as_tensor(action, device=self.agent.device)
                dream = self.agent.open_loop(obs, action, self.context)
                measured = open_loop_errors(obs, dream.obs, self.context)
                measured.update({f"eval/{k}": float(v) for k, v in dream.metrics.items()})
                for name, value in measured.items():
                    found.setdefault(name, []).append(value)
                if dream.reward is not None:
                    real = torch.as_tensor(reward[self.context :], device=self.agent.device)
                    found.setdefault("eval/open_loop_reward_mae", []).append(
                        float((dream.reward[self.context :].float() - real).abs().mean())
                    )
                    found.setdefault("eval/zero_reward_mae", []).append(float(real.abs().mean()))
        if not found:
            raise ConfigError(
                f"every episode of {self.env_cfg.id} ended within the {self.context} steps an open-loop evaluation "
                "shows the model first; use train.evaluate=returns"
            )
        metrics = {name: float(np.mean(values)) for name, values in found.items()}
        metrics["eval/open_loop_mse_std"] = float(np.std(found["eval/open_loop_mse"]))
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        line = f"eval open-loop error {metrics['eval/open_loop_mse']:.4g} ± {metrics['eval/open_loop_mse_std']:.2g}"
        for h in HORIZONS:
            if f"eval/open_loop_wrong_h{h}" in metrics:
                ours, copy = metrics[f"eval/open_loop_wrong_h{h}"], metrics[f"eval/copy_last_wrong_h{h}"]
                line += f", h{h} {100 * ours:.1f}% wrong (copy-last {100 * copy:.1f}%)"
        return line + f"  ({self.episodes} episodes)"


def open_loop_errors(real: Obs, predicted: Obs, context: int) -> dict[str, float]:
    """One episode's errors of `predicted` `[T, ...]` after `context` real steps, and of copying the last
    real observation (see `OpenLoop`)."""
    copy = obs_map(lambda x: x[context - 1 : context].expand_as(x), real)
    seen = slice(0, context)
    errors = {
        "eval/open_loop_mse": _squared_error(real, predicted, slice(context, None)),
        "eval/reconstruction_mse": _squared_error(real, predicted, seen),
    }
    wrong = _wrong_pixels(real, predicted, seen)
    if wrong is not None:
        errors["eval/reconstruction_wrong"] = wrong
    for h in HORIZONS:
        if context + h - 1 >= len(_first(real)):
            break
        at = slice(context + h - 1, context + h)
        for who, guess in (("open_loop", predicted), ("copy_last", copy)):
            errors[f"eval/{who}_mse_h{h}"] = _squared_error(real, guess, at)
            wrong = _wrong_pixels(real, guess, at)
            if wrong is not None:
                errors[f"eval/{who}_wrong_h{h}"] = wrong
    return errors


def _first(obs: Obs) -> torch.Tensor:
    return next(iter(obs.values())) if isinstance(obs, dict) else obs


def _squared_error(real: Obs, predicted: Obs, at: slice) -> float:
    """Mean squared error over steps `at`, of every observation part (frames scaled to [0, 1])."""
    if isinstance(real, dict):
        return float(np.mean([_squared_error(real[k], predicted[k], at) for k in real]))
    scale = 255.0 if real.dtype == torch.uint8 else 1.0
    return float(((predicted[at].float() - real[at].float()) / scale).pow(2).mean())


def _wrong_pixels(real: Obs, predicted: Obs, at: slice) -> float | None:
    """The fraction of pixels at steps `at` with a channel off by more than half its range (None without
    frames `[T, H, W, C]`)."""
    if isinstance(real, dict):
        found = [w for k in real if (w := _wrong_pixels(real[k], predicted[k], at)) is not None]
        return float(np.mean(found)) if found else None
    if real.dtype != torch.uint8:
        return None
    return float(((predicted[at].float() - real[at].float()).abs() > 127.5).any(-1).float().mean())


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
