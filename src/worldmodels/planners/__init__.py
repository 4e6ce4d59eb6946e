"""Planners: batched search over a model given as callbacks. Registered in `PLANNERS`."""

from worldmodels.planners import cem, gradient, icem, mppi  # noqa: F401
from worldmodels.planners.mcts import MCTS, MCTSConfig, SearchOutput, search

__all__ = ["MCTS", "MCTSConfig", "SearchOutput", "search"]
