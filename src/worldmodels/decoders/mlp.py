"""MLP decoder for vector observations, predicting in symlog space."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.decoders.prediction import VectorPrediction
from worldmodels.errors import ConfigError
from worldmodels.nn import MLPConfig, Normaliser
from worldmodels.registry import DECODERS
from worldmodels.schema import positive
from worldmodels.spaces import ObsSpec


@DECODERS.register("mlp")
class MLPDecoder(nn.Module):
    """`[..., in_dim]` → a prediction of the vector observation `[..., D]`."""

    @dataclass
    class Config(MLPConfig):
        use_symlog: bool = True
        """Regress symlog(observation), as DreamerV3 does for vector inputs."""
        normalise: bool = False
        """Regress each dimension in units of its spread over the observations trained on so far (running
        mean and std, after symlog): a dimension that varies little, such as MountainCar's velocity (±0.07),
        then weighs in the loss as much as one that varies a lot, where the plain squared error lets the latent
        leave it out (`benchmarks/NOTES.md`, twenty-second sitting)."""
        min_std: float = positive(1e-3)
        """Floor of the spread with `normalise`, so that a constant dimension is not weighted without bound."""

    def __init__(self, cfg: Config, in_dim: int, obs_spec: ObsSpec):
        super().__init__()
        if obs_spec.parts or len(obs_spec.shape) != 1:
            raise ConfigError(f"decoder 'mlp' predicts vectors [D], got {obs_spec}; use decoder 'multi'")
        self.cfg = cfg
        self.net = cfg.mlp(in_dim, obs_spec.shape[0])
        self.moments = Normaliser(obs_spec.shape[0]) if cfg.normalise else None

    def forward(self, x: torch.Tensor) -> VectorPrediction:
        return VectorPrediction(self.net(x), self.cfg.use_symlog, self.moments, self.cfg.min_std)
