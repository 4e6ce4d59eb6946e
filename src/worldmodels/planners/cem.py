"""Cross-entropy method over action sequences (Rubinstein 1999; as planner in PETS, Chua et al. 2018, and PlaNet).

Each iteration samples P sequences from the current distribution, scores them with the objective, and
refits the distribution to the K best (the elites), keeping a fraction `momentum` of the old one:

    continuous:  a ~ clip(N(μ, σ²), low, high)      μ ← m·μ + (1 − m)·mean(elites),  σ ← m·σ + (1 − m)·std(elites)
    discrete:    a_t ~ Cat(p_t)                     p ← m·p + (1 − m)·frequency(elites)

The executed plan is the final mean (continuous) or the most probable action per step (discrete).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldmodels.planners.protocol import (
    Objective,
    Plan,
    Planner,
    SamplingConfig,
    check_elites,
    discrete_plan,
    sample,
    top_k,
)
from worldmodels.registry import PLANNERS
from worldmodels.schema import positive


@PLANNERS.register("cem")
class CEM(Planner):
    @dataclass
    class Config(SamplingConfig):
        elites: int = positive(50)
        """Best candidates K the distribution is refitted to."""

    def __init__(self, cfg: Config, action_dim: int, discrete: bool = False, low=-1.0, high=1.0):
        super().__init__(cfg, action_dim, discrete, low, high)
        check_elites(cfg.elites, cfg.population, "cem")

    @torch.no_grad()
    def optimize(self, objective: Objective, x0: torch.Tensor, reuse: torch.Tensor | None = None) -> Plan:
        """Maximise `objective` from the centre `x0` `[B, H, A]` (means, or probabilities if discrete)."""
        cfg, m = self.cfg, self.cfg.momentum
        low, high = self.bounds(x0.device)
        centre = x0
        std = (cfg.init_std * (high - low)).expand_as(x0)  # [B, H, A]
        for _ in range(cfg.iterations):
            candidates = sample(centre, None if self.discrete else std, cfg.population, low, high)  # [B, P, H, A]
            elites, elite_returns = top_k(candidates, objective(candidates), cfg.elites)  # [B, K, H, A]
            centre = m * centre + (1 - m) * elites.mean(1)
            if not self.discrete:
                std = m * std + (1 - m) * elites.std(1, correction=0)
        actions = discrete_plan(centre) if self.discrete else centre
        return Plan(actions, centre, elite_returns.mean(1), elites)
