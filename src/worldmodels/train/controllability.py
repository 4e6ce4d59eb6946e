"""Genie's measures (Bruce et al. 2024, §3.1): how well its tokenizer reconstructs held-out video, how much
its latent actions steer what it generates, and, where the held-out video has true actions (revealed
only here), how much of them the latent actions carry.

    PSNR(x, x̂) = 10 log10(1 / MSE(x, x̂)), pixels in [0, 1] (capped at 100 dB)
    ΔtPSNR = PSNR(x_t, x̂_t) − PSNR(x_t, x̂'_t), t = 4 (the paper's)

where x̂_t is generated from the real x_0 with the latent actions the model infers from the real x_0 … x_t,
and x̂'_t with uniformly random latent actions. Latent to true actions, over every held-out transition:
the accuracy of the best map from latent to true actions (each latent action to the true action it most
often stands for) beside the majority-class baseline, and the normalised mutual information
2 I(Z; A) / (H(Z) + H(A)) (1: each determines the other, 0: independent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.config import EnvConfig
from worldmodels.data.episodes import load_dataset
from worldmodels.data.replay import unflatten
from worldmodels.envs.record import random_episode
from worldmodels.errors import ConfigError

HORIZON = 4
"""t of ΔtPSNR: generated steps after the real first frame."""
MAX_STEPS = 100
"""Steps of a held-out episode played in the environment."""
BATCH = 64
"""Windows generated at once."""


def held_out_episodes(
    agent: Any, env_cfg: EnvConfig | None, data: Path | None, episodes: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """Episodes the model never trained on: those of the dataset `data` (every one, with their actions when
    it holds them), else `episodes` of uniformly random actions played in `env_cfg` from seeds `seed + i`."""
    if data is not None:
        return load_dataset(data)[1]
    if env_cfg is None:
        raise ConfigError(
            "the run's data names no environment to play held-out episodes in; set train.eval_every=0 and "
            "measure with `wm eval RUN --delta-psnr --data DIR` on held-out clips"
        )
    return [unflatten(random_episode(env_cfg, agent.act_spec, "uniform", seed + i, MAX_STEPS)) for i in range(episodes)]


def psnr(real: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each frame `[N, H, W, C]` (pixel units) → `[N]`."""
    mse = ((real.float() - predicted.float()) / 255.0).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def windows(episodes: list[dict[str, np.ndarray]], length: int, key: str) -> np.ndarray | None:
    """Every episode's `key` cut into consecutive, non-overlapping windows of `length` steps `[N, length, ...]`
    (None when no episode is that long)."""
    cut = [e[key][s : s + length] for e in episodes for s in range(0, len(e[key]) - length + 1, length)]
    return np.stack(cut) if cut else None


def cooccurrence(latent: np.ndarray, true: np.ndarray, actions: int, true_actions: int) -> np.ndarray:
    """How often each latent action `[N]` comes with each true action `[N]`: counts `[actions, true_actions]`."""
    counts = np.zeros((actions, true_actions))
    np.add.at(counts, (latent, true), 1)
    return counts


def action_agreement(latent: np.ndarray, true: np.ndarray, actions: int, true_actions: int) -> dict[str, float]:
    """Latent actions `[N]` against true ones `[N]`: the best map's accuracy, the majority baseline and NMI."""
    counts = cooccurrence(latent, true, actions, true_actions)
    p = counts / counts.sum()
    pz, pa = p.sum(1), p.sum(0)
    nz = p > 0
    mutual = float((p[nz] * np.log(p[nz] / np.outer(pz, pa)[nz])).sum())
    entropy = float(-(pz[pz > 0] * np.log(pz[pz > 0])).sum() - (pa[pa > 0] * np.log(pa[pa > 0])).sum())
    return {
        "eval/latent_action_accuracy": float(counts.max(1).sum() / counts.sum()),
        "eval/majority_accuracy": float(pa.max()),
        "eval/latent_action_nmi": 2 * mutual / entropy if entropy > 0 else 0.0,
    }


class DeltaPSNR:
    """`eval/delta_psnr` (ΔtPSNR), `eval/tokenizer_psnr` and, for episodes with discrete true actions, the
    latent-to-true action measures (module docstring), on held-out `episodes` `{"obs", ["action"]}`."""

    def __init__(self, agent: Any, episodes: list[dict[str, np.ndarray]], horizon: int = HORIZON):
        if not hasattr(agent, "latent_actions"):
            raise ConfigError(
                f"ΔtPSNR measures a model played by latent actions (genie), not {type(agent).__name__}; "
                "use train.evaluate=returns or open_loop"
            )
        self.agent, self.horizon = agent, horizon
        self.steps = windows(episodes, horizon + 1, "obs")
        self.clips = windows(episodes, agent.cfg.clip, "obs")
        if self.steps is None:
            raise ConfigError(f"no held-out episode is {horizon + 1} frames long, as ΔtPSNR at t = {horizon} needs")
        labelled = all("action" in e for e in episodes) and agent.act_spec.discrete and agent.act_spec.dim > 0
        self.actions = windows(episodes, agent.cfg.clip, "action") if labelled else None

    @torch.no_grad()
    def __call__(self, seed: int) -> dict[str, float]:
        device = self.agent.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            found = [
                self._steer(torch.as_tensor(x, device=device)) for x in np.array_split(self.steps, self._n(self.steps))
            ]
            steered, unsteered = (torch.cat(parts) for parts in zip(*found))
            metrics = {
                "eval/delta_psnr": float((steered - unsteered).mean()),
                "eval/psnr_inferred_actions": float(steered.mean()),
                "eval/psnr_random_actions": float(unsteered.mean()),
            }
            if self.clips is not None:
                clips = [torch.as_tensor(x, device=device) for x in np.array_split(self.clips, self._n(self.clips))]
                metrics["eval/tokenizer_psnr"] = float(torch.cat([self._reconstruct(x) for x in clips]).mean())
                if self.actions is not None:
                    latent = torch.cat([self.agent.latent_actions.infer(x).flatten() for x in clips]).cpu().numpy()
                    true = self.actions[:, 1:].argmax(-1).flatten()  # row t + 1: the action between t and t + 1
                    metrics.update(
                        action_agreement(latent, true, self.agent.latent_actions.actions, self.agent.act_spec.dim)
                    )
        return metrics

    @staticmethod
    def _n(windows: np.ndarray) -> int:
        """Chunks of at most `BATCH` windows."""
        return -(-len(windows) // BATCH)

    def _steer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows `[N, t + 1, H, W, C]` → PSNR `[N]` of the last frame generated from the first with the
        inferred latent actions, and with random ones."""
        agent = self.agent
        inferred = agent.latent_actions.infer(x)  # [N, t]
        random = torch.randint_like(inferred, agent.latent_actions.actions)
        steered = psnr(x[:, -1], agent.generate(x[:, :1], inferred)[:, -1])
        return steered, psnr(x[:, -1], agent.generate(x[:, :1], random)[:, -1])

    def _reconstruct(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips `[N, T, H, W, C]` → the tokenizer's reconstruction PSNR of each frame `[N·T]`."""
        recon = self.agent.tokenizer.decode(self.agent.tokenizer.encode(clips)).clamp(0, 255)
        return psnr(clips.flatten(0, 1), recon.flatten(0, 1))

    def describe(self, metrics: dict[str, float]) -> str:
        line = f"eval ΔtPSNR {metrics['eval/delta_psnr']:.2f} dB (t={self.horizon})"
        if "eval/tokenizer_psnr" in metrics:
            line += f", tokenizer PSNR {metrics['eval/tokenizer_psnr']:.1f} dB"
        if "eval/latent_action_accuracy" in metrics:
            line += (
                f", latent→true accuracy {metrics['eval/latent_action_accuracy']:.2f} "
                f"(majority {metrics['eval/majority_accuracy']:.2f}), NMI {metrics['eval/latent_action_nmi']:.2f}"
            )
        return line + f"  ({len(self.steps)} windows)"
