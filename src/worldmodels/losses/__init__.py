"""Losses as pure functions of tensors (plus one small stateful return normaliser)."""

from worldmodels.losses.gmm import gmm_nll
from worldmodels.losses.kl import detach_dist, kl_split, tolerant_elbo
from worldmodels.losses.returns import ReturnScale, lambda_return
from worldmodels.losses.twohot import TwoHotSymlog, symlog_bins, two_hot

__all__ = [
    "ReturnScale",
    "TwoHotSymlog",
    "detach_dist",
    "gmm_nll",
    "kl_split",
    "lambda_return",
    "symlog_bins",
    "tolerant_elbo",
    "two_hot",
]
