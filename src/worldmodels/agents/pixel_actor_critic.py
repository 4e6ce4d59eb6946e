"""IRIS's actor-critic (Micheli et al. 2023, §2.3), which DIAMOND reuses (Alonso et al. 2024, §3): a shared
CNN + LSTM trunk over frames, with a policy (logits over discrete actions) and a value head; the LSTM carries
what one frame cannot show. And how both learn in a world model's imagined frames (`imagination_loss`):

    Λ_t = r_t + γ c_t ((1 − λ) V(ô_{t+1}) + λ Λ_{t+1}),  Λ_H = V(ô_H)
    L_V = E[(V(ô_t) − sg(Λ_t))²],  L_π = −E[ln π(a_t | ô_≤t) sg(Λ_t − V(ô_t)) + η H(π(· | ô_≤t))]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.distributions import Categorical

from worldmodels.encoders.cnn import conv_stages
from worldmodels.losses import lambda_return


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
    def act(
        self, frames: torch.Tensor, is_first: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], temperature: float
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Actions `[N]` for frames `[N, H, W, C]`, drawn from π^(1/T) (its mode at T = 0), and the next
        state; the LSTM starts afresh where `is_first` `[N]`."""
        state = (torch.where(is_first[:, None], 0.0, state[0]), torch.where(is_first[:, None], 0.0, state[1]))
        logits, _, state = self(frames, state)
        action = Categorical(logits=logits / temperature).sample() if temperature > 0 else logits.argmax(-1)
        return action, state

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


World = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""A world model's imagination step: actions `[B]` → (the next frames `[B, H, W, C]` in pixel units, the
rewards `[B]` on arriving there, the probabilities (or indicators) of continuing `[B]`)."""


def imagination_loss(
    actor_critic: PixelActorCritic,
    state: tuple[torch.Tensor, torch.Tensor],
    frame: torch.Tensor,
    world: World,
    horizon: int,
    alive: torch.Tensor,
    gamma: float,
    lam: float,
    entropy: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """From burnt-in LSTM `state` on start frames `[B, H, W, C]` (alive `[B]`: 0 where they end an episode),
    act `horizon` steps in `world` (no gradient through it) and return L_π + L_V (module docstring), each
    step weighted by the probability of still being in the episode, and its metrics."""
    log_prob, entropies, value, reward, cont = [], [], [], [], []
    for _ in range(horizon):
        logits, v, state = actor_critic(frame, state)
        policy = Categorical(logits=logits)
        action = policy.sample()
        with torch.no_grad():
            frame, r, c = world(action)
        log_prob.append(policy.log_prob(action)), entropies.append(policy.entropy()), value.append(v)
        reward.append(r), cont.append(c)
    value.append(actor_critic(frame, state)[1])
    value, reward, cont = torch.stack(value, 1), torch.stack(reward, 1), torch.stack(cont, 1)  # [B, H(+1)]
    returns = lambda_return(reward, gamma * cont, value.detach(), lam)  # [B, H]
    weight = torch.cumprod(torch.cat([alive[:, None], cont[:, :-1]], 1), 1)  # still alive at step t
    ent = torch.stack(entropies, 1)
    advantage = (returns - value[:, :-1]).detach()
    policy_loss = -(weight * (torch.stack(log_prob, 1) * advantage + entropy * ent)).mean()
    value_loss = (weight * (value[:, :-1] - returns).pow(2)).mean()
    metrics = {
        "actor_critic/return": returns.mean().detach(),
        "actor_critic/value": value.mean().detach(),
        "actor_critic/entropy": ent.mean().detach(),
        # per imagined step still in the episode: the steps after a predicted end are out of the loss too
        "actor_critic/imagined_reward": (weight * reward).sum() / weight.sum(),
        "actor_critic/continue": (weight * cont).sum() / weight.sum(),
    }
    return policy_loss + value_loss, metrics
