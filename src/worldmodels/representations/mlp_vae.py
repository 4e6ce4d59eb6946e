"""V of World Models for state vectors: an MLP VAE, `[..., D]` ↔ z, where the paper's V compresses frames.

A state is already compact, but its dimensions come in any units (MountainCar's velocity spans ±0.07, its
position 1.8), so V reads each dimension in units of its spread (running moments of the frames it trains on,
frozen once V stops training) and reconstructs it there. The decoder is a Gaussian of fixed standard
deviation `recon_std` spreads: a frame's thousands of pixels outweigh the KL term by themselves, a state's few
dimensions do only when each error is costly, else the posterior keeps little of the state.

    loss = Σ_d ((x̂_d − x_d) / recon_std)² + max(KL(q(z | x) ‖ N(0, I)), kl_tolerance · latent_dim)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from worldmodels.decoders.prediction import VectorPrediction
from worldmodels.losses import tolerant_elbo
from worldmodels.nn import MLPConfig, Normaliser
from worldmodels.registry import AUTOENCODERS
from worldmodels.schema import non_negative, positive
from worldmodels.spaces import ObsSpec


@AUTOENCODERS.register("mlp_vae")
class MLPVAE(nn.Module):
    """State vectors `[..., D]` → q(z) over `[..., latent_dim]`; z `[..., latent_dim]` → a state prediction."""

    @dataclass
    class Config(MLPConfig):
        hidden: int = positive(64)
        latent_dim: int = positive(8)
        """Size of z."""
        kl_tolerance: float = non_negative(0.5)
        """KL below this many nats per latent dimension is not penalised (as the paper's V)."""
        recon_std: float = positive(0.05)
        """Standard deviation of the decoder's Gaussian, in units of each dimension's spread."""
        min_std: float = positive(1e-3)
        """Floor of a dimension's spread (a dimension that never moves is not blown up)."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        if obs_spec.is_image or len(obs_spec.shape) != 1:
            raise ValueError(f"mlp_vae reads state vectors [D], got observations {obs_spec}; frames take conv_vae")
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        dim = obs_spec.shape[0]
        self.moments = Normaliser(dim)
        self.encoder = cfg.mlp(dim, 2 * cfg.latent_dim)
        self.decoder = cfg.mlp(cfg.latent_dim, dim)

    def _standardised(self, obs: torch.Tensor) -> torch.Tensor:
        return self.moments.normalise(obs.float(), self.cfg.min_std)

    def forward(self, obs: torch.Tensor) -> D.Independent:
        """q(z | state): a diagonal Normal over `[..., latent_dim]`."""
        mean, log_std = self.encoder(self._standardised(obs)).chunk(2, -1)
        return D.Independent(D.Normal(mean, torch.exp(log_std.clamp(-10.0, 4.0))), 1)

    def decode(self, z: torch.Tensor) -> VectorPrediction:
        """The state from z; its `mean` in the observation's own units."""
        return VectorPrediction(self.decoder(z), use_symlog=False, moments=self.moments, min_std=self.cfg.min_std)

    def loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The negative ELBO of a batch of states `[N, D]`, averaged over states, and its parts; with gradients
        on, the batch first updates the running moments."""
        if torch.is_grad_enabled():
            self.moments.update(obs.float().reshape(-1, obs.shape[-1]))
        q = self(obs)
        error = (self.decoder(q.rsample()) - self._standardised(obs)) / self.cfg.recon_std
        return tolerant_elbo((error**2).sum(-1).mean(), q, self.cfg.kl_tolerance)
