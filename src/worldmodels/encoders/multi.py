"""Encode every part of an observation with the encoder that fits it: frames with a CNN, vectors
with an MLP, and concatenate the features. Works for single arrays and `env.obs=both` dicts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from worldmodels.encoders.cnn import CNNEncoder
from worldmodels.encoders.mlp import MLPEncoder
from worldmodels.envs.spaces import Obs, ObsSpec
from worldmodels.registry import ENCODERS


@ENCODERS.register("multi")
class MultiEncoder(nn.Module):
    """Observation (array or dict) → `[..., out_dim]`, the concatenated features of its parts."""

    @dataclass
    class Config:
        mlp: MLPEncoder.Config = field(default_factory=MLPEncoder.Config)
        """Encoder of vector parts."""
        cnn: CNNEncoder.Config = field(default_factory=CNNEncoder.Config)
        """Encoder of frame parts."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        self.keyed = bool(obs_spec.parts)
        self.parts = nn.ModuleDict(
            {
                key or "obs": CNNEncoder(cfg.cnn, spec) if spec.is_image else MLPEncoder(cfg.mlp, spec)
                for key, spec in obs_spec.items()
            }
        )
        self.out_dim = sum(part.out_dim for part in self.parts.values())

    def forward(self, obs: Obs) -> torch.Tensor:
        if not self.keyed:
            return self.parts["obs"](obs)
        return torch.cat([part(obs[key]) for key, part in self.parts.items()], -1)
