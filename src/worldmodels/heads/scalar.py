"""Scalar heads: reward and value (regression in symlog space, or two-hot over symlog bins) and continue
(Bernoulli)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from worldmodels.losses.twohot import KERNELS, TwoHotSymlog, compiled_kernels, symlog_bins
from worldmodels.nn import MLPConfig, SymlogMSE
from worldmodels.registry import CONTINUES, REWARDS, VALUES
from worldmodels.schema import param


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


class _TwoHot(nn.Module):
    """`[..., in_dim]` → a `TwoHotSymlog` prediction `[...]` over symlog-spaced bins (DreamerV3)."""

    @dataclass
    class Config(MLPConfig):
        bins: int = param(255, lambda v: v >= 2, "an integer >= 2")
        """Number of bins, evenly spaced in symlog space over [-20, 20]."""

    def __init__(self, cfg: Config, in_dim: int):
        super().__init__()
        self.net = cfg.mlp(in_dim, cfg.bins, out_scale=0.0)  # zero output: predicts 0 at first
        self.register_buffer("bins", symlog_bins(cfg.bins), persistent=False)
        self.kernels = KERNELS

    def forward(self, x: torch.Tensor) -> TwoHotSymlog:
        return TwoHotSymlog(self.net(x), self.bins, self.kernels)


def compile_kernels(*heads: nn.Module) -> None:
    """Compute the mean and loss of each two-hot head among `heads` by compiled graphs (the other heads'
    losses are a few elementwise ops on `[...]` and stay eager)."""
    for head in heads:
        if isinstance(head, _TwoHot):
            head.kernels = compiled_kernels()


@REWARDS.register("twohot")
class TwoHotRewardHead(_TwoHot):
    """Predicts the reward on arriving in a state, as a two-hot distribution in symlog space."""


@VALUES.register("twohot")
class TwoHotValueHead(_TwoHot):
    """Predicts the λ-return of a state, as a two-hot distribution in symlog space."""


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
