"""Scalar heads: reward and value (regression, optionally in symlog space) and continue (Bernoulli)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from worldmodels.nn import MLPConfig, SymlogMSE
from worldmodels.registry import CONTINUES, REWARDS, VALUES


class _Regression(nn.Module):
    """`[..., in_dim]` → a `SymlogMSE` prediction `[...]`. Zero-initialised output: predicts 0 at first."""

    @dataclass
    class Config(MLPConfig):
        use_symlog: bool = True
        """Regress symlog(target), robust to the scale of rewards and returns."""

    def __init__(self, cfg: Config, in_dim: int):
        super().__init__()
        self.cfg = cfg
        self.net = cfg.mlp(in_dim, 1, out_scale=0.0)

    def forward(self, x: torch.Tensor) -> SymlogMSE:
        return SymlogMSE(self.net(x).squeeze(-1), self.cfg.use_symlog)


@REWARDS.register("mlp")
class RewardHead(_Regression):
    """Predicts the reward received on arriving in a state."""


@VALUES.register("mlp")
class ValueHead(_Regression):
    """Predicts the λ-return of a state under the current policy."""


@CONTINUES.register("mlp")
class ContinueHead(nn.Module):
    """`[..., in_dim]` → Bernoulli over "the episode goes on" `[...]` (1 − terminated; never truncation)."""

    @dataclass
    class Config(MLPConfig):
        pass

    def __init__(self, cfg: Config, in_dim: int):
        super().__init__()
        self.net = cfg.mlp(in_dim, 1)

    def forward(self, x: torch.Tensor) -> D.Bernoulli:
        return D.Bernoulli(logits=self.net(x).squeeze(-1))
