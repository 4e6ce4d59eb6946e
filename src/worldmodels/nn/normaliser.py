"""Running moments of data, for inputs and targets given in units of their spread (PETS's ensemble, the
vector decoder's `normalise`)."""

from __future__ import annotations

import torch
from torch import nn

from worldmodels import distributed


class Normaliser(nn.Module):
    """Running mean and std of `[N, D]` data, kept as buffers so that checkpoints hold them."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the statistics of `x` `[N, D]` (Chan et al.'s parallel variance); under torchrun, of every
        rank's `x` together, so the ranks keep the same statistics."""
        n, mean, var = distributed.moments(x)
        total = self.count + n
        delta = mean - self.mean
        self.var.copy_((self.count * self.var + n * var + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt().clamp(min=1e-6)

    def normalise(self, x: torch.Tensor, min_std: float = 0.0) -> torch.Tensor:
        """`x` in units of the running std (floored at `min_std`) about the running mean."""
        return (x - self.mean) / self.std.clamp(min=min_std)

    def denormalise(self, x: torch.Tensor, min_std: float = 0.0) -> torch.Tensor:
        """The inverse of `normalise`: `x` in units of the std back in the data's own."""
        return self.mean + self.std.clamp(min=min_std) * x
