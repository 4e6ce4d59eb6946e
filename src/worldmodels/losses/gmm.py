"""Negative log-likelihood of a Gaussian mixture, per element (the MDN-RNN's loss, Ha & Schmidhuber 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gmm_nll(x: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """−ln Σ_k π_k N(x; μ_k, σ_k) for every element of `x` `[...]`, with mixture logits, means and log-stds
    `[..., K]` (π = softmax(logits)). Returns `[...]`; computed in log space, so far tails stay finite."""
    x = x.unsqueeze(-1)
    log_normal = -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return -torch.logsumexp(F.log_softmax(logits, -1) + log_normal, -1)
