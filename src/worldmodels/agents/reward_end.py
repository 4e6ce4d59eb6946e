"""DIAMOND's reward and termination model (Alonso et al. 2024, §3 and App. C): a transition (frame, action,
next frame) → logits of the reward's sign (−1, 0, +1) and of the episode ending there. The two frames are
stacked on channels and read by residual blocks whose group norms the action modulates (`nn/unet.py`),
halving `halvings` times; an LSTM carries what the transitions before showed. Trained by cross-entropy on
windows of real transitions; in imagination it is burnt in on the context, then labels each dreamed frame."""

from __future__ import annotations

import torch
from torch import nn

from worldmodels.nn.unet import ResBlock

State = tuple[torch.Tensor, torch.Tensor]


class RewardEndModel(nn.Module):
    """Frames `[B, T, C, H, W]` in [−1, 1], the actions taken in them `[B, T, A]` and the frames they led to →
    reward-sign logits `[B, T, 3]`, end logits `[B, T, 2]` and the LSTM state (h, c) `[1, B, hidden]` each."""

    def __init__(
        self, frame: tuple[int, int, int], action_dim: int, channels: int, halvings: int, hidden: int, cond: int
    ):
        super().__init__()
        C, H, W = frame
        self.action = nn.Linear(action_dim, cond)
        self.conv_in = nn.Conv2d(2 * C, channels, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(channels, channels, cond) for _ in range(halvings + 1))
        self.pool = nn.AvgPool2d(2)
        self.lstm = nn.LSTM(channels * (H >> halvings) * (W >> halvings), hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 + 2))

    def forward(
        self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        B, T = obs.shape[:2]
        x = self.conv_in(torch.cat([obs, next_obs], 2).flatten(0, 1))
        cond = self.action(action.flatten(0, 1))
        for i, block in enumerate(self.blocks):
            x = block(self.pool(x) if i else x, cond)
        x, state = self.lstm(x.view(B, T, -1), state)
        logits = self.head(x)
        return logits[..., :3], logits[..., 3:], state

    @torch.no_grad()
    def burn_in(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor, mask: torch.Tensor) -> State:
        """The LSTM state after the transitions `[B, T, ...]` (`mask` `[B, T]`: False on padding, which leaves
        the state at zero)."""
        B, hidden = len(obs), self.lstm.hidden_size
        state = (obs.new_zeros(1, B, hidden), obs.new_zeros(1, B, hidden))
        for t in range(obs.shape[1]):
            _, _, new = self(obs[:, t : t + 1], action[:, t : t + 1], next_obs[:, t : t + 1], state)
            keep = mask[None, :, t, None]
            state = (torch.where(keep, new[0], state[0]), torch.where(keep, new[1], state[1]))
        return state


def labels(logits_reward: torch.Tensor, logits_end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely reward sign in {−1, 0, 1} and continue flag in {0, 1}, as DIAMOND's imagination takes them."""
    return logits_reward.argmax(-1).float() - 1.0, (logits_end.argmax(-1) == 0).float()
