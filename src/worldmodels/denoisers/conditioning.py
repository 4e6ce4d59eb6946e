"""What every denoiser network is conditioned on: the noise level and the context's actions, in one vector;
and the frame layout the denoisers work in."""

from __future__ import annotations

import math

import torch
from torch import nn


class Conditioning(nn.Module):
    """A noise level `[N]` (EDM's c_noise, DDPM's t / T) and the `context` actions `[N, K, A]` (one-hot)
    → a vector `[N, dim]`: random Fourier features of the level plus a linear map of the actions, then an MLP."""

    def __init__(self, context: int, action_dim: int, dim: int):
        super().__init__()
        self.register_buffer("freq", torch.randn(dim // 2) * 2 * math.pi, persistent=True)
        self.noise = nn.Linear(2 * (dim // 2), dim)
        self.action = nn.Linear(context * action_dim, dim)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, level: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        angle = level[:, None].float() * self.freq
        noise = self.noise(torch.cat([angle.cos(), angle.sin()], -1))
        return self.mlp(noise + self.action(action.flatten(1)))


def stack_context(context: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Context frames `[N, K, C, H, W]` and the noisy next frame `[N, C, H, W]` stacked on channels
    `[N, (K + 1) C, H, W]`, the noisy frame first."""
    return torch.cat([noisy, context.flatten(1, 2)], 1)


def to_model(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames `[..., H, W, C]` → `[..., C, H, W]` in [−1, 1]."""
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def to_pixels(frames: torch.Tensor) -> torch.Tensor:
    """Frames `[..., C, H, W]` in [−1, 1] → uint8 `[..., H, W, C]`."""
    return ((frames.movedim(-3, -1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
