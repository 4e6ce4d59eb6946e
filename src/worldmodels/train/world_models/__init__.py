"""The World Models pipeline (Ha & Schmidhuber 2018): collect → V → M → C, each stage resumable."""

from worldmodels.train.world_models.pipeline import WorldModelsTrainer

__all__ = ["WorldModelsTrainer"]
