"""Model-predictive path integral control (Williams et al. 2017), the sampling planner of TD-MPC2.

Each iteration perturbs the current plan with Gaussian noise, scores the P candidates (plus any `prior`
candidates, e.g. rollouts of a learned policy) and moves the plan to the return-weighted average of the
best K of them (K = all in classic MPPI; TD-MPC2: 64 of 512 + 24), the weights a softmax at temperature λ:

    a^i = clip(μ + ε^i, low, high),  ε^i ~ N(0, σ²)      w_i = exp((R_i − max R) / λ) / Σ_j exp((R_j − max R) / λ)
    μ ← m·μ + (1 − m)·Σ_i w_i a^i
    σ ← m·σ + (1 − m)·sqrt(Σ_i w_i (a^i − μ)²)      (with `adapt_std`, as in TD-MPC2; classic MPPI keeps σ)

The plan executed is that centre μ (`select: mean`, classic MPPI) or one of the last iteration's weighted
candidates drawn with probability w_i (`select: sample`, TD-MPC2): where the returns are flat or the best
candidates lie on both sides of μ (push left or push right), the mean cancels out to an action none of
them proposed, while a drawn candidate is one the model scored. The warm start is μ either way.

Discrete actions sample one-hot sequences from per-step probabilities p and move p to Σ_i w_i onehot(a^i).
The warm start (the last plan's centre shifted one step) is `Planner.warm_start`; a terminal value is the
model's `value` in `rollout_objective`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from worldmodels.nn.dists import sample_index
from worldmodels.planners.protocol import (
    Objective,
    Plan,
    Planner,
    SamplingConfig,
    discrete_plan,
    sample,
    top_k,
)
from worldmodels.registry import PLANNERS
from worldmodels.schema import non_negative, positive


@PLANNERS.register("mppi")
class MPPI(Planner):
    @dataclass
    class Config(SamplingConfig):
        temperature: float = positive(1.0)
        """λ: lower concentrates the update on the best candidates (in units of the return)."""
        adapt_std: bool = True
        """Refit the noise std to the weighted spread of the candidates each iteration."""
        min_std: float = non_negative(0.02)
        """Floor of the adapted std, in units of the bound width: keeps the search from collapsing."""
        elites: int = non_negative(0)
        """Weight only the K best candidates of each iteration (TD-MPC2: 64); 0 weights all of them."""
        select: Literal["mean", "sample"] = "mean"
        """The plan executed: the centre μ, or a last-iteration candidate drawn by weight (TD-MPC2)."""

    @torch.no_grad()
    def optimize(
        self,
        objective: Objective,
        x0: torch.Tensor,
        reuse: torch.Tensor | None = None,
        prior: torch.Tensor | None = None,
    ) -> Plan:
        """Maximise `objective` from the centre `x0` `[B, H, A]` (means, or probabilities if discrete);
        `prior` `[B, K, H, A]`: fixed candidates scored with the samples every iteration (a policy's proposals)."""
        cfg, m = self.cfg, self.cfg.momentum
        low, high = self.bounds(x0.device)
        std = (cfg.init_std * (high - low)).expand_as(x0)  # [B, H, A]
        floor = cfg.min_std * (high - low)  # [A]
        centre = x0
        for _ in range(cfg.iterations):
            candidates = sample(centre, None if self.discrete else std, cfg.population, low, high)  # [B, P, H, A]
            if prior is not None:
                candidates = torch.cat([prior.to(candidates.dtype), candidates], 1)
            returns = objective(candidates)  # [B, P]
            if 0 < cfg.elites < candidates.shape[1]:
                candidates, returns = top_k(candidates, returns, cfg.elites)
            weight = torch.softmax((returns - returns.amax(1, keepdim=True)) / cfg.temperature, 1)
            new = torch.einsum("bp,bpha->bha", weight, candidates)
            if cfg.adapt_std and not self.discrete:
                spread = torch.einsum("bp,bpha->bha", weight, (candidates - new[:, None]) ** 2).sqrt()
                std = torch.maximum(m * std + (1 - m) * spread, floor)
            centre = m * centre + (1 - m) * new
            expected = (weight * returns).sum(1)
        if cfg.select == "sample":
            drawn = sample_index(weight)[:, None]  # [B, 1]
            actions = torch.gather(candidates, 1, drawn[:, :, None, None].expand(-1, -1, *candidates.shape[2:]))[:, 0]
            return Plan(actions, centre, returns.gather(1, drawn)[:, 0], std=None if self.discrete else std)
        actions = discrete_plan(centre) if self.discrete else centre
        return Plan(actions, centre, expected, std=None if self.discrete else std)
