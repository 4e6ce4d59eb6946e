"""`wm dream`: what the world model imagines beside what really happens.

One episode is played with the policy's mode; from its first `context` observations the model
predicts the rest open-loop from the real actions alone. Vector observations are drawn as real vs
imagined traces per dimension, with the error per imagined step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.base import Agent
from worldmodels.config import EnvConfig
from worldmodels.envs import EnvPool
from worldmodels.train.logger import plt


def play_episode(agent: Agent, env_cfg: EnvConfig, seed: int, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Observations `[T, ...]` and the actions that led to them `[T, A]` (zeros first) of one episode."""
    pool = EnvPool(env_cfg, seed, num_envs=1)
    obs, actions = [pool.obs[0]], [np.zeros(pool.act_spec.dim, np.float32)]
    state, first = agent.initial_state(1), torch.ones(1, dtype=torch.bool, device=agent.device)
    try:
        for _ in range(max_steps):
            action, state = agent.act(torch.as_tensor(pool.obs, device=agent.device), first, state, explore=False)
            out = pool.step(action.cpu().numpy())
            obs.append(out.records["obs"][0])
            actions.append(out.records["action"][0])
            first[:] = False
            if out.finished:
                break
    finally:
        pool.close()
    return np.stack(obs), np.stack(actions)


def dream(agent: Agent, env_cfg: EnvConfig, out: Path, seed: int, context: int = 5, horizon: int = 50) -> Path:
    """Write `out` (PNG) with real and imagined observation traces; returns its path."""
    obs, actions = play_episode(agent, env_cfg, seed, context + horizon - 1)
    as_tensor = lambda x: torch.as_tensor(x, device=agent.device)  # noqa: E731
    predicted = agent.open_loop(as_tensor(obs), as_tensor(actions), context).cpu().numpy()
    real, pred = obs.reshape(len(obs), -1), predicted.reshape(len(obs), -1)
    dims = real.shape[1]
    fig, axes = plt.subplots(dims + 1, 1, figsize=(7, 1.6 * (dims + 1)), dpi=100, sharex=True)
    steps = np.arange(len(real))
    for d in range(dims):
        ax = axes[d]
        ax.plot(steps, real[:, d], color="k", lw=1.5, label="real")
        ax.plot(steps, pred[:, d], color="tab:red", lw=1.2, ls="--", label="imagined")
        ax.axvspan(0, context - 1, color="tab:blue", alpha=0.1)
        ax.set_ylabel(f"obs[{d}]")
    axes[0].legend(loc="upper right", fontsize=8)
    error = np.abs(real - pred).mean(1)
    axes[-1].plot(steps[context:], error[context:], color="tab:red")
    axes[-1].set_ylabel("|error|")
    axes[-1].set_xlabel(f"step (shaded: {context} observed, then imagined open-loop)")
    fig.suptitle(f"{env_cfg.id}: real vs imagined")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
