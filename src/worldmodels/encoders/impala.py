"""IMPALA's residual encoder for frames (Espeholt et al. 2018): per stage a 3×3 convolution, a 3×3
max-pool of stride 2 and two residual blocks; then ReLU, flatten and a linear layer to `out_dim`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.encoders.cnn import image_shape, to_images
from worldmodels.registry import ENCODERS
from worldmodels.schema import positive
from worldmodels.spaces import ObsSpec


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


@ENCODERS.register("impala")
class ImpalaEncoder(nn.Module):
    """uint8 frames `[..., H, W, C]` → `[..., out_dim]`."""

    @dataclass
    class Config:
        channels: tuple[int, ...] = (16, 32, 32)
        """Channels of each stage; each stage halves the frame (rounding up)."""
        out_dim: int = positive(256)
        """Features after the final linear layer."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        height, width, channels = image_shape("impala", obs_spec)
        layers: list[nn.Module] = []
        for out in cfg.channels:
            layers += [
                nn.Conv2d(channels, out, 3, padding=1),
                nn.MaxPool2d(3, 2, padding=1),
                Residual(out),
                Residual(out),
            ]
            channels = out
        self.net = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.net(torch.zeros(1, obs_spec.shape[2], height, width)).shape[-1]
        self.proj = nn.Sequential(nn.Linear(flat, cfg.out_dim), nn.ReLU())
        self.out_dim = cfg.out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch, x = to_images(obs)  # [N, C, H, W]
        return self.proj(self.net(x)).reshape(*batch, -1)
