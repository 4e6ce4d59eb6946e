"""MLP decoder for vector observations, predicting in symlog space."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.nn import MLPConfig, SymlogMSE
from worldmodels.registry import DECODERS


@DECODERS.register("mlp")
class MLPDecoder(nn.Module):
    """`[..., in_dim]` → a `SymlogMSE` prediction of the observation `[..., *obs_shape]`."""

    @dataclass
    class Config(MLPConfig):
        use_symlog: bool = True
        """Regress symlog(observation), as DreamerV3 does for vector inputs."""

    def __init__(self, cfg: Config, in_dim: int, obs_shape: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        out_dim = 1
        for d in obs_shape:
            out_dim *= d
        self.net = cfg.mlp(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> SymlogMSE:
        pred = self.net(x).unflatten(-1, self.obs_shape)
        return SymlogMSE(pred, self.cfg.use_symlog)
