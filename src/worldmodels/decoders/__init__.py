"""Decoders: latent → prediction of the observation (`.mean`, `.loss(obs)` summed per sample).
Registered in `DECODERS`; all take `(cfg, in_dim, obs_spec)`."""

from worldmodels.decoders.cnn import CNNDecoder
from worldmodels.decoders.mlp import MLPDecoder
from worldmodels.decoders.multi import MultiDecoder

__all__ = ["CNNDecoder", "MLPDecoder", "MultiDecoder"]
