"""A VQ-VAE frame tokenizer (van den Oord et al. 2017, as IRIS uses it): a convolutional encoder maps a
frame to an h×w grid of vectors, each replaced by its nearest codebook entry, whose index is the token; a
decoder maps the codes back to the frame.

    z_q = e_k,  k = argmin_j ‖z_e − e_j‖                       (nearest code: the token)
    L = ‖o − dec(z_e + sg(z_q − z_e))‖ + ‖sg(z_e) − z_q‖² + β ‖z_e − sg(z_q)‖²

The straight-through estimator passes the decoder's gradient to the encoder unchanged; β weighs the
commitment of the encoder to its codes. With `ema` the codebook is not learned by gradient but moved to
the running mean of the encoder outputs assigned to each code (VQ-VAE-2), and the middle term drops.
A code no encoder output has chosen for `dead_after` updates is dead: the count is reported, and with
`revive` each is reset to a random encoder output of the batch. IRIS's perceptual loss needs a
pretrained VGG and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels import distributed
from worldmodels.errors import ConfigError
from worldmodels.nn.dists import perplexity
from worldmodels.registry import TOKENIZERS
from worldmodels.schema import non_negative, positive, unit
from worldmodels.spaces import ObsSpec


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x)))))) on `[N, C, H, W]`."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(1, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(1, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


@TOKENIZERS.register("vq")
class VQTokenizer(nn.Module):
    """uint8 frames `[..., H, W, C]` ↔ tokens `[..., K]`, K = h·w after `downsample` halvings."""

    @dataclass
    class Config:
        vocab: int = positive(512)
        """Codebook entries (IRIS: 512)."""
        embed_dim: int = positive(512)
        """Width of a code (IRIS: 512)."""
        channels: int = positive(64)
        """Convolution channels at every resolution."""
        downsample: int = non_negative(4)
        """Stride-2 convolutions: 64×64 → 4×4 (16 tokens) with 4 (IRIS); MinAtar's 10×10 → 5×5 with 1."""
        blocks: int = positive(1)
        """Residual blocks per resolution."""
        commitment: float = non_negative(0.25)
        """β, the commitment weight."""
        ema: bool = False
        """Move codes to the running mean of their encoder outputs instead of learning them."""
        ema_decay: float = unit(0.99)
        reconstruction: Literal["l1", "mse"] = "l1"
        dead_after: int = positive(100)
        """Updates a code may go unchosen before it counts as dead (reported as `tokenizer/dead_codes`)."""
        revive: bool = True
        """Reset each dead code to a random encoder output of the batch."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        if not obs_spec.is_image:
            raise ConfigError(f"tokenizer 'vq' takes uint8 frames [H, W, C], got {obs_spec}; use env.obs=pixels")
        self.cfg = cfg
        H, W, C = obs_spec.shape
        ch = cfg.channels
        self.sizes = [(H, W)]
        for _ in range(cfg.downsample):
            h, w = self.sizes[-1]
            self.sizes.append(((h + 1) // 2, (w + 1) // 2))
        self.grid = self.sizes[-1]
        self.tokens, self.vocab = self.grid[0] * self.grid[1], cfg.vocab

        down: list[nn.Module] = [nn.Conv2d(C, ch, 3, padding=1)]
        for _ in range(cfg.downsample):
            down += [*(ResBlock(ch) for _ in range(cfg.blocks)), nn.Conv2d(ch, ch, 3, stride=2, padding=1)]
        down += [
            *(ResBlock(ch) for _ in range(cfg.blocks)),
            nn.GroupNorm(1, ch),
            nn.SiLU(),
            nn.Conv2d(ch, cfg.embed_dim, 1),
        ]
        self.encoder = nn.Sequential(*down)
        self.pre_decoder = nn.Sequential(nn.Conv2d(cfg.embed_dim, ch, 1), *(ResBlock(ch) for _ in range(cfg.blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), *(ResBlock(ch) for _ in range(cfg.blocks)))
            for _ in range(cfg.downsample)
        )
        self.out = nn.Sequential(nn.GroupNorm(1, ch), nn.SiLU(), nn.Conv2d(ch, C, 3, padding=1))

        V, D = cfg.vocab, cfg.embed_dim
        self.codebook = nn.Parameter(torch.empty(V, D).uniform_(-1 / V, 1 / V), requires_grad=not cfg.ema)
        if cfg.ema:
            self.register_buffer("ema_count", torch.ones(V))
            self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("unused", torch.zeros(V, dtype=torch.long))
        """Updates since each code was last chosen."""

    # ------------------------------------------------------------------ tokens

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames `[N, H, W, C]` → encoder outputs `[N, K, D]`."""
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        return self.encoder(x).flatten(2).transpose(1, 2)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Vectors `[..., D]` → the index of their nearest code `[...]`."""
        e = self.codebook
        dist = z.pow(2).sum(-1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(-1)
        return dist.argmin(-1)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames `[..., H, W, C]` → tokens `[..., K]` (long)."""
        lead = frames.shape[:-3]
        return self.nearest(self.embed(frames.reshape(-1, *frames.shape[-3:]))).reshape(*lead, self.tokens)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens `[..., K]` → predicted frames `[..., H, W, C]` in pixel units (0…255)."""
        return self.render(F.embedding(tokens.reshape(-1, self.tokens), self.codebook)).reshape(
            *tokens.shape[:-1], *self.sizes[0], -1
        )

    def render(self, z: torch.Tensor) -> torch.Tensor:
        """Codes `[N, K, D]` → frames `[N, H, W, C]` in pixel units."""
        x = self.pre_decoder(z.transpose(1, 2).reshape(len(z), -1, *self.grid))
        for size, up in zip(reversed(self.sizes[:-1]), self.up):
            x = up(F.interpolate(x, size=size, mode="nearest"))
        return self.out(x).permute(0, 2, 3, 1) * 255.0

    # ------------------------------------------------------------------ learning

    def loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """uint8 frames `[..., H, W, C]` → the VQ-VAE loss (module docstring) and its metrics: the
        reconstruction error (pixels in [0, 1]), codebook perplexity (e^entropy of code usage) and the
        count of dead codes (revived by this update, with `revive`)."""
        cfg = self.cfg
        frames = frames.reshape(-1, *frames.shape[-3:])
        z = self.embed(frames)  # [N, K, D]
        code = self.nearest(z.detach())
        z_q = F.embedding(code, self.codebook)
        recon = self.render(z + (z_q - z).detach()) / 255.0  # straight-through
        target = frames.float() / 255.0
        error = (recon - target).abs() if cfg.reconstruction == "l1" else (recon - target).pow(2)
        commit = (z - z_q.detach()).pow(2).mean()
        total = error.mean() + cfg.commitment * commit
        if not cfg.ema:
            total = total + (z.detach() - z_q).pow(2).mean()
        usage = distributed.total(torch.bincount(code.flatten(), minlength=cfg.vocab).float())  # of every rank
        metrics = {
            "tokenizer/reconstruction": error.mean().detach(),
            "tokenizer/commitment": commit.detach(),
            "tokenizer/perplexity": perplexity(code, cfg.vocab),
            "tokenizer/dead_codes": self._maintain(z.detach().flatten(0, 1), code.flatten(), usage),
        }
        return total, metrics

    @torch.no_grad()
    def _maintain(self, z: torch.Tensor, code: torch.Tensor, usage: torch.Tensor) -> torch.Tensor:
        """After choosing codes `[M]` for encoder outputs `[M, D]`: the EMA codebook update, and dead codes
        counted and (with `revive`) reset to random outputs of this batch, with no host read. Returns the count.
        Under torchrun `usage` `[V]` counts every rank's codes, the EMA sums every rank's outputs and revived
        codes are rank 0's picks, so that every rank keeps the same codebook."""
        cfg = self.cfg
        if cfg.ema:
            self.ema_count.lerp_(usage, 1 - cfg.ema_decay)
            chosen = distributed.total(torch.zeros_like(self.ema_sum).index_add_(0, code, z))
            self.ema_sum.lerp_(chosen, 1 - cfg.ema_decay)
            n = self.ema_count.sum()
            count = (self.ema_count + 1e-5) / (n + cfg.vocab * 1e-5) * n  # Laplace smoothing
            self.codebook.copy_(self.ema_sum / count[:, None])
        self.unused.copy_(torch.where(usage > 0, 0, self.unused + 1))
        dead = self.unused >= cfg.dead_after
        if not cfg.revive:
            return dead.sum().float()
        fresh = distributed.from_main(z[torch.randint(len(z), (cfg.vocab,), device=z.device)])
        self.codebook.copy_(torch.where(dead[:, None], fresh, self.codebook))
        if cfg.ema:
            self.ema_sum.copy_(torch.where(dead[:, None], fresh, self.ema_sum))
            self.ema_count.masked_fill_(dead, 1.0)
        self.unused.masked_fill_(dead, 0)
        return dead.sum().float()
