"""Encoders: observation → feature vector. Registered in `ENCODERS`; all take `(cfg, obs_spec)`."""

from worldmodels.encoders.cnn import CNNEncoder
from worldmodels.encoders.mlp import MLPEncoder
from worldmodels.encoders.multi import MultiEncoder

__all__ = ["CNNEncoder", "MLPEncoder", "MultiEncoder"]
