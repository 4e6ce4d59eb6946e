"""Encode every part of an observation with the encoder chosen for its kind, frames (`image`, by default
the CNN) or vectors (`vector`, by default the MLP), and concatenate the features. Works for single arrays
and `env.obs=both` dicts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.registry import ENCODERS, component
from worldmodels.schema import Spec
from worldmodels.spaces import Obs, ObsSpec


@ENCODERS.register("multi")
class MultiEncoder(nn.Module):
    """Observation (array or dict) → `[..., out_dim]`, the concatenated features of its parts."""

    @dataclass
    class Config:
        image: Spec = component("encoder", "cnn")
        """Encoder of frame parts: `cnn`, `impala` or `vit`."""
        vector: Spec = component("encoder", "mlp")
        """Encoder of vector parts."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        self.keyed = bool(obs_spec.parts)
        parts = {}
        for key, spec in obs_spec.items():
            part = cfg.image if spec.is_image else cfg.vector
            parts[key or "obs"] = ENCODERS.build(part.name, part.cfg, obs_spec=spec)
        self.parts = nn.ModuleDict(parts)
        self.out_dim = sum(part.out_dim for part in self.parts.values())

    def forward(self, obs: Obs) -> torch.Tensor:
        if not self.keyed:
            return self.parts["obs"](obs)
        return torch.cat([part(obs[key]) for key, part in self.parts.items()], -1)
