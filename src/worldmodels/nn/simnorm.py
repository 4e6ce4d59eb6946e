"""Simplicial normalisation (TD-MPC2 §3.2): the latent split into groups of `dim` entries, each group
projected onto the probability simplex by a softmax, so latents stay bounded and sparse-ish."""

from __future__ import annotations

import torch
from torch import nn


class SimNorm(nn.Module):
    """`[..., L]` → `[..., L]`, softmax within each of the L / `dim` consecutive groups."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return torch.softmax(x.reshape(*shape[:-1], -1, self.dim), -1).reshape(shape)
