"""A VQ-VAE frame tokenizer (van den Oord et al. 2017, as IRIS uses it): a convolutional encoder maps a
frame to an h×w grid of vectors, each replaced by its nearest codebook entry, whose index is the token; a
decoder maps the codes back to the frame.

    z_q = e_k,  k = argmin_j ‖z_e − e_j‖                       (nearest code: the token)
    L = ‖o − dec(z_e + sg(z_q − z_e))‖² + ‖sg(z_e) − z_q‖² + β ‖z_e − sg(z_q)‖²

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


class VectorQuantiser(nn.Module):
    """Vectors `[..., D]` → the nearest of `codes` codebook entries (module docstring): the straight-through
    codes, their indices, the codebook and commitment terms of the loss, and codebook maintenance (EMA
    updates, dead codes counted and revived). With `normalise` the vectors and the codes are compared on
    the unit sphere (by cosine, as ViT-VQGAN and open Genie re-implementations do), so that no code drifts
    out of reach by its length. Shared by every model here that quantises (the tokenizers, Genie's latent
    actions)."""

    def __init__(
        self,
        codes: int,
        dim: int,
        commitment: float,
        ema: bool,
        ema_decay: float,
        dead_after: int,
        revive: bool,
        normalise: bool = False,
    ):
        super().__init__()
        self.codes, self.commitment, self.ema, self.ema_decay = codes, commitment, ema, ema_decay
        self.dead_after, self.revive, self.normalise = dead_after, revive, normalise
        self.codebook = nn.Parameter(torch.empty(codes, dim).uniform_(-1 / codes, 1 / codes), requires_grad=not ema)
        if ema:
            self.register_buffer("ema_count", torch.ones(codes))
            self.register_buffer("ema_sum", self.codebook.detach().clone())
        self.register_buffer("unused", torch.zeros(codes, dtype=torch.long))
        """Updates since each code was last chosen."""

    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        """`x` on the unit sphere with `normalise`, else as it is."""
        return F.normalize(x, dim=-1) if self.normalise else x

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Vectors `[..., D]` → the index of their nearest code `[...]` (with `normalise`: by cosine)."""
        z, e = self._unit(z), self._unit(self.codebook)
        dist = z.pow(2).sum(-1, keepdim=True) - 2 * z @ e.T + e.pow(2).sum(-1)
        return dist.argmin(-1)

    def lookup(self, code: torch.Tensor) -> torch.Tensor:
        """Indices `[...]` → their codes `[..., D]`."""
        return F.embedding(code, self._unit(self.codebook))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder outputs `[..., D]` → (z + sg(z_q − z) `[..., D]`, the codes' indices `[...]`, the codebook
        and commitment terms of the loss, metrics `commitment`, `perplexity` and `dead_codes`), after one
        learning step's worth of codebook maintenance."""
        z = self._unit(z)
        code = self.nearest(z.detach())
        z_q = self.lookup(code)
        commit = (z - z_q.detach()).pow(2).mean()
        loss = self.commitment * commit
        if not self.ema:
            loss = loss + (z.detach() - z_q).pow(2).mean()
        usage = distributed.total(torch.bincount(code.flatten(), minlength=self.codes).float())  # of every rank
        metrics = {
            "commitment": commit.detach(),
            "perplexity": perplexity(code, self.codes),
            "dead_codes": self._maintain(z.detach().reshape(-1, z.shape[-1]), code.flatten(), usage),
        }
        return z + (z_q - z).detach(), code, loss, metrics

    @torch.no_grad()
    def _maintain(self, z: torch.Tensor, code: torch.Tensor, usage: torch.Tensor) -> torch.Tensor:
        """After choosing codes `[M]` for encoder outputs `[M, D]`: the EMA codebook update, and dead codes
        counted and (with `revive`) reset to random outputs of this batch, with no host read. Returns the count.
        The codebook is written through `.data`: this step's graph reads only the rows of codes in use (no
        dead one, which no output chose), and a normalised lookup saved the codebook for its backward.
        Under torchrun `usage` `[V]` counts every rank's codes, the EMA sums every rank's outputs and revived
        codes are rank 0's picks, so that every rank keeps the same codebook."""
        if self.ema:
            self.ema_count.lerp_(usage, 1 - self.ema_decay)
            chosen = distributed.total(torch.zeros_like(self.ema_sum).index_add_(0, code, z))
            self.ema_sum.lerp_(chosen, 1 - self.ema_decay)
            n = self.ema_count.sum()
            count = (self.ema_count + 1e-5) / (n + self.codes * 1e-5) * n  # Laplace smoothing
            self.codebook.data.copy_(self.ema_sum / count[:, None])
        self.unused.copy_(torch.where(usage > 0, 0, self.unused + 1))
        dead = self.unused >= self.dead_after
        if not self.revive:
            return dead.sum().float()
        fresh = distributed.from_main(z[torch.randint(len(z), (self.codes,), device=z.device)])
        self.codebook.data.copy_(torch.where(dead[:, None], fresh, self.codebook))
        if self.ema:
            self.ema_sum.copy_(torch.where(dead[:, None], fresh, self.ema_sum))
            self.ema_count.masked_fill_(dead, 1.0)
        self.unused.masked_fill_(dead, 0)
        return dead.sum().float()


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
        reconstruction: Literal["l1", "mse"] = "mse"
        """The reconstruction error. IRIS uses L1 beside a perceptual loss, which is left out here; L1 alone
        makes small objects vanish: on MinAtar Breakout its optimum for a rarely lit cell is dark, and the
        `iris_minatar` tokenizer trained with it drew no paddle, ball or trail cell after 6,000 updates,
        where with MSE it missed 3.8 % of held-out balls (`wm bench tokenizer_alone`)."""
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
        self.temporal = False

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

        self.quantiser = VectorQuantiser(
            cfg.vocab, cfg.embed_dim, cfg.commitment, cfg.ema, cfg.ema_decay, cfg.dead_after, cfg.revive
        )

    # ------------------------------------------------------------------ tokens

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames `[N, H, W, C]` → encoder outputs `[N, K, D]`."""
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        return self.encoder(x).flatten(2).transpose(1, 2)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames `[..., H, W, C]` → tokens `[..., K]` (long)."""
        lead = frames.shape[:-3]
        return self.quantiser.nearest(self.embed(frames.reshape(-1, *frames.shape[-3:]))).reshape(*lead, self.tokens)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens `[..., K]` → predicted frames `[..., H, W, C]` in pixel units (0…255)."""
        return self.render(self.quantiser.lookup(tokens.reshape(-1, self.tokens))).reshape(
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
        frames = frames.reshape(-1, *frames.shape[-3:])
        z, _, vq_loss, vq_metrics = self.quantiser(self.embed(frames))  # [N, K, D], straight-through
        recon = self.render(z) / 255.0
        target = frames.float() / 255.0
        error = (recon - target).abs() if self.cfg.reconstruction == "l1" else (recon - target).pow(2)
        metrics = {"tokenizer/reconstruction": error.mean().detach()}
        metrics.update({f"tokenizer/{k}": v for k, v in vq_metrics.items()})
        return error.mean() + vq_loss, metrics
