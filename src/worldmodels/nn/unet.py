"""A small conditional U-Net (DIAMOND's denoiser network, after EDM's): residual blocks whose group norms are
scaled and shifted by a conditioning vector (adaptive group norm), halving on the way down and doubling on
the way up, with one skip connection per level.

Images `[N, C, H, W]`, a conditioning vector `[N, cond_dim]` (noise level and actions, built by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.errors import ConfigError
from worldmodels.schema import non_negative, param, positive


@dataclass
class UNetConfig:
    channels: list[int] = param([64, 64, 64, 64], lambda v: len(v) > 0 and min(v) > 0, "a non-empty list of widths")
    """Width of each level, top to bottom (DIAMOND: 4 levels of 64)."""
    blocks: int = positive(2)
    """Residual blocks per level on each side."""
    halvings: int = non_negative(3)
    """Levels after the first that halve the resolution (at most len(channels) − 1; DIAMOND: 3, 64 → 8)."""
    cond_dim: int = positive(256)
    """Width of the conditioning vector."""


class AdaGroupNorm(nn.Module):
    """GroupNorm without affine weights, then x · (1 + scale(c)) + shift(c)."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(max(1, channels // 32), channels, affine=False)
        self.affine = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine(cond)[:, :, None, None].chunk(2, 1)
        return self.norm(x) * (1 + scale) + shift


class ResBlock(nn.Module):
    """x + conv(SiLU(AdaGN(conv(SiLU(AdaGN(x)))))): `[N, in, H, W]` → `[N, out, H, W]`."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int):
        super().__init__()
        self.norm1, self.norm2 = AdaGroupNorm(in_channels, cond_dim), AdaGroupNorm(out_channels, cond_dim)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, cond)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h, cond)))


class Level(nn.Module):
    """`blocks` residual blocks, the first changing the width."""

    def __init__(self, in_channels: int, out_channels: int, blocks: int, cond_dim: int):
        super().__init__()
        widths = [in_channels] + [out_channels] * blocks
        self.blocks = nn.ModuleList(ResBlock(a, b, cond_dim) for a, b in zip(widths, widths[1:]))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, cond)
        return x


def check_halvings(cfg: UNetConfig, height: int, width: int) -> None:
    """Raise ConfigError unless `cfg.halvings` halvings of a `height`×`width` image stay whole."""
    if cfg.halvings > len(cfg.channels) - 1:
        raise ConfigError(f"halvings ({cfg.halvings}) exceeds the {len(cfg.channels)} levels − 1; add channels")
    if height % 2**cfg.halvings or width % 2**cfg.halvings:
        raise ConfigError(
            f"a {height}×{width} frame cannot be halved {cfg.halvings} times; lower halvings "
            f"(MinAtar's 10×10: at most 1)"
        )


class UNet(nn.Module):
    """`[N, in_channels, H, W]` and a conditioning vector `[N, cond_dim]` → `[N, out_channels, H, W]`."""

    def __init__(self, cfg: UNetConfig, in_channels: int, out_channels: int):
        super().__init__()
        self.cfg, ch = cfg, cfg.channels
        self.conv_in = nn.Conv2d(in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(Level(ch[max(i - 1, 0)], c, cfg.blocks, cfg.cond_dim) for i, c in enumerate(ch))
        self.middle = Level(ch[-1], ch[-1], cfg.blocks, cfg.cond_dim)
        self.up = nn.ModuleList(
            Level(2 * c, ch[max(i - 1, 0)], cfg.blocks, cfg.cond_dim) for i, c in reversed(list(enumerate(ch)))
        )
        self.norm_out = nn.GroupNorm(max(1, ch[0] // 32), ch[0])
        self.conv_out = nn.Conv2d(ch[0], out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)

    def halves(self, level: int) -> bool:
        """Whether entering `level` (from the one above) halves the resolution."""
        return 0 < level <= self.cfg.halvings

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x, skips = self.conv_in(x), []
        for i, level in enumerate(self.down):
            if self.halves(i):
                x = F.avg_pool2d(x, 2)
            x = level(x, cond)
            skips.append(x)
        x = self.middle(x, cond)
        for i, level in zip(reversed(range(len(self.up))), self.up):
            x = level(torch.cat([x, skips.pop()], 1), cond)
            if self.halves(i):
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv_out(F.silu(self.norm_out(x)))
