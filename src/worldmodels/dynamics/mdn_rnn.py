"""M of World Models (Ha & Schmidhuber 2018): an LSTM whose output is a mixture of Gaussians over the
next latent, P(z_{t+1} | a_t, z_t, h_t), with K components per latent dimension, plus the next reward
and whether the episode terminates.

Sampling takes a temperature τ: mixture logits are divided by τ and standard deviations multiplied by
√τ, so τ > 1 makes the imagined world more random (harder to exploit) and τ → 0 nearly deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.losses import gmm_nll
from worldmodels.nn.dists import sample_index
from worldmodels.registry import MEMORIES
from worldmodels.schema import non_negative, positive

LSTMState = tuple[torch.Tensor, torch.Tensor]
"""(h, c) of the LSTM, each `[1, N, hidden]`."""


@dataclass
class MDNOutput:
    """M's prediction for each step: mixture `logits`, `mean`, `log_std` `[..., Z, K]`, `reward` `[...]`
    and `done_logit` `[...]` (the logit of the episode terminating at the next step)."""

    logits: torch.Tensor
    mean: torch.Tensor
    log_std: torch.Tensor
    reward: torch.Tensor
    done_logit: torch.Tensor

    def sample(self, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """A next latent `[..., Z]` drawn at temperature τ: component k ~ softmax(logits / τ), then
        z ~ N(μ_k, σ_k √τ)."""
        probs = F.softmax(self.logits / temperature, -1)
        k = sample_index(probs, generator)[..., None]
        mean = self.mean.gather(-1, k).squeeze(-1)
        std = self.log_std.gather(-1, k).squeeze(-1).exp() * math.sqrt(temperature)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + std * noise


class MixtureHead(nn.Module):
    """Features `[..., in_dim]` → `MDNOutput` over `z_dim` latent dimensions with `mixtures` components each."""

    def __init__(self, in_dim: int, z_dim: int, mixtures: int):
        super().__init__()
        self.z_dim, self.mixtures = z_dim, mixtures
        self.linear = nn.Linear(in_dim, 3 * z_dim * mixtures + 2)

    def forward(self, h: torch.Tensor) -> MDNOutput:
        raw = self.linear(h)
        mix, rest = raw[..., :-2], raw[..., -2:]
        logits, mean, log_std = mix.unflatten(-1, (self.z_dim, 3, self.mixtures)).unbind(-2)
        return MDNOutput(logits, mean, log_std.clamp(-7.0, 3.0), rest[..., 0], rest[..., 1])


def mdn_loss(
    pred: MDNOutput, z_next: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Masked means over steps `[B, T]`: the GMM NLL per latent dimension (`nll`), the reward's squared
    error (`reward`) and the termination's cross-entropy (`done`)."""
    mask = mask.float()
    count = mask.sum().clamp(min=1.0)
    nll = gmm_nll(z_next, pred.logits, pred.mean, pred.log_std).mean(-1)
    reward_err = (pred.reward - reward) ** 2
    done_ce = F.binary_cross_entropy_with_logits(pred.done_logit, done.float(), reduction="none")
    parts = {"nll": nll, "reward": reward_err, "done": done_ce}
    return {name: (value * mask).sum() / count for name, value in parts.items()}


@dataclass
class MDNConfig:
    hidden: int = positive(256)
    """LSTM units (the paper: 256); the no-memory baseline's hidden layer has as many."""
    mixtures: int = positive(5)
    """Gaussian components per latent dimension (the paper: 5)."""
    reward_scale: float = non_negative(1.0)
    """Weight of the reward's squared error in the loss."""
    done_scale: float = non_negative(1.0)
    """Weight of the termination's cross-entropy in the loss."""

    def weigh(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return parts["nll"] + self.reward_scale * parts["reward"] + self.done_scale * parts["done"]


@MEMORIES.register("mdn_rnn")
class MDNRNN(nn.Module):
    """(z_t `[B, T, Z]`, a_t `[B, T, A]`, LSTM state) → prediction of step t + 1 `[B, T, ...]` and the new state."""

    Config = MDNConfig

    def __init__(self, cfg: MDNConfig, z_dim: int, action_dim: int):
        super().__init__()
        self.cfg, self.z_dim, self.hidden = cfg, z_dim, cfg.hidden
        self.lstm = nn.LSTM(z_dim + action_dim, cfg.hidden, batch_first=True)
        self.head = MixtureHead(cfg.hidden, z_dim, cfg.mixtures)

    def initial_state(self, n: int) -> LSTMState:
        zeros = self.head.linear.weight.new_zeros(1, n, self.hidden)
        return zeros, zeros.clone()

    def forward(
        self, z: torch.Tensor, action: torch.Tensor, state: LSTMState | None = None
    ) -> tuple[MDNOutput, LSTMState]:
        """Sequences `[B, T, ·]`, or single steps `[B, ·]` (then the prediction is `[B, ...]`)."""
        single = z.dim() == 2
        x = torch.cat([z, action], -1)
        x = x[:, None] if single else x
        out, state = self.lstm(x, self.initial_state(x.shape[0]) if state is None else state)
        return self.head(out[:, 0] if single else out), state


class MemorylessMDN(nn.Module):
    """The no-memory baseline of M: the same mixture prediction from (z_t, a_t) alone, through one
    tanh layer of `hidden` units instead of an LSTM. M earns its memory by beating it."""

    def __init__(self, cfg: MDNConfig, z_dim: int, action_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim + action_dim, cfg.hidden), nn.Tanh())
        self.head = MixtureHead(cfg.hidden, z_dim, cfg.mixtures)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> MDNOutput:
        return self.head(self.net(torch.cat([z, action], -1)))
