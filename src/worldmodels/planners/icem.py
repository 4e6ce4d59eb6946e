"""Improved CEM (iCEM; Pinneri et al. 2020): CEM with temporally coloured noise, a shrinking population,
and elites kept from the previous iteration and, shifted by one step, from the previous action.

    noise with power spectrum ∝ 1/f^β along the horizon (β = 0 white, β = 2 smooth, "brown")
    population at iteration i:  P_i = max(P · γ^(−i), 2K)
    candidates: samples + a fraction ξ of the last elites (iteration 0: the last plan's elites, shifted)
                + the mean itself at the last iteration
    executed plan: the best candidate seen at the last iteration
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldmodels.errors import ConfigError
from worldmodels.nn.noise import coloured_noise
from worldmodels.planners.protocol import Objective, Plan, Planner, SamplingConfig, check_elites, clamp, top_k
from worldmodels.registry import PLANNERS
from worldmodels.schema import non_negative, param, positive, unit


@PLANNERS.register("icem")
class ICEM(Planner):
    @dataclass
    class Config(SamplingConfig):
        population: int = positive(300)
        elites: int = positive(30)
        """Best candidates K the distribution is refitted to."""
        decay: float = param(1.25, lambda v: v >= 1, "a number >= 1")
        """γ: the population shrinks by this factor per iteration."""
        colour: float = non_negative(2.0)
        """β: exponent of the noise's 1/f^β power spectrum along the horizon."""
        keep_elites: float = unit(0.3)
        """ξ: fraction of the elites carried into the next iteration (and, shifted, the next action)."""

    def __init__(self, cfg: Config, action_dim: int, discrete: bool = False, low=-1.0, high=1.0):
        if discrete:
            raise ConfigError("icem plans continuous actions only; use cem or mppi for a discrete action space")
        super().__init__(cfg, action_dim, discrete, low, high)
        check_elites(cfg.elites, cfg.population, "icem")

    @torch.no_grad()
    def optimize(self, objective: Objective, x0: torch.Tensor, reuse: torch.Tensor | None = None) -> Plan:
        """Maximise `objective` from the mean `x0` `[B, H, A]`; `reuse` `[B, K', H, A]`: last plan's shifted elites."""
        cfg, m = self.cfg, self.cfg.momentum
        B, H, A = x0.shape
        low, high = self.bounds(x0.device)
        mean, std = x0, (cfg.init_std * (high - low)).expand_as(x0)
        keep = int(cfg.keep_elites * cfg.elites)
        elites = reuse
        for i in range(cfg.iterations):
            size = max(int(cfg.population * cfg.decay**-i), 2 * cfg.elites)
            noise = coloured_noise(cfg.colour, (B, size, A), H, x0.device).transpose(2, 3)  # [B, P_i, H, A]
            parts = [clamp(mean[:, None] + std[:, None] * noise, low, high)]
            if elites is not None and keep > 0:
                parts.append(elites[:, :keep])
            if i == cfg.iterations - 1:
                parts.append(mean[:, None])
            candidates = torch.cat(parts, 1)
            elites, elite_returns = top_k(candidates, objective(candidates), cfg.elites)
            mean = m * mean + (1 - m) * elites.mean(1)
            std = m * std + (1 - m) * elites.std(1, correction=0)
        return Plan(elites[:, 0], mean, elite_returns[:, 0], elites)
