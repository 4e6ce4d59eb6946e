"""MLP transition p(z' | z, a) over a Gaussian latent, with a residual mean."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from worldmodels.nn import MLPConfig
from worldmodels.registry import DYNAMICS
from worldmodels.representations.gaussian import gaussian
from worldmodels.schema import positive


@DYNAMICS.register("latent_mlp")
class LatentMLPDynamics(nn.Module):
    """(z `[..., Z]`, a `[..., A]`) → Normal over z' `[..., Z]`; the mean is z plus a learned change."""

    @dataclass
    class Config(MLPConfig):
        min_std: float = positive(0.1)
        """Floor of the predicted std."""

    def __init__(self, cfg: Config, latent_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.net = cfg.mlp(latent_dim + action_dim, 2 * latent_dim)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> D.Independent:
        params = self.net(torch.cat([z, action], -1))
        delta, raw_std = params.chunk(2, -1)
        return gaussian(torch.cat([z + delta, raw_std], -1), self.cfg.min_std)
