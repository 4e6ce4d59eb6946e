"""A vision transformer encoder (Dosovitskiy et al. 2021): the frame cut into patches, each patch a token
(linear embedding plus a learned position), transformer blocks over all tokens, their mean as features."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from worldmodels.encoders.cnn import image_shape, to_images
from worldmodels.errors import ConfigError
from worldmodels.nn.transformer import Transformer, TransformerConfig
from worldmodels.registry import ENCODERS
from worldmodels.schema import non_negative
from worldmodels.spaces import ObsSpec


@ENCODERS.register("vit")
class ViTEncoder(nn.Module):
    """uint8 frames `[..., H, W, C]` → `[..., dim]`."""

    @dataclass
    class Config:
        patch: int = non_negative(0)
        """Side of a square patch, dividing the frame's height and width; 0: the largest such side up to 8
        (64×64 frames: 8, MinAtar's 10×10: 5)."""
        transformer: TransformerConfig = field(default_factory=TransformerConfig)

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        height, width, channels = image_shape("vit", obs_spec)
        patch = cfg.patch or max(p for p in range(1, 9) if math.gcd(height, width) % p == 0)
        if height % patch or width % patch:
            raise ConfigError(
                f"encoder 'vit': patch {patch} does not divide the {height}×{width} frame; "
                "set agent.encoder.image.patch to a divisor of both"
            )
        dim = cfg.transformer.dim
        self.embed = nn.Conv2d(channels, dim, patch, patch)  # one linear map per patch
        tokens = (height // patch) * (width // patch)
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.transformer = Transformer(cfg.transformer)
        self.out_dim = dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch, x = to_images(obs)  # [N, C, H, W]
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position  # [N, L, D]
        return self.transformer(tokens).mean(1).reshape(*batch, -1)
