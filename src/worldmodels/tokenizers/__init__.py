"""Tokenizers: frames ↔ grids of discrete tokens (IRIS's VQ-VAE, Genie's spatiotemporal VQ-VAE)."""

from worldmodels.tokenizers.st_vqvae import STVQVAE
from worldmodels.tokenizers.vq import VQTokenizer

__all__ = ["STVQVAE", "VQTokenizer"]
