"""A pre-LayerNorm transformer (nanoGPT's block): self-attention and an MLP, each in a residual branch.

Used over image patches (the `vit` encoder, no mask) and, causally, over sequences. Tokens `[N, L, D]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.schema import positive, unit


@dataclass
class TransformerConfig:
    layers: int = positive(2)
    heads: int = positive(4)
    dim: int = positive(128)
    """Width of every token (a multiple of `heads`)."""
    mlp_ratio: int = positive(4)
    """Hidden units of each block's MLP per unit of `dim`."""
    dropout: float = unit(0.0)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer dim ({dim}) must be a multiple of its heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        N, L, D = x.shape
        q, k, v = self.qkv(x).view(N, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # [N, h, L, d] each
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=causal)
        return self.out(y.transpose(1, 2).reshape(N, L, D))


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)): `[N, L, D]` → `[N, L, D]`."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        hidden = cfg.mlp_ratio * cfg.dim
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), causal)
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """`layers` blocks and a final LayerNorm: tokens `[N, L, dim]` → `[N, L, dim]`."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, causal)
        return self.norm(x)
