"""A pre-LayerNorm transformer (nanoGPT's block): self-attention and an MLP, each in a residual branch.

Used over image patches (the `vit` encoder, no mask) and over sequences: with a boolean `mask` `[N, L, L]`
(True where a token may attend), rotary positions (RoFormer: queries and keys rotated by their position, so
attention depends only on the distance between tokens) and a key/value cache, so that a sequence model
can run in parallel over a training window and step by step while acting with the same attention.
Tokens `[N, L, D]`; a token's keys and values `[..., layers, 2, heads, D/heads]`.
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


def rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotary position: x `[N, h, L, d]` rotated pairwise by angles pos `[N, L]` × 10000^(−2i/d)."""
    half = x.shape[-1] // 2
    freq = 10000.0 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = (pos[:, None, :, None].float() * freq).to(x.dtype)  # [N, 1, L, d/2]
    cos, sin = angle.cos(), angle.sin()
    a, b = x[..., :half], x[..., half : 2 * half]
    return torch.cat([a * cos - b * sin, a * sin + b * cos, x[..., 2 * half :]], -1)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transformer dim ({dim}) must be a multiple of its heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        causal: bool = False,
        mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
        past: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens `[N, L, D]` → outputs `[N, L, D]` and their keys and values `[N, 2, h, L, d]`.

        `past` `[N, 2, h, P, d]`: cached keys and values the tokens also attend to (before themselves);
        `mask` `[N, L, P + L]` then covers them too."""
        N, L, D = x.shape
        q, k, v = self.qkv(x).view(N, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # [N, h, L, d]
        if pos is not None:
            q, k = rotate(q, pos), rotate(k, pos)
        kv = torch.stack([k, v], 1)
        if past is not None:
            k, v = torch.cat([past[:, 0], k], 2), torch.cat([past[:, 1], v], 2)
        drop = self.dropout if self.training else 0.0
        attn_mask = None if mask is None else mask[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p=drop, is_causal=causal and mask is None)
        return self.out(y.transpose(1, 2).reshape(N, L, D)), kv


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)): `[N, L, D]` → `[N, L, D]` and the block's keys and values."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        hidden = cfg.mlp_ratio * cfg.dim
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim), nn.Dropout(cfg.dropout)
        )

    def forward(self, x: torch.Tensor, causal: bool = False, **attend) -> tuple[torch.Tensor, torch.Tensor]:
        y, kv = self.attn(self.norm1(x), causal, **attend)
        x = x + y
        return x + self.mlp(self.norm2(x)), kv


class Transformer(nn.Module):
    """`layers` blocks and a final LayerNorm: tokens `[N, L, dim]` → `[N, L, dim]`."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(
        self, x: torch.Tensor, causal: bool = False, mask: torch.Tensor | None = None, pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.encode(x, causal, mask, pos)[0]

    def encode(
        self, x: torch.Tensor, causal: bool = False, mask: torch.Tensor | None = None, pos: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs `[N, L, dim]` and every token's keys and values `[N, L, layers, 2, h, d]` (for a cache)."""
        kvs = []
        for block in self.blocks:
            x, kv = block(x, causal, mask=mask, pos=pos)
            kvs.append(kv)
        return self.norm(x), torch.stack(kvs, 1).permute(0, 4, 1, 2, 3, 5)

    def step(
        self, x: torch.Tensor, cache: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One new token per row attending to its cached tokens and itself: x `[N, dim]`, cache
        `[N, C, layers, 2, h, d]` with `valid` `[N, C]` (False: empty or another episode's), the token's
        position `pos` `[N]` → output `[N, dim]` and the token's keys and values `[N, layers, 2, h, d]`."""
        mask = torch.cat([valid, valid.new_ones(len(valid), 1)], 1)[:, None]  # [N, 1, C + 1]
        past = cache.permute(0, 2, 3, 4, 1, 5)  # [N, layers, 2, h, C, d]
        x, kvs = x[:, None], []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, mask=mask, pos=pos[:, None], past=past[:, i])
            kvs.append(kv[:, :, :, 0])
        return self.norm(x[:, 0]), torch.stack(kvs, 1)
