"""IRIS's actor-critic (Micheli et al. 2023, §2.3): a shared CNN + LSTM trunk over frames, with a policy
(logits over discrete actions) and a value head; the LSTM carries what one frame cannot show."""

from __future__ import annotations

import torch
from torch import nn

from worldmodels.encoders.cnn import conv_stages


class PixelActorCritic(nn.Module):
    """Frames `[N, H, W, C]` in pixel units and an LSTM state (h, c) `[N, hidden]` each → action logits
    `[N, A]`, values `[N]` and the next state. Convolutions of `channels`, doubling after the second
    halving (IRIS: 32, 32, 64, 64 down to 4×4), max-pooled down to at most 4×4 cells."""

    def __init__(self, frame: tuple[int, int, int], action_dim: int, channels: int, hidden: int):
        super().__init__()
        H, W, C = frame
        layers: list[nn.Module] = []
        for i in range(max(conv_stages(H, W, 4), 1)):
            out = channels * 2 ** (i // 2)
            layers += [nn.Conv2d(C, out, 3, padding=1), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU()]
            C = out
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            features = self.cnn(torch.zeros(1, frame[2], H, W)).shape[1]
        self.lstm = nn.LSTMCell(features, hidden)
        self.hidden = hidden
        self.actor, self.critic = nn.Linear(hidden, action_dim), nn.Linear(hidden, 1)

    def initial(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(n, self.hidden, device=device), torch.zeros(n, self.hidden, device=device)

    def forward(
        self, frames: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = self.cnn(frames.permute(0, 3, 1, 2) / 255.0)
        h, c = self.lstm(x, state)
        return self.actor(h), self.critic(h).squeeze(-1), (h, c)

    @torch.no_grad()
    def burn_in(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM state after frames `[B, T, H, W, C]` (`mask` `[B, T]`: False on padding, which
        leaves the state at zero)."""
        state = self.initial(frames.shape[0], frames.device)
        for t in range(frames.shape[1]):
            _, _, new = self(frames[:, t], state)
            keep = mask[:, t, None]
            state = (torch.where(keep, new[0], state[0]), torch.where(keep, new[1], state[1]))
        return state
