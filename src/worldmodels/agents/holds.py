"""Exploration in time (εz-greedy, Dabney et al. 2021), shared by agents that act on discrete actions.

At a step not yet held where the agent cannot tell its actions apart (its policy's entropy is at least
`hold_entropy` of the uniform's, ln A), with probability ε a uniformly random action is held for n steps,
P(n ≥ k) = k^−(μ−1) (μ = `hold_exponent`, at most `hold_max`), instead of the agent's own action; the hold
ends early at a state where the policy prefers an action, and at an episode's start. Per-step noise
cannot leave the start of a task whose rewards are the same for every action until a far goal (−1 per step:
Acrobot, MountainCar); held actions travel. Over 200 episodes, uniform play reaches Acrobot-v1's goal in 5
and MountainCar-v0's in none; holding at every step, in 37 and 7 (`python benchmarks/holds_reach.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worldmodels.schema import param, positive, unit

HoldState = tuple[Tensor, Tensor]
"""Per environment `[N]`: the held action and the steps it has left (≤ 0: none)."""


@dataclass
class HoldConfig:
    """Fields of every agent that can explore with held actions (its `Config` inherits them)."""

    hold_entropy: float = unit(0.95)
    """A hold may start, and lasts, only where the policy's entropy is at least this share of ln A."""
    hold_exponent: float = param(2.0, lambda v: v > 1, "a number > 1")
    """μ of the held durations' tail P(n ≥ k) = k^−(μ−1) (εz-greedy: 2, a mean of ~ln of the cap)."""
    hold_max: int = positive(100)
    """The longest hold, in steps."""


def hold(
    action: Tensor, probs: Tensor, is_first: Tensor, state: HoldState | None, probability: float, cfg: HoldConfig
) -> tuple[Tensor, HoldState]:
    """The held random action where one is held (or starts), else the agent's `action` `[N]` (indices);
    `probs` `[N, A]` is the agent's policy, `is_first` `[N]` marks episode starts, `probability` is ε."""
    N, A = probs.shape
    held, left = state if state is not None else (torch.zeros_like(action), torch.zeros_like(action))
    left = left.masked_fill(is_first.to(left.device).bool(), 0)
    p = probs.float().clamp(min=1e-12)
    undecided = -(p * p.log()).sum(-1) >= cfg.hold_entropy * math.log(A)
    left = left.masked_fill(~undecided, 0)  # a hold ends where the policy prefers an action
    start = (left <= 0) & undecided & (torch.rand(N, device=action.device) < probability)
    steps = torch.rand(N, device=action.device).clamp(min=1e-6).pow(-1 / (cfg.hold_exponent - 1)).floor()
    held = torch.where(start, torch.randint_like(action, A), held)
    left = torch.where(start, steps.long().clamp(1, cfg.hold_max), left)
    return torch.where(left > 0, held, action), (held, left - 1)
