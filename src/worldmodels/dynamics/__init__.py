"""Dynamics: latent transition models (`DYNAMICS`), token sequence models (`TOKEN_MODELS`) and masked token
models of the next frame (`MASKED_DYNAMICS`)."""

from worldmodels.dynamics import ensemble  # noqa: F401
from worldmodels.dynamics.latent_mlp import LatentMLPDynamics
from worldmodels.dynamics.maskgit import MaskGIT
from worldmodels.dynamics.mdn_rnn import MDNRNN
from worldmodels.dynamics.muzero import MuZeroMLP, MuZeroResNet  # noqa: F401
from worldmodels.dynamics.rssm import RSSM
from worldmodels.dynamics.token_transformer import TokenTransformer

__all__ = ["MDNRNN", "RSSM", "LatentMLPDynamics", "MaskGIT", "TokenTransformer"]
