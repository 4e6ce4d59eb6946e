"""A spatiotemporal transformer (Genie's ST block, after ST-ViViT): tokens laid out as frames × places
`[B, T, S, D]`; each block attends within each frame (over its S places), then across time at each place,
causally (frame t sees frames ≤ t, rotary time positions), then one MLP:

    x ← x + SpaceAttn(LN(x)),  x ← x + CausalTimeAttn(LN(x)),  x ← x + MLP(LN(x))

which costs O(T·S² + S·T²) where full attention over a clip costs O((T·S)²). The attention is
`nn/transformer.py`'s; positions within a frame are left to the caller's embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from worldmodels.nn.transformer import SelfAttention, TransformerConfig


class STBlock(nn.Module):
    """`[B, T, S, D]` → `[B, T, S, D]`: spatial attention, causal temporal attention, MLP (module docstring)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_space, self.norm_time, self.norm_mlp = (nn.LayerNorm(cfg.dim) for _ in range(3))
        self.space = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.time = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        hidden = cfg.mlp_ratio * cfg.dim
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, S, D = x.shape
        y, _ = self.space(self.norm_space(x).reshape(B * T, S, D))
        x = x + y.view(B, T, S, D)
        across = self.norm_time(x).transpose(1, 2).reshape(B * S, T, D)
        y, _ = self.time(across, causal=True, pos=torch.arange(T, device=x.device).expand(B * S, -1))
        x = x + y.view(B, S, T, D).transpose(1, 2)
        return x + self.mlp(self.norm_mlp(x))


class STTransformer(nn.Module):
    """`layers` ST blocks and a final LayerNorm: `[B, T, S, dim]` → `[B, T, S, dim]`, causal in time."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.blocks = nn.ModuleList(STBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def to_patches(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """uint8 frames `[..., H, W, C]` → their p×p patches, row by row, scaled to [0, 1] `[..., S, p·p·C]`."""
    *lead, H, W, C = frames.shape
    x = frames.float().div(255.0).reshape(*lead, H // patch, patch, W // patch, patch, C)
    x = x.movedim(-4, -3)  # [..., h, w, p, p, C]
    return x.reshape(*lead, (H // patch) * (W // patch), patch * patch * C)


def from_patches(x: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """Patches `[..., S, p·p·C]` (S = h·w of `grid`) → frames `[..., H, W, C]` in the patches' units."""
    *lead, S, P = x.shape
    h, w = grid
    x = x.reshape(*lead, h, w, patch, patch, P // (patch * patch)).movedim(-3, -4)  # [..., h, p, w, p, C]
    return x.reshape(*lead, h * patch, w * patch, -1)
