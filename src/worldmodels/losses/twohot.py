"""Two-hot regression over fixed bins (DreamerV3 §"Robust predictions").

A scalar target is written as weights on the two bins around it (linear interpolation), the network
predicts a softmax over all bins, the loss is the cross-entropy, and the prediction is the expected
bin value. With bins evenly spaced in symlog space, targets of any scale train with one setting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldmodels.nn import symexp, symlog


def two_hot(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Scalars `[...]` → two-hot weights `[..., K]` over sorted `bins` `[K]`; values outside are clipped."""
    x = x.clamp(bins[0], bins[-1])
    above = torch.searchsorted(bins, x.detach().contiguous()).clamp(1, len(bins) - 1)  # first bin ≥ x
    below = above - 1
    weight_above = (x - bins[below]) / (bins[above] - bins[below])
    out = torch.zeros(*x.shape, len(bins), dtype=x.dtype, device=x.device)
    out.scatter_(-1, below[..., None], (1 - weight_above)[..., None])
    out.scatter_add_(-1, above[..., None], weight_above[..., None])
    return out


def symlog_bins(num: int = 255, low: float = -20.0, high: float = 20.0) -> torch.Tensor:
    """DreamerV3's bins: `num` points evenly spaced in symlog space (±20 covers |x| up to ~5·10⁸)."""
    return torch.linspace(low, high, num)


def _expected(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """symexp of the expected bin of `logits` `[..., K]`, `[...]`."""
    return symexp((F.softmax(logits, -1) * bins).sum(-1))


def _cross_entropy(logits: torch.Tensor, bins: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of `logits` `[..., K]` against the two-hot encoding of symlog(`target`), `[...]`."""
    return -(two_hot(symlog(target.detach()), bins) * F.log_softmax(logits, -1)).sum(-1)


KERNELS = {"mean": _expected, "loss": _cross_entropy}
"""The two functions of a prediction over all its bins, eager; `compiled_kernels()` gives them compiled."""


def compiled_kernels() -> dict:
    """`KERNELS` as `torch.compile`d graphs (once per shape): the softmax, the two-hot target and the sum
    fused by the compiler instead of five eager passes over the `[..., K]` logits, and so their gradients."""
    return {k: torch.compile(f, dynamic=False) for k, f in KERNELS.items()}


class TwoHotSymlog:
    """A scalar predicted as logits `[..., K]` over symlog-spaced `bins`; same protocol as `SymlogMSE`.
    `kernels`: the functions that compute its mean and loss (`KERNELS`, or `compiled_kernels()`)."""

    def __init__(self, logits: torch.Tensor, bins: torch.Tensor, kernels: dict = KERNELS):
        self.logits, self.bins, self.kernels = logits, bins, kernels

    @property
    def mean(self) -> torch.Tensor:
        """symexp of the expected bin, `[...]`."""
        return self.kernels["mean"](self.logits, self.bins)

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the two-hot encoding of symlog(target), `[...]`."""
        return self.kernels["loss"](self.logits, self.bins, target)
