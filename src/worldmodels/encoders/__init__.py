"""Encoders: observation → feature vector. Registered in `ENCODERS`."""

from worldmodels.encoders.mlp import MLPEncoder

__all__ = ["MLPEncoder"]
