"""Training: the loop, logging, checkpoints, evaluation and benchmarks."""

from worldmodels.train.loop import Trainer, build_agent

__all__ = ["Trainer", "build_agent"]
