"""Gradient-based planning: backpropagate the predicted return through a differentiable model into the
action sequence and follow it with Adam, from several starting sequences (restarts), keeping the best.

Actions are parametrised inside the bounds as a = mid + half · tanh(u), so every step respects them.
Restart 0 starts from the warm start (the last plan shifted), the others from random sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldmodels.errors import ConfigError
from worldmodels.planners.protocol import Objective, Plan, Planner
from worldmodels.registry import PLANNERS
from worldmodels.schema import positive


@PLANNERS.register("gradient")
class GradientPlanner(Planner):
    @dataclass
    class Config:
        horizon: int = positive(15)
        """Planned steps H."""
        restarts: int = positive(8)
        """Sequences optimised side by side R; the best one is executed."""
        iterations: int = positive(50)
        """Adam steps per action."""
        lr: float = positive(0.1)
        """Adam learning rate on the unbounded parameters u."""
        init_std: float = positive(0.5)
        """Std of the random restarts' u."""

    def __init__(self, cfg: Config, action_dim: int, discrete: bool = False, low=-1.0, high=1.0):
        if discrete:
            raise ConfigError("the gradient planner needs continuous actions; use cem or mppi for a discrete space")
        super().__init__(cfg, action_dim, discrete, low, high)

    def optimize(self, objective: Objective, x0: torch.Tensor, reuse: torch.Tensor | None = None) -> Plan:
        """Maximise a differentiable `objective` from `x0` `[B, H, A]` plus R − 1 random restarts."""
        cfg = self.cfg
        B, H, A = x0.shape
        low, high = self.bounds(x0.device)
        mid, half = (high + low) / 2, (high - low) / 2

        def actions(u: torch.Tensor) -> torch.Tensor:
            return mid + half * torch.tanh(u)

        warm = torch.atanh(((x0 - mid) / half).clamp(-0.995, 0.995))[:, None]  # [B, 1, H, A]
        rand = cfg.init_std * torch.randn(B, cfg.restarts - 1, H, A, device=x0.device)
        u = torch.cat([warm, rand], 1).requires_grad_(True)  # [B, R, H, A]
        opt = torch.optim.Adam([u], lr=cfg.lr)
        with torch.enable_grad():
            for _ in range(cfg.iterations):
                loss = -objective(actions(u)).sum()
                (u.grad,) = torch.autograd.grad(loss, [u])  # gradients reach the plan only, never the model
                opt.step()
        with torch.no_grad():
            final = actions(u.detach())
            returns = objective(final)  # [B, R]
            best = returns.argmax(1)
            plan = final[torch.arange(B, device=x0.device), best]  # [B, H, A]
        return Plan(plan, plan, returns.amax(1))
