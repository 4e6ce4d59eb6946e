"""Building blocks with no RL knowledge."""

from worldmodels.nn.dists import ClippedNormal, OneHotDist, SymlogMSE, TanhNormal, symexp, symlog
from worldmodels.nn.ema import ema_update
from worldmodels.nn.mlp import MLP, Activation, MLPConfig, activation

__all__ = [
    "MLP",
    "Activation",
    "ClippedNormal",
    "MLPConfig",
    "OneHotDist",
    "SymlogMSE",
    "TanhNormal",
    "activation",
    "ema_update",
    "symexp",
    "symlog",
]
