"""`wm dream`: what the world model imagines beside what really happens.

One episode is played with the policy's mode (or random actions); from its first `context` observations the
model predicts the rest open-loop from the real actions alone (Genie: from the latent actions it infers
from the real episode). Frames are written as a GIF of real |
imagined side by side; vector observations as a plot of real vs imagined traces per dimension, with
the error per imagined step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import EnvConfig
from worldmodels.data.replay import unflatten
from worldmodels.envs.record import random_episode
from worldmodels.figures import plt
from worldmodels.spaces import obs_map
from worldmodels.train.evaluate import agent_episode


def dream(
    agent: Agent,
    env_cfg: EnvConfig,
    run_dir: Path,
    seed: int,
    context: int = 5,
    horizon: int = 50,
    policy: Literal["agent", "uniform"] = "agent",
) -> Path:
    """Write `dream.gif` (frames) or `dream.png` (vectors) into `run_dir`; returns its path. The episode is
    played by the agent's policy, or by uniformly random actions (`policy`: a model learnt from a
    random-policy dataset, or one that does not act)."""
    if policy == "uniform":
        episode = random_episode(env_cfg, agent.act_spec, "uniform", seed, context + horizon - 1)
        obs, actions = unflatten(episode)["obs"], episode["action"]
    else:
        obs, actions, _ = agent_episode(agent, env_cfg, seed, context + horizon - 1)
    predicted = agent.open_loop(to_tensor(obs, agent.device), to_tensor(actions, agent.device), context).obs
    predicted = obs_map(lambda x: x.cpu().numpy(), predicted)
    if isinstance(obs, dict) and "image" in obs:
        obs, predicted = obs["image"], predicted["image"]
    if obs.ndim == 4:
        return _frames_gif(obs, predicted, context, run_dir / "dream.gif")
    return _traces_png(obs, predicted, context, env_cfg.id, run_dir / "dream.png")


def _frames_gif(real: np.ndarray, imagined: np.ndarray, context: int, out: Path) -> Path:
    import imageio.v2 as imageio

    real, imagined = rgb(real), rgb(imagined.round().clip(0, 255).astype(np.uint8))
    scale = max(3, 64 // real.shape[1])  # crisp pixels, and small frames (MinAtar's 10×10) made visible
    frames = []
    for t in range(len(real)):
        pair = np.concatenate([real[t], np.full_like(real[t][:, :2], 255), imagined[t]], 1)
        if t < context:  # a blue bar marks the steps the model observed
            pair[:2] = (60, 120, 255)
        frames.append(np.kron(pair, np.ones((scale, scale, 1), np.uint8)))
    imageio.mimsave(out, frames, duration=100, loop=0)
    return out


def rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 frames `[T, H, W, C]` as RGB: grayscale repeated; other channel counts (MinAtar's object
    channels) drawn each in a fixed colour."""
    channels = frames.shape[-1]
    if channels == 3:
        return frames
    if channels == 1:
        return frames.repeat(3, -1)
    palette = np.random.default_rng(0).integers(64, 256, (channels, 3)) / 255.0
    return (frames[..., :, None] * palette).max(-2).astype(np.uint8)  # [T, H, W, C, 3] → [T, H, W, 3]


def _traces_png(real: np.ndarray, imagined: np.ndarray, context: int, env_id: str, out: Path) -> Path:
    real, pred = real.reshape(len(real), -1), imagined.reshape(len(real), -1)
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
    fig.suptitle(f"{env_id}: real vs imagined")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
