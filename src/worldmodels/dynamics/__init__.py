"""Dynamics: latent transition models. Registered in `DYNAMICS`."""

from worldmodels.dynamics import ensemble, mlp  # noqa: F401
from worldmodels.dynamics.latent_mlp import LatentMLPDynamics

__all__ = ["LatentMLPDynamics"]
