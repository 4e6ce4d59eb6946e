"""Training: the trainer and the phases agents declare, logging, checkpoints, evaluation and benchmarks."""

from __future__ import annotations

from worldmodels.train.loop import Trainer, build_agent

__all__ = ["Trainer", "build_agent"]
