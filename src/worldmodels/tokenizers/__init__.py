"""Tokenizers: frames ↔ grids of discrete tokens (IRIS's VQ-VAE)."""

from worldmodels.tokenizers.vq import VQTokenizer

__all__ = ["VQTokenizer"]
