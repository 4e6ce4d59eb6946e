"""Genie's latent action model (Bruce et al. 2024, §2.1): from video alone, a discrete action between each
pair of consecutive frames, learnt by making it the only thing a decoder gets of the next frame.

    ã_t = VQ(enc(x_1 … x_{t+1}))        one of |A| codes (Genie: 8), the encoder causal over time
    x̂_{t+1} = dec(x_1 … x_t, ã_t)       L = ‖x_{t+1} − x̂_{t+1}‖² + VQ codebook and commitment terms

The tiny codebook is the bottleneck: what the past frames cannot predict about the next one (what the
player did) has to pass through the code. The decoder reconstructs the clip moved by a small random offset
(`shift`, one per clip) while the encoder sees it unmoved, so a code can carry only what survives a
translation: how things moved, not where they ended up. Without it a LAM over 2×2 patches of MinAtar
Breakout learnt codes for "the paddle ends on the patch's left cell" (its position's parity), which
pass the next frame as well as "left" does but mix the true actions.

The encoder and decoder are spatiotemporal transformers over p×p patches (`nn/st_transformer.py`); the
encoder's output at frame t+1, averaged over its patches, is quantised (`tokenizers/vq.py`'s quantiser), and
the decoder adds the code to every patch of frame t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.errors import ConfigError
from worldmodels.nn.augment import random_shift
from worldmodels.nn.st_transformer import STTransformer, from_patches, to_patches
from worldmodels.nn.transformer import TransformerConfig
from worldmodels.registry import LATENT_ACTIONS
from worldmodels.schema import non_negative, param, positive
from worldmodels.spaces import ObsSpec
from worldmodels.tokenizers.vq import VectorQuantiser


@LATENT_ACTIONS.register("vq_lam")
class VQLatentActions(nn.Module):
    """uint8 clips `[B, T, H, W, C]` → latent actions `[B, T−1]` (module docstring)."""

    @dataclass
    class Config(TransformerConfig):
        actions: int = positive(8)
        """Latent actions, the codebook's size (Genie: 8)."""
        embed_dim: int = positive(32)
        """Width of a code (Genie: 32)."""
        patch: int = positive(4)
        """Side of a square patch (Genie: 16 for the LAM); divides the frame's height and width."""
        commitment: float = non_negative(0.25)
        dead_after: int = positive(100)
        """Updates a code may go unchosen before it is revived to an encoder output."""
        normalise: bool = True
        """Compare encoder outputs and codes by cosine (on the unit sphere), which keeps more codes in use."""
        shift: int | None = param(None, lambda v: v is None or v >= 0, "an integer >= 0 or null")
        """Largest offset, in pixels, of the clip the decoder reconstructs (module docstring; 0: none). None:
        half the patch, so the offsets reach every position within a patch."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        if not obs_spec.is_image:
            raise ConfigError(
                f"latent_action 'vq_lam' takes uint8 frames [H, W, C], got {obs_spec}; use env.obs=pixels"
            )
        H, W, C = obs_spec.shape
        if H % cfg.patch or W % cfg.patch:
            raise ConfigError(f"latent_action 'vq_lam': patch {cfg.patch} does not divide {H}×{W} frames; change patch")
        self.cfg, self.actions = cfg, cfg.actions
        self.shift = cfg.patch // 2 if cfg.shift is None else cfg.shift
        self.grid = (H // cfg.patch, W // cfg.patch)
        places, pixels = self.grid[0] * self.grid[1], cfg.patch * cfg.patch * C
        self.encoder_in = nn.Linear(pixels, cfg.dim)
        self.encoder_places = nn.Parameter(torch.randn(places, cfg.dim) * 0.02)
        self.encoder = STTransformer(cfg)
        self.to_code = nn.Linear(cfg.dim, cfg.embed_dim)
        self.quantiser = VectorQuantiser(
            cfg.actions, cfg.embed_dim, cfg.commitment, False, 0.99, cfg.dead_after, True, cfg.normalise
        )
        self.decoder_in = nn.Linear(pixels, cfg.dim)
        self.decoder_places = nn.Parameter(torch.randn(places, cfg.dim) * 0.02)
        self.from_code = nn.Linear(cfg.embed_dim, cfg.dim)
        self.decoder = STTransformer(cfg)
        self.patch_out = nn.Linear(cfg.dim, pixels)

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips `[B, T, H, W, C]` → the continuous action between each pair of frames `[B, T−1, E]`."""
        x = self.encoder(self.encoder_in(to_patches(clips, self.cfg.patch)) + self.encoder_places)
        return self.to_code(x[:, 1:].mean(2))  # frame t+1's output has seen x_1 … x_{t+1}

    def predict(self, clips: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Frames 1…T−1 of clips `[B, T, H, W, C]` (the last is not read) and the codes between them
        `[B, T−1, E]` → frames 2…T `[B, T−1, H, W, C]` in [0, 1] units."""
        x = self.decoder_in(to_patches(clips[:, :-1], self.cfg.patch)) + self.decoder_places
        x = self.decoder(x + self.from_code(codes)[:, :, None])
        return from_patches(self.patch_out(x), self.grid, self.cfg.patch)

    @torch.no_grad()
    def infer(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 clips `[B, T, H, W, C]` → the latent action between each pair of frames `[B, T−1]` (long)."""
        return self.quantiser.nearest(self.encode(frames))

    def loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """uint8 clips `[B, T, H, W, C]` → the loss (module docstring) and metrics: the next frame's squared
        error, the codes' perplexity, how many of them were used in the batch, and dead codes revived."""
        codes, chosen, vq_loss, vq_metrics = self.quantiser(self.encode(frames))
        moved = random_shift(frames, self.shift) if self.shift else frames
        error = (self.predict(moved, codes) - moved[:, 1:].float() / 255.0).pow(2).mean()
        used = (torch.bincount(chosen.flatten(), minlength=self.actions) > 0).sum().float()
        metrics = {"latent_actions/reconstruction": error.detach(), "latent_actions/codes_used": used}
        metrics.update({f"latent_actions/{k}": v for k, v in vq_metrics.items()})
        return error + vq_loss, metrics
