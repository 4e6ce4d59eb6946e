"""Representations: encoder features → latent state distribution (`REPRESENTATIONS`), and representation
learners with their own objective, observations → embeddings (`REPRESENTATION_LEARNERS`)."""

from worldmodels.representations.contrastive import ContrastiveLearner
from worldmodels.representations.conv_vae import ConvVAE
from worldmodels.representations.gaussian import GaussianLatent
from worldmodels.representations.jepa import JEPALearner
from worldmodels.representations.mlp_vae import MLPVAE
from worldmodels.representations.vae import VAELearner

__all__ = ["ContrastiveLearner", "ConvVAE", "GaussianLatent", "JEPALearner", "MLPVAE", "VAELearner"]
