"""Policy heads: categorical (discrete, one-hot actions) and two continuous ones over [-1, 1]^A."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.nn import ClippedNormal, MLPConfig, OneHotDist, TanhNormal
from worldmodels.registry import POLICIES
from worldmodels.schema import positive, unit


@POLICIES.register("categorical")
class CategoricalPolicy(nn.Module):
    """`[..., in_dim]` → one-hot categorical over `action_dim` actions."""

    @dataclass
    class Config(MLPConfig):
        unimix: float = unit(0.01)
        """Fraction of uniform probability mixed in, so no action's probability reaches zero."""

    def __init__(self, cfg: Config, in_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.net = cfg.mlp(in_dim, action_dim, out_scale=0.01)

    def forward(self, x: torch.Tensor) -> OneHotDist:
        return OneHotDist(self.net(x), self.cfg.unimix)


@POLICIES.register("gaussian")
class GaussianPolicy(nn.Module):
    """`[..., in_dim]` → Normal(tanh(mean), std in [min_std, max_std]), samples clipped to [-1, 1] (DreamerV3)."""

    @dataclass
    class Config(MLPConfig):
        min_std: float = positive(0.1)
        max_std: float = positive(1.0)

    def __init__(self, cfg: Config, in_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.net = cfg.mlp(in_dim, 2 * action_dim, out_scale=0.01)

    def forward(self, x: torch.Tensor) -> ClippedNormal:
        mean, raw_std = self.net(x).chunk(2, -1)
        std = (self.cfg.max_std - self.cfg.min_std) * torch.sigmoid(raw_std + 2.0) + self.cfg.min_std
        return ClippedNormal(torch.tanh(mean), std)


@POLICIES.register("tanh_normal")
class TanhNormalPolicy(nn.Module):
    """`[..., in_dim]` → tanh-squashed Normal (DreamerV1, SAC); std = softplus + min_std."""

    @dataclass
    class Config(MLPConfig):
        min_std: float = positive(1e-4)
        init_std: float = positive(1.0)
        """Std of the pre-tanh Normal at initialisation."""

    def __init__(self, cfg: Config, in_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.net = cfg.mlp(in_dim, 2 * action_dim, out_scale=0.01)
        self.raw_init = float(torch.log(torch.expm1(torch.tensor(cfg.init_std))))

    def forward(self, x: torch.Tensor) -> TanhNormal:
        mean, raw_std = self.net(x).chunk(2, -1)
        std = nn.functional.softplus(raw_std + self.raw_init) + self.cfg.min_std
        return TanhNormal(mean, std)
