"""Genie's video tokenizer (Bruce et al. 2024, §2.1): a VQ-VAE whose encoder and decoder are spatiotemporal
transformers over the p×p patches of a clip (ST-ViViT), so that a frame's tokens carry what it adds to the
frames before it (the attention over time is causal: frame t's tokens depend on frames ≤ t only).

    z_t = enc(x_≤t) ∈ R^{S×E},  k_t = nearest codes (VQ, `tokenizers/vq.py`'s quantiser),  x̂_t = dec(z_q,≤t)
    L = ‖x − x̂‖² (or |·|) + ‖sg(z) − z_q‖² + β ‖z − sg(z_q)‖²

A clip `[..., T, H, W, C]` gives `[..., T, S]` tokens, S = (H/p)·(W/p); the paper: 1024 codes, patch 4,
clips of 16 frames. The decoder's output is linear: with a sigmoid (as the paper is reported to have) the
squared error's gradient vanished on MinAtar's rare bright cells (gradient norms ~1e-3, 21.0 dB against
21.5 dB linear after 300 updates, one seed each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from worldmodels.errors import ConfigError
from worldmodels.nn.st_transformer import STTransformer, from_patches, to_patches
from worldmodels.nn.transformer import TransformerConfig
from worldmodels.registry import TOKENIZERS
from worldmodels.schema import non_negative, positive, unit
from worldmodels.spaces import ObsSpec
from worldmodels.tokenizers.vq import VectorQuantiser


def as_clips(x: torch.Tensor, event: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`[..., T, *event_shape]` (`event` trailing dims) → clips `[N, T, *event_shape]` and the leading shape;
    a single frame `[*event_shape]` is a clip of one."""
    lead = x.shape[: x.dim() - event]
    if not lead:
        return x[None, None], ()
    return x.reshape(-1, *x.shape[len(lead) - 1 :]), lead


@TOKENIZERS.register("st_vqvae")
class STVQVAE(nn.Module):
    """uint8 clips `[..., T, H, W, C]` ↔ tokens `[..., T, S]` (module docstring)."""

    @dataclass
    class Config(TransformerConfig):
        vocab: int = positive(1024)
        """Codebook entries (Genie: 1024)."""
        embed_dim: int = positive(32)
        """Width of a code (Genie: 32)."""
        patch: int = positive(4)
        """Side of a square patch, one token each (Genie: 4); divides the frame's height and width."""
        commitment: float = non_negative(0.25)
        """β, the commitment weight."""
        ema: bool = False
        """Move codes to the running mean of their encoder outputs instead of learning them."""
        ema_decay: float = unit(0.99)
        reconstruction: Literal["l1", "mse"] = "mse"
        dead_after: int = positive(100)
        """Updates a code may go unchosen before it counts as dead (reported as `tokenizer/dead_codes`)."""
        revive: bool = True
        """Reset each dead code to a random encoder output of the batch."""
        normalise: bool = True
        """Compare encoder outputs and codes by cosine (on the unit sphere), which keeps more codes in use."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        if not obs_spec.is_image:
            raise ConfigError(f"tokenizer 'st_vqvae' takes uint8 frames [H, W, C], got {obs_spec}; use env.obs=pixels")
        H, W, C = obs_spec.shape
        if H % cfg.patch or W % cfg.patch:
            raise ConfigError(f"tokenizer 'st_vqvae': patch {cfg.patch} does not divide {H}×{W} frames; change patch")
        self.cfg, self.frame = cfg, (H, W, C)
        self.grid = (H // cfg.patch, W // cfg.patch)
        self.tokens, self.vocab, self.temporal = self.grid[0] * self.grid[1], cfg.vocab, True
        pixels = cfg.patch * cfg.patch * C
        self.patch_in = nn.Linear(pixels, cfg.dim)
        self.encoder_places = nn.Parameter(torch.randn(self.tokens, cfg.dim) * 0.02)
        self.encoder = STTransformer(cfg)
        self.to_code = nn.Linear(cfg.dim, cfg.embed_dim)
        self.quantiser = VectorQuantiser(
            cfg.vocab, cfg.embed_dim, cfg.commitment, cfg.ema, cfg.ema_decay, cfg.dead_after, cfg.revive, cfg.normalise
        )
        self.from_code = nn.Linear(cfg.embed_dim, cfg.dim)
        self.decoder_places = nn.Parameter(torch.randn(self.tokens, cfg.dim) * 0.02)
        self.decoder = STTransformer(cfg)
        self.patch_out = nn.Linear(cfg.dim, pixels)

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips `[N, T, H, W, C]` → encoder outputs `[N, T, S, E]`."""
        x = self.patch_in(to_patches(clips, self.cfg.patch)) + self.encoder_places
        return self.to_code(self.encoder(x))

    def render(self, z: torch.Tensor) -> torch.Tensor:
        """Codes `[N, T, S, E]` → frames `[N, T, H, W, C]` in pixel units."""
        x = self.decoder(self.from_code(z) + self.decoder_places)
        return from_patches(self.patch_out(x), self.grid, self.cfg.patch) * 255.0

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 clips `[..., T, H, W, C]` → tokens `[..., T, S]` (long)."""
        clips, lead = as_clips(frames, 3)
        return self.quantiser.nearest(self.embed(clips)).reshape(*lead, self.tokens)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens `[..., T, S]` → predicted frames `[..., T, H, W, C]` in pixel units (0…255)."""
        clips, lead = as_clips(tokens, 1)
        return self.render(self.quantiser.lookup(clips)).reshape(*lead, *self.frame)

    def loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """uint8 clips `[..., T, H, W, C]` → the VQ-VAE loss (module docstring) and its metrics: the
        reconstruction error (pixels in [0, 1]), codebook perplexity and dead codes."""
        clips, _ = as_clips(frames, 3)
        z, _, vq_loss, vq_metrics = self.quantiser(self.embed(clips))  # straight-through
        recon = self.render(z) / 255.0
        target = clips.float() / 255.0
        error = (recon - target).abs() if self.cfg.reconstruction == "l1" else (recon - target).pow(2)
        metrics = {"tokenizer/reconstruction": error.mean().detach()}
        metrics.update({f"tokenizer/{k}": v for k, v in vq_metrics.items()})
        return error.mean() + vq_loss, metrics
