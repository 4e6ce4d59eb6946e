"""Exploration in time for continuous actions (Eberhard et al. 2023, "Pink noise is all you need"), the
continuous counterpart of `holds.py`.

The noise an agent adds to its actions while collecting is read, step by step, from one sequence per
environment whose power spectrum across steps is ∝ 1/f^β (`nn/noise.py`), drawn afresh at each episode's
start and when it runs out. β = 0 is the usual white noise: independent at every step, it averages out
within a few steps and pushes nowhere. β = 1 (pink) keeps the same variance at every step but drifts in
one direction for many steps, so a system that must build up momentum gets it. With no learning at all, 40
episodes of MountainCarContinuous-v0 each way (actions σ·ε, clipped to ±1; `benchmarks/time_noise_reach.py`):
white noise at σ = 1 reaches the flag in none, pink at σ = 1 in 34, pink at σ = 0.5 in 17.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldmodels.nn.noise import coloured_noise
from worldmodels.schema import non_negative, positive

NoiseState = tuple[Tensor, Tensor]
"""Per environment: its sequences `[N, *shape, L]` and the next step of each `[N]` (L: none left)."""


@dataclass
class TimeNoiseConfig:
    """Fields of every agent whose collection noise can be coloured in time (its `Config` inherits them)."""

    noise_colour: float = non_negative(0.0)
    """β of the collection noise's 1/f^β spectrum across an episode's steps: 0 white, 1 pink."""
    noise_steps: int = positive(1000)
    """Length of each environment's noise sequence; a longer episode draws a new one when it runs out."""


def time_noise(
    like: Tensor,
    is_first: Tensor,
    state: NoiseState | None,
    cfg: TimeNoiseConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, NoiseState | None]:
    """Unit-variance Gaussian noise shaped like `like` `[N, ...]` and the state to carry to the next step.
    White (`randn_like`, no state) at β = 0; else each environment's next step of its coloured sequence,
    which `is_first` `[N]` (an episode's start) or its end replaces. Drawn from `generator`, else torch's
    global one."""
    if cfg.noise_colour == 0:
        return torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=generator), None
    N, length = like.shape[0], cfg.noise_steps
    if state is None:
        state = (like.new_zeros(*like.shape, length), torch.full((N,), length, device=like.device))
    sequences, position = state
    position = position.masked_fill(is_first.to(position.device).bool(), length)
    fresh = position >= length
    if bool(fresh.any()):
        sequences = sequences.clone()
        sequences[fresh] = coloured_noise(
            cfg.noise_colour, (int(fresh.sum()), *like.shape[1:]), length, like.device, generator
        )
        position = position.masked_fill(fresh, 0)
    index = position.view(N, *[1] * (like.dim() - 1), 1).expand(*like.shape, 1)
    return sequences.gather(-1, index).squeeze(-1), (sequences, position + 1)
