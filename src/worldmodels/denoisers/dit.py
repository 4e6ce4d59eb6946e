"""A diffusion transformer (DiT, Peebles & Xie 2023) as the network inside EDM (`denoisers/edm.py`): the
stacked frames `[N, (K+1)C, H, W]` cut into p×p patches, a learned position per patch, pre-LN blocks whose
norms are shifted and scaled, and whose branches gated, by the conditioning vector (adaLN-zero: the gates
start at 0, so every block starts as the identity), and a modulated linear map back to pixels. Attention is
`nn/transformer.py`'s."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.denoisers.edm import EDMConfig, EDMDenoiser, frame_of
from worldmodels.errors import ConfigError
from worldmodels.nn.transformer import SelfAttention, TransformerConfig
from worldmodels.registry import DENOISERS
from worldmodels.schema import positive
from worldmodels.spaces import ObsSpec


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """x + g₁ attn(adaLN(x)), then x + g₂ MLP(adaLN(x)), with (shift, scale, gate) × 2 from the condition."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        hidden = cfg.mlp_ratio * cfg.dim
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim))
        self.ada = nn.Linear(cfg.dim, 6 * cfg.dim)
        nn.init.zeros_(self.ada.weight), nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(nn.functional.silu(cond)).chunk(6, -1)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))[0]
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """`[N, in_channels, H, W]` and a condition `[N, dim]` → `[N, out_channels, H, W]`."""

    def __init__(self, cfg: TransformerConfig, patch: int, in_channels: int, out_channels: int, H: int, W: int):
        super().__init__()
        self.patch, self.out_channels, self.grid = patch, out_channels, (H // patch, W // patch)
        self.embed = nn.Conv2d(in_channels, cfg.dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.randn(1, self.grid[0] * self.grid[1], cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim, elementwise_affine=False)
        self.ada = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.out = nn.Linear(cfg.dim, patch * patch * out_channels)
        for layer in (self.ada, self.out):
            nn.init.zeros_(layer.weight), nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # [N, L, dim]
        for block in self.blocks:
            x = block(x, cond)
        shift, scale = self.ada(nn.functional.silu(cond)).chunk(2, -1)
        x = self.out(modulate(self.norm(x), shift, scale))  # [N, L, p·p·C]
        (h, w), p = self.grid, self.patch
        x = x.view(len(x), h, w, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(len(x), self.out_channels, h * p, w * p)


@dataclass
class DiTConfig(TransformerConfig, EDMConfig):
    patch: int = positive(2)
    """Side of each square patch (it must divide the frame's sides)."""


@DENOISERS.register("dit")
class EDMDiT(EDMDenoiser):
    """EDM around a DiT."""

    Config = DiTConfig

    def __init__(self, cfg: DiTConfig, obs_spec: ObsSpec, action_dim: int):
        super().__init__(cfg, action_dim, cfg.dim)
        C, H, W = frame_of(obs_spec, "dit")
        if H % cfg.patch or W % cfg.patch:
            raise ConfigError(f"dit patch {cfg.patch} does not divide the {H}×{W} frame; pick a divisor")
        self.network = DiT(cfg, cfg.patch, (cfg.context + 1) * C, C, H, W)
