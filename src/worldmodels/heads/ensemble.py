"""Ensemble reward head: E MLPs batched as one module, each trained on its own bootstrap sample.

Input is whatever the agent conditions the reward on (PETS: the transition (s, a, s')), normalised by
running statistics; the prediction of the ensemble is the mean of its members.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.dynamics.ensemble import EnsembleConfig
from worldmodels.nn import Normaliser, SymlogMSE
from worldmodels.registry import REWARDS


@REWARDS.register("ensemble")
class EnsembleReward(nn.Module):
    """`[..., in_dim]` → reward `[...]` (the members' mean); `members` gives each one, `[E, N]`."""

    @dataclass
    class Config(EnsembleConfig):
        pass

    def __init__(self, cfg: Config, in_dim: int):
        super().__init__()
        self.members_count = cfg.members
        self.net = cfg.mlp(in_dim, 1)
        self.inputs = Normaliser(in_dim)
        self.targets = Normaliser(1)

    def members(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's reward `[E, N]` for inputs `[E, N, in_dim]`."""
        out = self.net(self.inputs.normalise(x)).float().squeeze(-1)
        return self.targets.denormalise(out)

    def loss(self, x: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """Mean squared error in normalised reward units; x `[E, N, in_dim]`, reward `[E, N]`."""
        return (((self.members(x) - reward) / self.targets.std) ** 2).mean()

    def update_normalisers(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        self.inputs.update(x)
        self.targets.update(reward[:, None])

    def forward(self, x: torch.Tensor) -> SymlogMSE:
        lead = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.members_count, -1, -1)
        return SymlogMSE(self.members(flat).mean(0).reshape(lead), use_symlog=False)
