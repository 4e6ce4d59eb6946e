"""β-VAE (Higgins et al. 2017) as a representation learner: q(z | o) = N(μ(o), σ(o)) from the encoder, a
decoder of the observation from a sample of z, and

    loss = E_q[−log p(o | z)] + β · KL(q(z | o) ‖ N(0, I))

per step (the reconstruction term is the decoder's summed squared error). The embedding is μ(o); actions
are not used, and there is no target network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from worldmodels.registry import DECODERS, REPRESENTATION_LEARNERS, component
from worldmodels.representations.embedding import Embedder, Metrics, frames, monitors
from worldmodels.schema import Spec, non_negative, positive
from worldmodels.spaces import Obs, ObsSpec


@REPRESENTATION_LEARNERS.register("vae")
class VAELearner(nn.Module):
    """Observations `[..., *obs]` → μ `[..., embed_dim]`, learnt by reconstruction and KL."""

    @dataclass
    class Config:
        encoder: Spec = component("encoder", "multi")
        """Features of the observation (a CNN for frames, an MLP for vectors)."""
        decoder: Spec = component("decoder", "multi")
        """The observation from z."""
        embed_dim: int = positive(32)
        """Size of z."""
        beta: float = non_negative(1.0)
        """Weight of the KL term (1: the ELBO)."""
        min_std: float = positive(0.01)
        """Floor of σ(o)."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        self.encoder = Embedder(cfg.encoder, obs_spec, 2 * cfg.embed_dim)
        self.decoder = DECODERS.build(cfg.decoder.name, cfg.decoder.cfg, in_dim=cfg.embed_dim, obs_spec=obs_spec)

    def posterior(self, obs: Obs) -> D.Independent:
        """q(z | o): a diagonal Normal over `[..., embed_dim]`."""
        mean, raw_std = self.encoder(obs).chunk(2, -1)
        return D.Independent(D.Normal(mean, F.softplus(raw_std) + self.cfg.min_std), 1)

    def encode(self, obs: Obs) -> torch.Tensor:
        return self.posterior(obs).mean

    def loss(
        self, obs: Obs, action: torch.Tensor, is_first: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """The β-weighted negative ELBO of every step of windows `[B, T, *obs]`, averaged over steps (each
        step on its own: actions and episode starts play no part)."""
        obs = frames(obs)
        q = self.posterior(obs)
        recon = self.decoder(q.rsample()).loss(obs).mean()
        prior = D.Independent(D.Normal(torch.zeros_like(q.mean), torch.ones_like(q.mean)), 1)
        kl = D.kl_divergence(q, prior).mean()
        loss = recon + self.cfg.beta * kl
        metrics = {"repr/loss": loss.detach(), "repr/recon": recon.detach(), "repr/kl": kl.detach()}
        return loss, metrics | monitors(q.mean)

    def update_target(self) -> None:
        """A VAE has no target network."""
