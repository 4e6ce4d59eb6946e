"""IRIS's world model (Micheli et al. 2023, §2.2): a GPT over the flattened sequence of every frame's K
tokens, each frame followed by the action taken in it,

    z_0^1 … z_0^K a_0  z_1^1 … z_1^K a_1  …

with causal attention, so each token is predicted from all tokens before it: the next token of a frame
from its earlier tokens and the past, the first token of frame t+1 (and the reward r_{t+1} and continue
c_{t+1}) from the action token a_t. A learned embedding of a token's slot in its frame block tells the
model which token it reads; positions are rotary. Attention reaches back over at most `context` frames,
in training (windows of that length) and in imagination, where a key/value cache makes each imagined
token cost one step of the transformer (`start`, `step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from worldmodels.nn.transformer import Transformer, TransformerConfig
from worldmodels.registry import CONTINUES, REWARDS, TOKEN_MODELS, component
from worldmodels.schema import Spec, param, positive


@dataclass
class Prediction:
    """Next-token logits `[..., K, V]`, and the reward and continue distributions `[...]` of the steps."""

    logits: torch.Tensor
    reward: Any
    cont: Any


@dataclass
class Context:
    """A cache being filled: keys and values of the first `n` of C slots, stored `[N, layers, 2, h, C, d]`
    (the layout attention reads, so no step copies it strided); `real` `[N, C]` where a slot holds a real
    token (not padding, not yet empty)."""

    store: torch.Tensor
    real: torch.Tensor
    n: int

    @property
    def cache(self) -> torch.Tensor:
        """The keys and values as `Transformer.step` takes them, `[N, C, layers, 2, h, d]` (a view)."""
        return self.store.permute(0, 4, 1, 2, 3, 5)


@dataclass
class Imagined:
    """One imagined frame: tokens `[N, K]`, their logits `[N, K, V]`, reward and continue distributions `[N]`."""

    tokens: torch.Tensor
    logits: torch.Tensor
    reward: Any
    cont: Any


@TOKEN_MODELS.register("token_transformer")
class TokenTransformer(nn.Module):
    @dataclass
    class Config(TransformerConfig):
        context: int = param(20, lambda v: v >= 2, "an integer >= 2")
        """Frames attention reaches over (IRIS: 20); the world model trains on windows of this length."""
        temperature: float = positive(1.0)
        """Sampling temperature of imagined tokens."""
        reward: Spec = component("reward", "twohot", hidden=256, layers=1)
        cont: Spec = component("continue", "mlp", hidden=256, layers=1)

    def __init__(self, cfg: Config, vocab: int, tokens: int, action_dim: int):
        super().__init__()
        self.cfg, self.K, self.context = cfg, tokens, cfg.context
        D = cfg.dim
        self.token_embed = nn.Embedding(vocab, D)
        self.action_embed = nn.Linear(action_dim, D)
        self.slot_embed = nn.Parameter(torch.randn(tokens + 1, D) * 0.02)
        self.transformer = Transformer(cfg)
        self.next_token = nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, vocab))
        self.reward = REWARDS.build(cfg.reward.name, cfg.reward.cfg, in_dim=D)
        self.cont = CONTINUES.build(cfg.cont.name, cfg.cont.cfg, in_dim=D)

    def sequence(self, tokens: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Tokens `[B, T, K]` and actions `[B, T, A]` → the embedded blocks, flattened `[B, T·(K+1), D]`."""
        B, T, K = tokens.shape
        z = self.token_embed(tokens) + self.slot_embed[:K]  # [B, T, K, D]
        a = self.action_embed(action)[:, :, None] + self.slot_embed[K]  # [B, T, 1, D]
        return torch.cat([z, a], 2).reshape(B, T * (K + 1), -1)

    def forward(self, tokens: torch.Tensor, action: torch.Tensor) -> Prediction:
        """Tokens `[B, T, K]` of T ≤ `context` frames and the action taken in each `[B, T, A]` → the
        prediction of frames 1…T−1 `[B, T−1, ...]`: each token from the tokens before it, the reward and
        continue on arriving from the action token before the frame."""
        B, T, K = tokens.shape
        x = self.sequence(tokens, action)
        pos = torch.arange(x.shape[1], device=x.device).expand(B, -1)
        h = self.transformer(x, causal=True, pos=pos).view(B, T, K + 1, -1)
        act = h[:, :-1, K]  # [B, T-1, D]: the action tokens a_0 … a_{T-2}
        before = torch.cat([act[:, :, None], h[:, 1:, : K - 1]], 2)  # [B, T-1, K, D]: what precedes z_t^k
        return Prediction(self.next_token(before), self.reward(act), self.cont(act))

    # ------------------------------------------------------------------ imagination

    def start(self, tokens: torch.Tensor, action: torch.Tensor, valid: torch.Tensor, room: int) -> Context:
        """A cache of T observed frames `[N, T, K]` with the actions taken in all but the last `[N, T−1, A]`
        (`valid` `[N, T]`: False on padding before an episode's start), with room to imagine `room` frames."""
        N, T, K = tokens.shape
        last = action.new_zeros(N, 1, action.shape[-1])  # the action of frame T-1: not yet taken, dropped
        x = self.sequence(tokens, torch.cat([action, last], 1))[:, :-1]  # [N, L, D], ends on z_{T-1}^K
        L = x.shape[1]
        real = valid.repeat_interleave(K + 1, 1)[:, :L]
        index = torch.arange(L, device=x.device)
        mask = (index[None] <= index[:, None]) & self._near(index, index) & real[:, None]  # [N, L, L]
        mask = mask | torch.eye(L, dtype=torch.bool, device=x.device)  # padding attends to itself
        _, kv = self.transformer.encode(x, mask=mask, pos=index.expand(N, -1))
        store = kv.new_zeros(N, *kv.shape[2:5], L + room * (K + 1), kv.shape[5])
        store[:, :, :, :, :L] = kv.permute(0, 2, 3, 4, 1, 5)
        return Context(store, torch.cat([real, real.new_zeros(N, room * (K + 1))], 1), L)

    def _near(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """`[Q, C]`: whether a key slot lies in the `context` frames up to the frame its query slot predicts
        (an action token predicts the next frame), as in a training window ending on that frame."""
        block = self.K + 1
        return key[None] // block > (query[:, None] + 1) // block - self.cfg.context

    def _feed(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """Append one embedded token `[N, D]` to the cache; returns its output `[N, D]`."""
        q = torch.tensor([ctx.n], device=x.device)
        slots = torch.arange(ctx.real.shape[1], device=x.device)
        attend = ctx.real & self._near(q, slots)
        y, kv = self.transformer.step(x, ctx.cache, attend, q.expand(len(x)))
        ctx.store[:, :, :, :, ctx.n], ctx.real[:, ctx.n] = kv, True
        ctx.n += 1
        return y

    @torch.no_grad()
    def step(self, ctx: Context, action: torch.Tensor, tokens: torch.Tensor | None = None) -> Imagined:
        """Imagine the frame after taking `action` `[N, A]`: K + 1 cached steps (the action, then each
        token drawn at the model's temperature; `tokens` `[N, K]` given: fed instead, to score them)."""
        y = self._feed(ctx, self.action_embed(action) + self.slot_embed[self.K])
        reward, cont = self.reward(y), self.cont(y)
        drawn, logits = [], []
        for k in range(self.K):
            logits.append(self.next_token(y))
            z = torch.distributions.Categorical(logits=logits[-1] / self.cfg.temperature).sample()
            drawn.append(z if tokens is None else tokens[:, k])
            y = self._feed(ctx, self.token_embed(drawn[-1]) + self.slot_embed[k])
        return Imagined(torch.stack(drawn, 1), torch.stack(logits, 1), reward, cont)
