"""MuZero's networks (Schrittwieser et al. 2020): representation h, dynamics g and prediction f.

    s⁰ = h(o_t)                   hidden state, min-max scaled to [0, 1] per sample
    sᵏ, rᵏ = g(sᵏ⁻¹, aᵏ)          next hidden state (scaled the same way) and reward logits
    pᵏ, vᵏ = f(sᵏ)                policy logits and value logits

Rewards and values are categorical over a support (`losses.support`); both variants below share this
interface, so the agent and the search never see which one is in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from worldmodels.errors import ConfigError
from worldmodels.nn import MLPConfig
from worldmodels.registry import NETWORKS
from worldmodels.schema import positive


def scale_hidden(s: Tensor) -> Tensor:
    """Min-max scale each sample's hidden state `[B, ...]` to [0, 1] (Appendix G)."""
    flat = s.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp(min=1e-5)).view_as(s)


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """Identity forward; multiplies the gradient flowing back through `x` by `scale`."""
    return x * scale + x.detach() * (1 - scale)


def _zero(layer: nn.Linear | nn.Conv2d) -> nn.Module:
    """Zero-initialised output: value and reward start at exactly 0, the policy uniform."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@dataclass
class SupportConfig:
    value_support: int = positive(10)
    """Value bins −S … S in h-space (covers |v| ≤ h⁻¹(S), ≈ 120 for S = 10)."""
    reward_support: int = positive(5)
    """Reward bins, the same way."""


@NETWORKS.register("muzero_mlp")
class MuZeroMLP(nn.Module):
    """h, g, f as MLPs on vector observations `[B, D]`; hidden states `[B, state_dim]`."""

    @dataclass
    class Config(MLPConfig, SupportConfig):
        hidden: int = 64
        layers: int = 1
        act: Literal["silu", "elu", "relu", "tanh", "gelu"] = "elu"
        state_dim: int = positive(64)
        """Size of the hidden state."""

    def __init__(self, cfg: Config, obs_shape: tuple[int, ...], action_dim: int):
        super().__init__()
        if len(obs_shape) != 1:
            raise ConfigError(
                f"dynamics 'muzero_mlp' takes vector observations, got shape {obs_shape}; "
                "use 'muzero_resnet' for images"
            )
        self.cfg, self.action_dim = cfg, action_dim
        S, R, V = cfg.state_dim, 2 * cfg.reward_support + 1, 2 * cfg.value_support + 1
        self.representation_net = cfg.mlp(obs_shape[0], S)
        self.dynamics_net = cfg.mlp(S + action_dim, S)
        self.reward_net = nn.Sequential(cfg.mlp(S, None), _zero(nn.Linear(cfg.hidden, R)))
        self.prediction_trunk = cfg.mlp(S, None)
        self.policy_head = _zero(nn.Linear(cfg.hidden, action_dim))
        self.value_head = _zero(nn.Linear(cfg.hidden, V))

    def represent(self, obs: Tensor) -> Tensor:
        """h: observations `[B, D]` → hidden states `[B, S]`."""
        return scale_hidden(self.representation_net(obs.float()))

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """g: states `[B, S]`, one-hot actions `[B, A]` → next states `[B, S]`, reward logits `[B, 2R+1]`."""
        nxt = scale_hidden(self.dynamics_net(torch.cat([state, action], -1)))
        return nxt, self.reward_net(nxt)

    def predict(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """f: states `[B, S]` → policy logits `[B, A]`, value logits `[B, 2V+1]`."""
        x = self.prediction_trunk(state)
        return self.policy_head(x), self.value_head(x)


class ResidualBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), 3×3 convolutions keeping the shape `[B, C, H, W]`."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.GroupNorm(1, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(1, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def _tower(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))


@NETWORKS.register("muzero_resnet")
class MuZeroResNet(nn.Module):
    """h, g, f as residual conv towers on image observations (the paper's Atari network, narrower).

    Frames `[B, C, H, W]` (or `[B, H, W, C]`, `[B, H, W]`; uint8 is divided by 255) are downsampled 16×
    (two stride-2 convs with residual blocks, two average pools); hidden states are `[B, channels, h, w]`.
    The action enters the dynamics as A constant one-hot planes.
    """

    @dataclass
    class Config(SupportConfig):
        channels: int = positive(64)
        """Channels of the hidden state."""
        blocks: int = positive(2)
        """Residual blocks in each of h, g and f."""
        head_channels: int = positive(16)
        """Channels of the 1×1 convolutions before the flattened reward, policy and value heads."""
        head_hidden: int = positive(64)
        """Units of the MLP after the flattened heads."""
        value_support: int = positive(300)
        reward_support: int = positive(300)

    def __init__(self, cfg: Config, obs_shape: tuple[int, ...], action_dim: int):
        super().__init__()
        if len(obs_shape) not in (2, 3):
            raise ConfigError(f"dynamics 'muzero_resnet' takes image observations, got shape {obs_shape}")
        self.cfg, self.action_dim, self.obs_shape = cfg, action_dim, obs_shape
        c_in = self._to_nchw(torch.zeros(1, *obs_shape)).shape[1]
        C = cfg.channels
        self.representation_net = nn.Sequential(
            nn.Conv2d(c_in, C // 2, 3, stride=2, padding=1),
            ResidualBlock(C // 2),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1),
            ResidualBlock(C),
            nn.AvgPool2d(3, stride=2, padding=1),
            ResidualBlock(C),
            nn.AvgPool2d(3, stride=2, padding=1),
            _tower(C, cfg.blocks),
        )
        self.dynamics_net = nn.Sequential(nn.Conv2d(C + action_dim, C, 3, padding=1), _tower(C, cfg.blocks))
        self.prediction_trunk = _tower(C, cfg.blocks)
        with torch.no_grad():
            h, w = self.representation_net(self._to_nchw(torch.zeros(1, *obs_shape))).shape[-2:]
        self.state_shape = (C, h, w)

        def head(out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(C, cfg.head_channels, 1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(cfg.head_channels * h * w, cfg.head_hidden),
                nn.ReLU(),
                _zero(nn.Linear(cfg.head_hidden, out)),
            )

        self.reward_net = head(2 * cfg.reward_support + 1)
        self.policy_head = head(action_dim)
        self.value_head = head(2 * cfg.value_support + 1)

    def _to_nchw(self, obs: Tensor) -> Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        if x.dim() == 3:  # [B, H, W]: one grey channel
            return x[:, None]
        if x.shape[-1] <= 4 < x.shape[1]:  # channels last
            return x.permute(0, 3, 1, 2)
        return x

    def represent(self, obs: Tensor) -> Tensor:
        """h: frames `[B, ...]` → hidden states `[B, C, h, w]`."""
        return scale_hidden(self.representation_net(self._to_nchw(obs)))

    def dynamics(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """g: states `[B, C, h, w]`, one-hot actions `[B, A]` → next states, reward logits `[B, 2R+1]`."""
        planes = action[:, :, None, None].expand(-1, -1, *state.shape[-2:])
        nxt = scale_hidden(self.dynamics_net(torch.cat([state, planes], 1)))
        return nxt, self.reward_net(nxt)

    def predict(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """f: states `[B, C, h, w]` → policy logits `[B, A]`, value logits `[B, 2V+1]`."""
        x = self.prediction_trunk(state)
        return self.policy_head(x), self.value_head(x)
