"""The exponential moving average of a network's weights: the slow target networks of TD learning (Dreamer's
critic, TD-MPC2's Q-ensemble) and of self-supervised representation learners (JEPA's and CURL's target
encoders) all move by this one update."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, rate: float) -> None:
    """θ̄ ← θ̄ + rate·(θ − θ̄) for every parameter θ̄ of `target` and θ of `online` (the same architecture):
    `rate` 1 copies the online weights, 0 keeps the target. Buffers are not averaged."""
    for slow, fast in zip(target.parameters(), online.parameters(), strict=True):
        slow.lerp_(fast, rate)
