"""Training: the loop, logging, checkpoints, evaluation and benchmarks."""

from __future__ import annotations

from pathlib import Path

from worldmodels.config import Config
from worldmodels.train.loop import Trainer, build_agent
from worldmodels.train.world_models import WorldModelsTrainer

PIPELINES: dict[str, type] = {"world_models": WorldModelsTrainer}
"""Agents trained by a pipeline of their own instead of the collect → replay → update loop."""


def make_trainer(cfg: Config, run_dir: Path, resume: bool = False) -> Trainer | WorldModelsTrainer:
    """The trainer of `cfg`'s agent: its own pipeline if it has one, else the generic loop."""
    return PIPELINES.get(cfg.agent.name, Trainer)(cfg, run_dir, resume=resume)


__all__ = ["PIPELINES", "Trainer", "WorldModelsTrainer", "build_agent", "make_trainer"]
