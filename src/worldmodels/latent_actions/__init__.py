"""Latent action models: discrete actions inferred between consecutive frames of video (Genie's LAM)."""

from worldmodels.latent_actions.vq_lam import VQLatentActions

__all__ = ["VQLatentActions"]
