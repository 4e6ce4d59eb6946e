"""Decoders: latent → reconstructed observation. Registered in `DECODERS`."""

from worldmodels.decoders.mlp import MLPDecoder

__all__ = ["MLPDecoder"]
