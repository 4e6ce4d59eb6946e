"""Diagonal Gaussian latent q(z | features)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from worldmodels.registry import REPRESENTATIONS
from worldmodels.schema import positive


def gaussian(params: torch.Tensor, min_std: float) -> D.Independent:
    """Split `[..., 2Z]` into mean and a softplus std floored at `min_std`: a Normal over `[..., Z]`."""
    mean, raw_std = params.chunk(2, -1)
    return D.Independent(D.Normal(mean, F.softplus(raw_std) + min_std), 1)


@REPRESENTATIONS.register("gaussian")
class GaussianLatent(nn.Module):
    """Features `[..., in_dim]` → q(z) = Normal(mean, std) over `[..., latent_dim]`."""

    @dataclass
    class Config:
        latent_dim: int = positive(32)
        """Size of z."""
        min_std: float = positive(0.1)
        """Floor of the latent std, keeping the KL and the samples well-conditioned."""

    def __init__(self, cfg: Config, in_dim: int):
        super().__init__()
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        self.proj = nn.Linear(in_dim, 2 * cfg.latent_dim)

    def forward(self, features: torch.Tensor) -> D.Independent:
        return gaussian(self.proj(features), self.cfg.min_std)
