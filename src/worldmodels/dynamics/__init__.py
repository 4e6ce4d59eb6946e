"""Dynamics: latent transition models (`DYNAMICS`) and token sequence models (`TOKEN_MODELS`)."""

from worldmodels.dynamics import ensemble  # noqa: F401
from worldmodels.dynamics.latent_mlp import LatentMLPDynamics
from worldmodels.dynamics.mdn_rnn import MDNRNN
from worldmodels.dynamics.muzero import MuZeroMLP, MuZeroResNet  # noqa: F401
from worldmodels.dynamics.rssm import RSSM
from worldmodels.dynamics.token_transformer import TokenTransformer

__all__ = ["MDNRNN", "RSSM", "LatentMLPDynamics", "TokenTransformer"]
