"""λ-returns and the percentile return scale of DreamerV3."""

from __future__ import annotations

import torch
from torch import nn

from worldmodels import distributed


def lambda_return(
    reward: torch.Tensor, discount: torch.Tensor, value: torch.Tensor, lam: float, cut: torch.Tensor | None = None
) -> torch.Tensor:
    """TD(λ) targets over a trajectory, computed backwards from a bootstrap value.

    R_t = r_t + d_t · ((1 − λ) · v_{t+1} + λ · R_{t+1}),   R_H = v_H     (DreamerV1 eq. 6)

    reward `[..., H]`: reward on the step out of state t; discount `[..., H]`: γ · P(continue) of
    that step; value `[..., H + 1]`: critic value of states 0..H. Returns `[..., H]`.
    `cut` `[..., H]` (bool), for replayed windows that run from one episode into the next: where the step
    out of state t starts a new episode, R_t = v_t, and the states before bootstrap from it.
    """
    if value.shape[-1] != reward.shape[-1] + 1:
        raise ValueError(f"value needs one more step than reward: {tuple(value.shape)} vs {tuple(reward.shape)}")
    returns = []
    last = value[..., -1]
    for t in reversed(range(reward.shape[-1])):
        last = reward[..., t] + discount[..., t] * ((1 - lam) * value[..., t + 1] + lam * last)
        if cut is not None:
            last = torch.where(cut[..., t], value[..., t], last)
        returns.append(last)
    return torch.stack(returns[::-1], -1)


class ReturnScale(nn.Module):
    """EMA of the 5th–95th percentile range of returns, floored at 1 (DreamerV3 §"Robust predictions").

    Dividing advantages by this scale makes one entropy coefficient work across reward scales, while
    the floor avoids amplifying noise when returns are small.
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95, floor: float = 1.0):
        super().__init__()
        self.decay, self.low, self.high, self.floor = decay, low, high, floor
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> torch.Tensor:
        """Fold a batch of returns into the EMA; returns the scale to divide by. Under torchrun the
        percentiles are those of every rank's returns together (the global batch), so the ranks agree."""
        flat = distributed.gather(returns.detach().float().flatten())
        spread = torch.quantile(flat, self.high) - torch.quantile(flat, self.low)
        ema = self.range * self.decay + (1 - self.decay) * spread
        self.range.copy_(torch.where(self.initialised, ema, spread))  # a branch would read the flag on the host
        self.initialised.fill_(True)
        return self.scale

    @property
    def scale(self) -> torch.Tensor:
        return torch.clamp(self.range, min=self.floor)
