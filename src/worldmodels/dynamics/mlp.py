"""Single-network MLP dynamics over a state vector: deterministic (point prediction) and Gaussian.

Both predict the change of state, s' = s + Δ, from (s, a); `latent_dim` is the state size S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from worldmodels.nn import MLPConfig
from worldmodels.registry import DYNAMICS
from worldmodels.representations.gaussian import gaussian
from worldmodels.schema import positive


class Point:
    """A deterministic prediction with the distribution interface the planners and agents use."""

    def __init__(self, value: torch.Tensor):
        self.mean = self.mode = value

    def sample(self) -> torch.Tensor:
        return self.mean.detach()

    def rsample(self) -> torch.Tensor:
        return self.mean

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """Squared error summed over the state: `[...]`."""
        return ((self.mean - target) ** 2).sum(-1)


@DYNAMICS.register("mlp")
class DeterministicMLP(nn.Module):
    """(s `[..., S]`, a `[..., A]`) → the next state as a point prediction `[..., S]`."""

    @dataclass
    class Config(MLPConfig):
        pass

    def __init__(self, cfg: Config, latent_dim: int, action_dim: int):
        super().__init__()
        self.net = cfg.mlp(latent_dim + action_dim, latent_dim)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> Point:
        return Point(state + self.net(torch.cat([state, action], -1)))


@DYNAMICS.register("gaussian_mlp")
class GaussianMLP(nn.Module):
    """(s `[..., S]`, a `[..., A]`) → Normal over the next state `[..., S]` (mean s + Δ, softplus std);
    trained by the negative log-likelihood `-dist.log_prob(s')`."""

    @dataclass
    class Config(MLPConfig):
        min_std: float = positive(1e-3)
        """Floor of the predicted std."""

    def __init__(self, cfg: Config, latent_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.net = cfg.mlp(latent_dim + action_dim, 2 * latent_dim)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> D.Independent:
        delta, raw_std = self.net(torch.cat([state, action], -1)).chunk(2, -1)
        return gaussian(torch.cat([state + delta, raw_std], -1), self.cfg.min_std)
