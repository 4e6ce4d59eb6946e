"""Decode every part of an observation with the decoder that fits it (frames: CNN, vectors: MLP)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from worldmodels.decoders.cnn import CNNDecoder
from worldmodels.decoders.mlp import MLPDecoder
from worldmodels.decoders.prediction import DictPrediction, ImagePrediction, VectorPrediction
from worldmodels.envs.spaces import ObsSpec
from worldmodels.registry import DECODERS


@DECODERS.register("multi")
class MultiDecoder(nn.Module):
    """`[..., in_dim]` → a prediction of the whole observation (array or dict)."""

    @dataclass
    class Config:
        mlp: MLPDecoder.Config = field(default_factory=MLPDecoder.Config)
        cnn: CNNDecoder.Config = field(default_factory=CNNDecoder.Config)

    def __init__(self, cfg: Config, in_dim: int, obs_spec: ObsSpec):
        super().__init__()
        self.keyed = bool(obs_spec.parts)
        self.parts = nn.ModuleDict(
            {
                key or "obs": CNNDecoder(cfg.cnn, in_dim, spec) if spec.is_image else MLPDecoder(cfg.mlp, in_dim, spec)
                for key, spec in obs_spec.items()
            }
        )

    def forward(self, x: torch.Tensor) -> VectorPrediction | ImagePrediction | DictPrediction:
        if not self.keyed:
            return self.parts["obs"](x)
        return DictPrediction({key: part(x) for key, part in self.parts.items()})
