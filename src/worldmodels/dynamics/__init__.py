"""Dynamics: latent transition models. Registered in `DYNAMICS`."""

from worldmodels.dynamics import ensemble  # noqa: F401
from worldmodels.dynamics.latent_mlp import LatentMLPDynamics
from worldmodels.dynamics.mdn_rnn import MDNRNN
from worldmodels.dynamics.muzero import MuZeroMLP, MuZeroResNet  # noqa: F401
from worldmodels.dynamics.rssm import RSSM

__all__ = ["MDNRNN", "RSSM", "LatentMLPDynamics"]
