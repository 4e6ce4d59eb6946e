"""MLP encoder for vector observations."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.nn import MLPConfig, symlog
from worldmodels.registry import ENCODERS


@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    """`[..., *obs_shape]` → `[..., hidden]`; inputs are flattened and, by default, symlog-squashed."""

    @dataclass
    class Config(MLPConfig):
        symlog_inputs: bool = True
        """Apply symlog to the observation, so unnormalised inputs of any scale train stably."""

    def __init__(self, cfg: Config, obs_shape: tuple[int, ...]):
        super().__init__()
        self.cfg = cfg
        self.obs_ndim = len(obs_shape)
        in_dim = 1
        for d in obs_shape:
            in_dim *= d
        self.net = cfg.mlp(in_dim, None)
        self.out_dim = self.net.out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.flatten(-self.obs_ndim).float()
        if self.cfg.symlog_inputs:
            x = symlog(x)
        return self.net(x)
