"""Decode every part of an observation with the decoder chosen for its kind: frames (`image`, by default the
transposed CNN) or vectors (`vector`, by default the MLP)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.decoders.prediction import DictPrediction, ImagePrediction, VectorPrediction
from worldmodels.registry import DECODERS, component
from worldmodels.schema import Spec
from worldmodels.spaces import ObsSpec


@DECODERS.register("multi")
class MultiDecoder(nn.Module):
    """`[..., in_dim]` → a prediction of the whole observation (array or dict)."""

    @dataclass
    class Config:
        image: Spec = component("decoder", "cnn")
        """Decoder of frame parts."""
        vector: Spec = component("decoder", "mlp")
        """Decoder of vector parts."""

    def __init__(self, cfg: Config, in_dim: int, obs_spec: ObsSpec):
        super().__init__()
        self.keyed = bool(obs_spec.parts)
        parts = {}
        for key, spec in obs_spec.items():
            part = cfg.image if spec.is_image else cfg.vector
            parts[key or "obs"] = DECODERS.build(part.name, part.cfg, in_dim=in_dim, obs_spec=spec)
        self.parts = nn.ModuleDict(parts)

    def forward(self, x: torch.Tensor) -> VectorPrediction | ImagePrediction | DictPrediction:
        if not self.keyed:
            return self.parts["obs"](x)
        return DictPrediction({key: part(x) for key, part in self.parts.items()})
