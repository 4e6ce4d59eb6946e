"""V of World Models (Ha & Schmidhuber 2018): a convolutional VAE, 64×64×3 frames ↔ z of 32 dims.

The paper's network is four stride-2 convolutions (32, 64, 128, 256 channels, ReLU) to a Gaussian
q(z | frame), and four transposed convolutions back to the frame. Both halves are the package's CNN
encoder and decoder with the paper's settings (ReLU, no normalisation); the loss is the summed squared
pixel error plus KL(q ‖ N(0, I)), where KL below `kl_tolerance` nats per dimension is not penalised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import distributions as D
from torch import nn

from worldmodels.decoders.cnn import CNNDecoder
from worldmodels.decoders.prediction import ImagePrediction
from worldmodels.encoders.cnn import CNNEncoder, ConvConfig
from worldmodels.losses import tolerant_elbo
from worldmodels.nn import Activation
from worldmodels.registry import AUTOENCODERS
from worldmodels.schema import non_negative, positive
from worldmodels.spaces import ObsSpec


@AUTOENCODERS.register("conv_vae")
class ConvVAE(nn.Module):
    """uint8 frames `[..., H, W, C]` → q(z) over `[..., latent_dim]`; z `[..., latent_dim]` → frame prediction."""

    @dataclass
    class Config(ConvConfig):
        act: Activation = "relu"
        """Activation of every convolution (the paper: ReLU)."""
        norm: bool = False
        """LayerNorm over channels (the paper has none)."""
        latent_dim: int = positive(32)
        """Size of z."""
        kl_tolerance: float = non_negative(0.5)
        """KL below this many nats per latent dimension is not penalised (the paper: 0.5)."""

    def __init__(self, cfg: Config, obs_spec: ObsSpec):
        super().__init__()
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        conv = {f.name: getattr(cfg, f.name) for f in fields(ConvConfig)}  # the stack's shape and precision
        self.encoder = CNNEncoder(CNNEncoder.Config(**conv), obs_spec)
        self.stats = nn.Linear(self.encoder.out_dim, 2 * cfg.latent_dim)
        self.decoder = CNNDecoder(CNNDecoder.Config(**conv), cfg.latent_dim, obs_spec)

    def forward(self, obs: torch.Tensor) -> D.Independent:
        """q(z | frame): a diagonal Normal over `[..., latent_dim]`."""
        mean, log_std = self.stats(self.encoder(obs)).chunk(2, -1)
        return D.Independent(D.Normal(mean, torch.exp(log_std.clamp(-10.0, 4.0))), 1)

    def decode(self, z: torch.Tensor) -> ImagePrediction:
        return self.decoder(z)

    def loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The negative ELBO of a batch of frames `[N, H, W, C]`, averaged over frames, and its parts."""
        q = self(obs)
        return tolerant_elbo(self.decode(q.rsample()).loss(obs).mean(), q, self.cfg.kl_tolerance)
