"""Representation learners: encoder features → latent state distribution. Registered in `REPRESENTATIONS`."""

from worldmodels.representations.conv_vae import ConvVAE
from worldmodels.representations.gaussian import GaussianLatent

__all__ = ["ConvVAE", "GaussianLatent"]
