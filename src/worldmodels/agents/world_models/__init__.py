"""World Models (Ha & Schmidhuber 2018) in one place: the agent (V, M and C, and each part's learning step),
the controller and its CMA-ES search, the four phases the trainer runs (collect → V → M → C), their data
on disk, the controller's real-environment rollouts, and the run's figures.
"""

from worldmodels.agents.world_models import phases  # noqa: F401  (registers the phase kinds)
from worldmodels.agents.world_models.agent import WorldModelsAgent

__all__ = ["WorldModelsAgent"]
