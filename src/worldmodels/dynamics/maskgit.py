"""Genie's dynamics model (Bruce et al. 2024, §2.1): MaskGIT (Chang et al. 2022) over the video tokenizer's
tokens, a spatiotemporal transformer that predicts the tokens of frame t+1 from the tokens of frames ≤ t
and the latent action ã_t, added as an embedding to frame t+1's tokens.

Training masks each token of frames 2…T with probability r ~ U[0.5, 1] (one r per clip; Genie) and
minimises the cross-entropy of the masked tokens. Generation starts from a fully masked frame and decodes
it in `steps` rounds (Genie: 25): each round samples every masked token at the model's `temperature`
and keeps the most confident, so that after round s only ⌊K·cos(π/2 · s/steps)⌋ tokens stay masked (the
cosine schedule), none after the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nn.st_transformer import STTransformer
from worldmodels.nn.transformer import TransformerConfig
from worldmodels.registry import MASKED_DYNAMICS
from worldmodels.schema import non_negative, param, positive


def still_masked(step: int, steps: int, tokens: int) -> int:
    """Tokens of a frame of `tokens` still masked after round `step` of `steps`: ⌊K·cos(π/2 · step/steps)⌋."""
    return math.floor(tokens * math.cos(math.pi / 2 * step / steps) + 1e-9) if step < steps else 0


def training_mask(shape: tuple[int, int, int], low: float, device: torch.device) -> torch.Tensor:
    """`[B, T, K]`: which tokens a training clip hides, each of frames 2…T with one rate r ~ U[low, 1] per clip."""
    B, T, K = shape
    rate = torch.empty(B, 1, 1, device=device).uniform_(low, 1.0)
    masked = torch.rand(B, T, K, device=device) < rate
    masked[:, 0] = False
    return masked


def decode(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    shape: tuple[int, int],
    mask_id: int,
    steps: int,
    temperature: float,
    device: torch.device,
) -> torch.Tensor:
    """MaskGIT's iterative decoding of `[B, K]` tokens: `logits_of(tokens)` `[B, K]` (`mask_id` where still
    masked) → logits `[B, K, V]`; each round draws the masked tokens (temperature 0: the most likely) and
    reveals the most confident of them, leaving `still_masked` hidden (module docstring)."""
    tokens = torch.full(shape, mask_id, dtype=torch.long, device=device)
    for step in range(1, steps + 1):
        logits = logits_of(tokens)
        if temperature > 0:
            drawn = torch.distributions.Categorical(logits=logits / temperature).sample()
        else:
            drawn = logits.argmax(-1)
        confidence = logits.softmax(-1).gather(-1, drawn[..., None])[..., 0]
        hidden = tokens == mask_id
        confidence = confidence.masked_fill(~hidden, math.inf)  # revealed tokens stay as they are
        keep = still_masked(step, steps, shape[1])
        rank = confidence.argsort(-1).argsort(-1)  # 0: the least confident
        tokens = torch.where(hidden & (rank >= keep), drawn, tokens)
    return tokens


@MASKED_DYNAMICS.register("maskgit")
class MaskGIT(nn.Module):
    """Tokens `[B, T, K]` and latent actions `[B, T−1]` → the masked-token loss; tokens of the next frame
    by iterative decoding (module docstring)."""

    @dataclass
    class Config(TransformerConfig):
        steps: int = positive(25)
        """Rounds of iterative decoding per generated frame (Genie: 25)."""
        temperature: float = non_negative(1.0)
        """Sampling temperature of generated tokens (0: the most likely)."""
        mask_low: float = param(0.5, lambda v: 0 < v <= 1, "a number in (0, 1]")
        """The masking rate of a training clip is drawn from U[mask_low, 1] (Genie: 0.5)."""

    def __init__(self, cfg: Config, vocab: int, tokens: int, actions: int):
        super().__init__()
        self.cfg, self.vocab, self.K, self.actions = cfg, vocab, tokens, actions
        self.token_embed = nn.Embedding(vocab + 1, cfg.dim)  # the last: [MASK]
        self.action_embed = nn.Embedding(actions + 1, cfg.dim)  # the last: no action (a clip's first frame)
        self.places = nn.Parameter(torch.randn(tokens, cfg.dim) * 0.02)
        self.transformer = STTransformer(cfg)
        self.head = nn.Linear(cfg.dim, vocab)

    def logits(self, tokens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Tokens `[B, T, K]` (`vocab` where masked) and the action that led to each frame `[B, T]`
        (`actions` for none) → logits of every token `[B, T, K, V]`."""
        x = self.token_embed(tokens) + self.places + self.action_embed(actions)[:, :, None]
        return self.head(self.transformer(x))

    def _led_to(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions after each frame `[B, n]` → the action that led to each of the n + 1 frames `[B, n + 1]`."""
        return torch.cat([actions.new_full((len(actions), 1), self.actions), actions], 1)

    def loss(self, tokens: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross-entropy of the masked tokens of frames 2…T `[B, T, K]`, given the latent actions `[B, T−1]`."""
        masked = training_mask(tokens.shape, self.cfg.mask_low, tokens.device)
        logits = self.logits(tokens.masked_fill(masked, self.vocab), self._led_to(actions))
        ce = F.cross_entropy(logits.flatten(0, -2), tokens.flatten(), reduction="none").view_as(tokens)
        weight = masked.float() / masked.sum().clamp_min(1)
        hit = (logits.argmax(-1) == tokens).float()
        loss = (ce * weight).sum()
        return loss, {"dynamics/masked_ce": loss.detach(), "dynamics/token_accuracy": (hit * weight).sum()}

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The tokens `[B, K]` of the frame after `tokens` `[B, T, K]`, given the action after each frame
        `[B, T]` (the last leads to the new frame), decoded in `steps` rounds."""
        led_to = self._led_to(actions[:, :-1])
        action = torch.cat([led_to, actions[:, -1:]], 1)  # [B, T + 1]

        def logits_of(new: torch.Tensor) -> torch.Tensor:
            clip = torch.cat([tokens, new[:, None]], 1)
            return self.logits(clip, action)[:, -1]

        shape = (len(tokens), self.K)
        return decode(logits_of, shape, self.vocab, self.cfg.steps, self.cfg.temperature, tokens.device)
