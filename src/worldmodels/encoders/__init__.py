"""Encoders: observation → feature vector. Registered in `ENCODERS`; all take `(cfg, obs_spec)`."""

from worldmodels.encoders.cnn import CNNEncoder
from worldmodels.encoders.impala import ImpalaEncoder
from worldmodels.encoders.mlp import MLPEncoder
from worldmodels.encoders.multi import MultiEncoder
from worldmodels.encoders.vit import ViTEncoder

__all__ = ["CNNEncoder", "ImpalaEncoder", "MLPEncoder", "MultiEncoder", "ViTEncoder"]
