"""Dynamics: latent transition models. Registered in `DYNAMICS`."""

from worldmodels.dynamics.latent_mlp import LatentMLPDynamics

__all__ = ["LatentMLPDynamics"]
