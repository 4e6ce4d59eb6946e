"""Contrastive representation learning with actions, CURL (Laskin et al. 2020) and CPC (van den Oord et al.
2018) style: two views of every observation by random shifts (frames padded by `shift` pixels and cropped
back, DrQ's augmentation; vector parts are left as they are), a query encoder f_θ and a key encoder f_θ̄
(an exponential moving average of f_θ), and the InfoNCE loss

    L(q, k) = −1/N Σ_i log softmax_j( cos(q_i, k_j) / temperature )_i

that tells each query's own key from the keys of the other N − 1 steps of the batch. Two pairings:

    views   q = f_θ(view₁(o_t)),               k = f_θ̄(view₂(o_t))          (CURL)
    next    q = g(f_θ(view₁(o_t)), a_{t+1}),   k = f_θ̄(view₂(o_{t+1}))      (CPC, one step, given the action)

loss = L_views + `next_coef` · L_next. The embedding is f_θ(o) of the unshifted observation, put on the
sphere of radius √embed_dim (a per-dimension scale of about 1): InfoNCE compares by cosine alone and leaves
the norm free to drift (a decoder-free Dreamer's fell to a per-dimension std of 0.014), while an RSSM or a
planner reads the vector as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from worldmodels.nn.augment import random_shift
from worldmodels.registry import REPRESENTATION_LEARNERS
from worldmodels.representations.embedding import (
    Metrics,
    TargetEncoderConfig,
    TargetEncoderLearner,
    frames,
    monitors,
)
from worldmodels.schema import non_negative, positive, unit
from worldmodels.spaces import Obs, obs_map


def info_nce(
    query: torch.Tensor, key: torch.Tensor, temperature: float, kept: torch.Tensor | None = None
) -> torch.Tensor:
    """InfoNCE of queries `[N, D]` against keys `[N, D]` (the positive of query i is key i), by cosine,
    averaged over the queries `kept` `[N]` (bool; None: all), every key a negative of the others: `[]`."""
    logits = F.normalize(query, dim=-1) @ F.normalize(key, dim=-1).T / temperature  # [N, N]
    labels = torch.arange(len(query), device=query.device)
    if kept is None:
        return F.cross_entropy(logits, labels)
    per_query = F.cross_entropy(logits, labels, reduction="none")  # [N]
    return (per_query * kept).sum() / kept.sum().clamp(min=1)


@REPRESENTATION_LEARNERS.register("contrastive")
class ContrastiveLearner(TargetEncoderLearner):
    """Observations `[..., *obs]` → f_θ(o) `[..., embed_dim]`, learnt by InfoNCE between views and steps."""

    @dataclass
    class Config(TargetEncoderConfig):
        shift: int = non_negative(4)
        """Largest random shift of a view, in pixels."""
        temperature: float = positive(0.1)
        next_coef: float = non_negative(1.0)
        """Weight of the next-step InfoNCE."""
        tau: float = unit(0.05)
        """EMA rate of the key encoder (CURL: 0.05)."""

    def encode(self, obs: Obs) -> torch.Tensor:
        """f_θ(o) on the sphere of radius √D (module docstring)."""
        return F.normalize(self.encoder(obs), dim=-1) * self.cfg.embed_dim**0.5

    def view(self, obs: Obs) -> Obs:
        """A randomly shifted copy of the frames in `obs` `[N, *obs]`."""
        return obs_map(lambda x: random_shift(x, self.cfg.shift) if x.dtype == torch.uint8 else x, obs)

    def loss(
        self, obs: Obs, action: torch.Tensor, is_first: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """L_views over every step of windows `[B, T, *obs]` plus L_next over their consecutive steps in one
        episode (a step that `is_first` `[B, T]` marks is no step's next)."""
        B, T = action.shape[:2]
        flat = frames(obs)
        query = self.encode(self.view(flat))  # [B·T, D]
        with torch.no_grad():
            key = self.target(self.view(flat))  # [B·T, D]
        views = info_nce(query, key, self.cfg.temperature)
        query, key = query.reshape(B, T, -1), key.reshape(B, T, -1)
        predicted = self.predictor(query[:, :-1], action[:, 1:].float())  # [B, T-1, D]
        kept = None if is_first is None else ~is_first[:, 1:].flatten()
        following = info_nce(predicted.flatten(0, 1), key[:, 1:].flatten(0, 1), self.cfg.temperature, kept)
        loss = views + self.cfg.next_coef * following
        metrics = {
            "repr/loss": loss.detach(),
            "repr/infonce_views": views.detach(),
            "repr/infonce_next": following.detach(),
        }
        return loss, metrics | monitors(query.flatten(0, 1))
