"""What the representation learners share: a registered encoder followed by a linear map to the embedding,
an action-conditioned predictor of the next embedding, and the collapse monitors every learner logs."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.losses.collapse import effective_rank, embedding_std
from worldmodels.nn import MLP, ema_update
from worldmodels.registry import ENCODERS, component
from worldmodels.schema import Spec, positive, unit
from worldmodels.spaces import Obs, ObsSpec, obs_map

Metrics = dict[str, torch.Tensor]


class Embedder(nn.Module):
    """Observations `[..., *obs]` → embeddings `[..., out_dim]`: the `encoder` component, then a Linear."""

    def __init__(self, encoder: Spec, obs_spec: ObsSpec, out_dim: int):
        super().__init__()
        features = ENCODERS.build(encoder.name, encoder.cfg, obs_spec=obs_spec)
        self.net = nn.Sequential(features, nn.Linear(features.out_dim, out_dim))

    def forward(self, obs: Obs) -> torch.Tensor:
        return self.net(obs)


class Predictor(nn.Module):
    """(embedding `[..., D]`, action `[..., A]`) → the next embedding `[..., D]`: z + MLP([z, a]), so an
    untrained predictor starts near "nothing moves"."""

    def __init__(self, embed_dim: int, action_dim: int, hidden: int, layers: int):
        super().__init__()
        self.net = MLP(embed_dim + action_dim, embed_dim, hidden, layers, out_scale=0.1)

    def forward(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return z + self.net(torch.cat([z, action], -1))


def frames(obs: Obs) -> Obs:
    """Windows `[B, T, *obs]` → one batch of steps `[B·T, *obs]`."""
    return obs_map(lambda x: x.flatten(0, 1), obs)


def monitors(z: torch.Tensor) -> Metrics:
    """The collapse monitors of embeddings `[N, D]`: the mean per-dimension std and the effective rank."""
    z = z.detach()
    return {"repr/embed_std": embedding_std(z), "repr/effective_rank": effective_rank(z)}


@dataclass
class TargetEncoderConfig:
    """The options of every `TargetEncoderLearner`; each learner's `Config` extends them."""

    encoder: Spec = component("encoder", "multi")
    """Features of the observation (a CNN for frames, an MLP for vectors)."""
    embed_dim: int = positive(32)
    predictor_hidden: int = positive(256)
    predictor_layers: int = positive(2)
    tau: float = unit(0.01)
    """EMA rate of the target encoder: θ̄ ← θ̄ + τ(θ − θ̄) after each update (1: a stop-gradient copy)."""


class TargetEncoderLearner(nn.Module):
    """What the contrastive and JEPA learners share: an online encoder of embeddings (`encode`), a slow EMA
    copy of it (`target`, moved by `update_target` at `cfg.tau`) and an action-conditioned predictor of the
    next embedding."""

    def __init__(self, cfg: TargetEncoderConfig, obs_spec: ObsSpec, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        self.encoder = Embedder(cfg.encoder, obs_spec, cfg.embed_dim)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)
        self.predictor = Predictor(cfg.embed_dim, action_dim, cfg.predictor_hidden, cfg.predictor_layers)

    def encode(self, obs: Obs) -> torch.Tensor:
        return self.encoder(obs)

    def update_target(self) -> None:
        ema_update(self.target, self.encoder, self.cfg.tau)
