"""MuZero's categorical value and reward supports (Schrittwieser et al. 2020, Appendix F; Pohlen et al. 2018).

A scalar x is squashed by the invertible h(x) = sign(x)(√(|x| + 1) − 1) + εx, then written as a two-hot
distribution over the integers −S … S (the support, 2S + 1 bins); a prediction is the softmax over those
bins, decoded as h⁻¹(Σ p_i z_i).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-3


def h(x: Tensor, eps: float = EPS) -> Tensor:
    """h(x) = sign(x)(√(|x| + 1) − 1) + εx, elementwise."""
    return torch.sign(x) * (torch.sqrt(x.abs() + 1) - 1) + eps * x


def h_inverse(y: Tensor, eps: float = EPS) -> Tensor:
    """The exact inverse of `h`: sign(y)(((√(1 + 4ε(|y| + 1 + ε)) − 1) / 2ε)² − 1)."""
    root = (torch.sqrt(1 + 4 * eps * (y.abs() + 1 + eps)) - 1) / (2 * eps)
    return torch.sign(y) * (root**2 - 1)


def scalar_to_support(x: Tensor, size: int) -> Tensor:
    """Scalars `[...]` → two-hot probabilities over h-space bins −size … size `[..., 2·size + 1]`.
    Values beyond h⁻¹(±size) are clipped to the end bins."""
    y = h(x).clamp(-size, size)
    low = y.floor()
    upper_weight = y - low
    index = (low + size).long()
    probs = torch.zeros(*x.shape, 2 * size + 1, dtype=x.dtype, device=x.device)
    probs.scatter_(-1, index[..., None], (1 - upper_weight)[..., None])
    probs.scatter_add_(-1, (index + 1).clamp(max=2 * size)[..., None], upper_weight[..., None])
    return probs


def support_to_scalar(logits: Tensor) -> Tensor:
    """Logits over the support `[..., 2·size + 1]` → expected scalars `[...]`, decoded by h⁻¹."""
    size = (logits.shape[-1] - 1) // 2
    bins = torch.arange(-size, size + 1, dtype=logits.dtype, device=logits.device)
    return h_inverse((torch.softmax(logits, -1) * bins).sum(-1))


def support_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of logits `[..., 2·size + 1]` against the two-hot encoding of scalar targets `[...]`."""
    size = (logits.shape[-1] - 1) // 2
    return -(scalar_to_support(target, size) * torch.log_softmax(logits, -1)).sum(-1)
