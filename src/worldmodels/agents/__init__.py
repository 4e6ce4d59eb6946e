"""Agents: one algorithm per file. Importing this package fills every registry."""

import worldmodels.decoders  # noqa: F401
import worldmodels.denoisers  # noqa: F401
import worldmodels.dynamics  # noqa: F401
import worldmodels.encoders  # noqa: F401
import worldmodels.heads  # noqa: F401
import worldmodels.latent_actions  # noqa: F401
import worldmodels.representations  # noqa: F401
import worldmodels.tokenizers  # noqa: F401
from worldmodels.agents.base import Agent
from worldmodels.agents.diamond import DIAMONDAgent  # noqa: F401
from worldmodels.agents.dreamer import DreamerAgent
from worldmodels.agents.genie import GenieAgent  # noqa: F401
from worldmodels.agents.iris import IRISAgent  # noqa: F401
from worldmodels.agents.jepa_wm import JEPAWorldModel  # noqa: F401
from worldmodels.agents.latent_mlp import LatentMLPAgent
from worldmodels.agents.muzero import MuZeroAgent  # noqa: F401  (imports worldmodels.planners)
from worldmodels.agents.pets import PETSAgent  # noqa: F401
from worldmodels.agents.planet import PlaNetAgent  # noqa: F401
from worldmodels.agents.tdmpc2 import TDMPC2Agent  # noqa: F401
from worldmodels.agents.world_models import WorldModelsAgent  # noqa: F401

__all__ = ["Agent", "DreamerAgent", "LatentMLPAgent"]
