"""Multi-layer perceptron with optional LayerNorm, as used by every vector component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from worldmodels.nn.precision import widened

ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
Activation = Literal["silu", "elu", "relu", "tanh", "gelu"]


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """`layers` hidden layers of `hidden` units (Linear → LayerNorm → act), then a linear output.

    Input `[..., in_dim]`, output `[..., out_dim]`. With `out_dim=None` the output is the last hidden layer.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None,
        hidden: int = 256,
        layers: int = 2,
        act: str = "silu",
        norm: bool = True,
        out_scale: float = 1.0,
    ):
        super().__init__()
        blocks: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            blocks += [nn.Linear(dim, hidden, bias=not norm)]
            if norm:
                blocks += [nn.LayerNorm(hidden)]
            blocks += [activation(act)]
            dim = hidden
        if out_dim is not None:
            head = nn.Linear(dim, out_dim)
            with torch.no_grad():  # small (or zero) output init keeps early predictions near zero
                head.weight.mul_(out_scale)
                head.bias.zero_()
            blocks += [head]
            dim = out_dim
        self.net = nn.Sequential(*blocks)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return widened(self.net(x))  # under bfloat16 autocast, heads still build float32 distributions


@dataclass
class MLPConfig:
    """Width and depth shared by the MLP components; each component's `Config` extends it."""

    hidden: int = 256
    """Units per hidden layer."""
    layers: int = 2
    """Hidden layers."""
    act: Activation = "silu"
    """Activation."""
    norm: bool = True
    """LayerNorm before each activation."""

    def mlp(self, in_dim: int, out_dim: int | None, out_scale: float = 1.0) -> MLP:
        return MLP(in_dim, out_dim, self.hidden, self.layers, self.act, self.norm, out_scale)
