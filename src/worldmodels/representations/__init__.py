"""Representation learners: encoder features → latent state distribution. Registered in `REPRESENTATIONS`."""

from worldmodels.representations.gaussian import GaussianLatent

__all__ = ["GaussianLatent"]
