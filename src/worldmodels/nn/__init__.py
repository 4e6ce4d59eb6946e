"""Building blocks with no RL knowledge."""

from worldmodels.nn.dists import ClippedNormal, OneHotDist, SymlogMSE, TanhNormal, symexp, symlog
from worldmodels.nn.ema import ema_update
from worldmodels.nn.mlp import MLP, Activation, MLPConfig, activation
from worldmodels.nn.normaliser import Normaliser

__all__ = [
    "MLP",
    "Activation",
    "ClippedNormal",
    "MLPConfig",
    "Normaliser",
    "OneHotDist",
    "SymlogMSE",
    "TanhNormal",
    "activation",
    "ema_update",
    "symexp",
    "symlog",
]
