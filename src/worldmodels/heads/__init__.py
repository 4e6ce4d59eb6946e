"""Heads on a latent state: reward, continue, value, policy. Registered in their own registries."""

from worldmodels.heads import ensemble  # noqa: F401  (registers the ensemble reward head)
from worldmodels.heads.policy import CategoricalPolicy, GaussianPolicy, TanhNormalPolicy
from worldmodels.heads.scalar import ContinueHead, RewardHead, ValueHead

__all__ = ["CategoricalPolicy", "ContinueHead", "GaussianPolicy", "RewardHead", "TanhNormalPolicy", "ValueHead"]
