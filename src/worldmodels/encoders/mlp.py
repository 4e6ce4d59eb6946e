"""MLP encoder for vector observations."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import nn

from worldmodels.errors import ConfigError
from worldmodels.nn import MLPConfig, symlog
from worldmodels.registry import ENCODERS
from worldmodels.spaces import ObsSpec


@ENCODERS.register("mlp")
class MLPEncoder(nn.Module):
    """`[..., *shape]` → `[..., hidden]`; inputs are flattened and, by default, symlog-squashed."""

    @dataclass
    class Config(MLPConfig):
        symlog_inputs: bool = True
        """Apply symlog to the observation, so unnormalised inputs of any scale train stably."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        if obs_spec.parts:
            raise ConfigError("encoder 'mlp' takes one observation array; for env.obs=both use encoder 'multi'")
        self.cfg = cfg
        self.obs_ndim = len(obs_spec.shape)
        self.net = cfg.mlp(prod(obs_spec.shape), None)
        self.out_dim = self.net.out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.flatten(-self.obs_ndim).float()
        if self.cfg.symlog_inputs:
            x = symlog(x)
        return self.net(x)
