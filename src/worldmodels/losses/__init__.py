"""Losses as pure functions of tensors (plus one small stateful return normaliser)."""

from worldmodels.losses.kl import detach_dist, kl_split
from worldmodels.losses.returns import ReturnScale, lambda_return

__all__ = ["ReturnScale", "detach_dist", "kl_split", "lambda_return"]
