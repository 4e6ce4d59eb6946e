"""Replay: episode-aware sequence sampling over per-environment streams."""

from worldmodels.data.replay import Replay

__all__ = ["Replay"]
