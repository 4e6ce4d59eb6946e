"""Backbones of the RSSM's deterministic path h_t = f(h_{<t}, x_t): a block GRU (Dreamer), an LSTM and a
causal transformer with a key/value cache (STORM's world model).

A backbone carries a dict of tensors from step to step, `{"deter": h [N, D], ...}` plus what else it
needs (the LSTM's cell, the transformer's cache); only it looks inside. `sequence` runs a whole window
`[B, T, I]` (in parallel where the backbone allows) and returns each step's carry `[B, T, ...]`; `starts`
turns those into step carries `[N, ...]` to continue from (imagination starts, the last step of a window).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels.nn.transformer import Transformer, TransformerConfig
from worldmodels.registry import BACKBONES
from worldmodels.schema import positive, unit

Carry = dict[str, torch.Tensor]


def reset(carry: Carry, start: Carry, is_first: torch.Tensor) -> Carry:
    """Rows of `carry` `[N, ...]` where `is_first` `[N]` is set, replaced by those of `start`."""
    return {k: torch.where(is_first.view(-1, *[1] * (v.dim() - 1)), start[k], v) for k, v in carry.items()}


def pick(carries: Carry, index: torch.Tensor) -> Carry:
    """Step carries `[N, ...]` at flat positions `index` of carries stacked over steps `[B, T, ...]`."""
    return {k: v.flatten(0, 1)[index] for k, v in carries.items()}


class Recurrent(nn.Module):
    """A backbone whose carry is its recurrent state: a window runs step by step."""

    def sequence(self, x: torch.Tensor, is_first: torch.Tensor, start: Carry) -> Carry:
        carry, steps = start, []
        for t in range(x.shape[1]):
            carry = self.step(x[:, t], reset(carry, start, is_first[:, t]))
            steps.append(carry)
        return {k: torch.stack([c[k] for c in steps], 1) for k in steps[0]}

    def starts(self, carries: Carry, index: torch.Tensor) -> Carry:
        return pick(carries, index)


class BlockGRU(nn.Module):
    """GRU with LayerNorm on the gates; its recurrent weights are block-diagonal over `blocks` groups.

    x `[N, I]`, h `[N, D]` → h' `[N, D]`. Every block sees all of x and only its own part of h.
    """

    def __init__(self, in_dim: int, deter: int, blocks: int, norm: bool):
        super().__init__()
        if deter % blocks:
            raise ValueError(f"deter ({deter}) must be divisible by blocks ({blocks})")
        self.blocks, self.size = blocks, deter // blocks
        self.weight = nn.Parameter(torch.empty(blocks, in_dim + self.size, 3 * self.size))
        nn.init.xavier_uniform_(self.weight.view(-1, 3 * self.size))
        self.bias = nn.Parameter(torch.zeros(blocks, 3 * self.size))
        self.norm = nn.LayerNorm(3 * self.size) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        hb = h.view(n, self.blocks, self.size)
        inp = torch.cat([x[:, None].expand(n, self.blocks, x.shape[-1]), hb], -1)  # [N, G, I + D/G]
        gates = self.norm(torch.einsum("ngi,gio->ngo", inp, self.weight) + self.bias)
        reset_gate, cand, update = gates.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset_gate) * cand)
        update = torch.sigmoid(update - 1.0)  # biased towards keeping the old state
        return (update * cand + (1 - update) * hb).reshape(n, -1)


@BACKBONES.register("gru")
class GRUBackbone(Recurrent):
    """DreamerV3's LayerNorm GRU (LayerNorm when the RSSM's `norm` is on), block-diagonal with `blocks` > 1."""

    @dataclass
    class Config:
        blocks: int = positive(1)
        """Block-diagonal GRU groups (DreamerV3: 8)."""

    def __init__(self, cfg: Config, in_dim: int, dim: int, norm: bool):
        super().__init__()
        self.gru = BlockGRU(in_dim, dim, cfg.blocks, norm)

    def initial(self, deter: torch.Tensor) -> Carry:
        return {"deter": deter}

    def step(self, x: torch.Tensor, carry: Carry) -> Carry:
        return {"deter": self.gru(x, carry["deter"])}


@BACKBONES.register("lstm")
class LSTMBackbone(Recurrent):
    """An LSTM cell (with LayerNorm on the gates when the RSSM's `norm` is on); h is the deterministic
    state, the cell c is carried beside it and starts at zero."""

    @dataclass
    class Config:
        forget_bias: float = 1.0
        """Added to the forget gate, so that early in training the cell keeps its content."""

    def __init__(self, cfg: Config, in_dim: int, dim: int, norm: bool):
        super().__init__()
        self.forget_bias = cfg.forget_bias
        self.gates = nn.Linear(in_dim + dim, 4 * dim, bias=not norm)
        self.norm = nn.LayerNorm(4 * dim) if norm else nn.Identity()

    def initial(self, deter: torch.Tensor) -> Carry:
        return {"deter": deter, "cell": torch.zeros_like(deter)}

    def step(self, x: torch.Tensor, carry: Carry) -> Carry:
        gates = self.norm(self.gates(torch.cat([x, carry["deter"]], -1)))
        i, f, g, o = gates.chunk(4, -1)
        cell = torch.sigmoid(f + self.forget_bias) * carry["cell"] + torch.sigmoid(i) * torch.tanh(g)
        return {"deter": torch.sigmoid(o) * torch.tanh(cell), "cell": cell}


@BACKBONES.register("transformer")
class TransformerBackbone(nn.Module):
    """A causal transformer over the step tokens x_t (STORM): h_t attends to x_t and the `context` − 1
    tokens before it in the same episode, with rotary positions, in training (one parallel pass over the
    window, masked) and while acting or imagining (a cache of the last `context` − 1 tokens' keys and
    values, a row emptied when its episode restarts)."""

    @dataclass
    class Config:
        layers: int = positive(2)
        heads: int = positive(4)
        context: int = positive(16)
        """Tokens each step attends to, itself included."""
        mlp_ratio: int = positive(4)
        dropout: float = unit(0.0)

    def __init__(self, cfg: Config, in_dim: int, dim: int, norm: bool):
        super().__init__()
        self.context = cfg.context
        self.inp = nn.Linear(in_dim, dim)
        self.net = Transformer(TransformerConfig(cfg.layers, cfg.heads, dim, cfg.mlp_ratio, cfg.dropout))
        self.kv_shape = (cfg.layers, 2, cfg.heads, dim // cfg.heads)

    def initial(self, deter: torch.Tensor) -> Carry:
        n, past = deter.shape[0], self.context - 1
        return {
            "deter": deter,
            "kv": deter.new_zeros(n, past, *self.kv_shape),
            "valid": torch.zeros(n, past, dtype=torch.bool, device=deter.device),
            "pos": torch.full((n,), -1, dtype=torch.long, device=deter.device),
        }

    def step(self, x: torch.Tensor, carry: Carry) -> Carry:
        pos = carry["pos"] + 1
        deter, kv = self.net.step(self.inp(x), carry["kv"], carry["valid"], pos)
        true = carry["valid"].new_ones(len(x), 1)
        return {
            "deter": deter,
            "kv": torch.cat([carry["kv"][:, 1:], kv[:, None]], 1),
            "valid": torch.cat([carry["valid"][:, 1:], true], 1),
            "pos": pos,
        }

    def sequence(self, x: torch.Tensor, is_first: torch.Tensor, start: Carry) -> Carry:
        B, T = x.shape[:2]
        episode = is_first.long().cumsum(1)  # [B, T]
        t = torch.arange(T, device=x.device)
        near = (t[:, None] >= t[None]) & (t[:, None] - t[None] < self.context)  # [T, T]: causal, in the span
        mask = near & (episode[:, :, None] == episode[:, None, :])  # [B, T, T]
        deter, kv = self.net.encode(self.inp(x), mask=mask, pos=t.expand(B, T))
        return {"deter": deter, "kv": kv, "episode": episode}

    def starts(self, carries: Carry, index: torch.Tensor) -> Carry:
        if "episode" not in carries:  # step carries stacked by an RSSM that observed step by step
            return pick(carries, index)
        T = carries["deter"].shape[1]
        b, t = index // T, index % T  # [N]
        back = t[:, None] + torch.arange(2 - self.context, 1, device=index.device)  # [N, C − 1]: up to t
        at = back.clamp(min=0)
        valid = (back >= 0) & (carries["episode"][b[:, None], at] == carries["episode"][b, t][:, None])
        return {"deter": carries["deter"][b, t], "kv": carries["kv"][b[:, None], at], "valid": valid, "pos": t}
