"""Recurrent state-space model (PlaNet, Dreamer): a deterministic GRU state h and a stochastic state z.

    h_t = GRU(h_{t−1}, [z_{t−1}, a_{t−1}])          deterministic path
    p(z_t | h_t)                                    prior, used to imagine
    q(z_t | h_t, e_t)                               posterior, with the embedding e_t of o_t
The stochastic state is Gaussian (PlaNet, DreamerV1; std floored at `min_std`) or `stoch` one-hot
categoricals of `classes` classes (DreamerV2/V3) sampled with straight-through gradients and `unimix`
uniform probability mixed in. The GRU is DreamerV3's LayerNorm GRU, block-diagonal with `blocks` > 1.

A state is a dict of tensors: `deter` `[..., D]`, `stoch` `[..., S·C]` (or `[..., S]`) and the
parameters of the distribution it was drawn from (`logits` `[..., S, C]` or `mean`, `std` `[..., S]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from worldmodels.nn import Activation, activation
from worldmodels.registry import RSSMS
from worldmodels.schema import non_negative, positive, unit

State = dict[str, torch.Tensor]


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
        reset, cand, update = gates.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)  # biased towards keeping the old state
        return (update * cand + (1 - update) * hb).reshape(n, -1)


def _layer(in_dim: int, out_dim: int, act: str, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim, bias=not norm)]
    layers += [nn.LayerNorm(out_dim)] if norm else []
    return nn.Sequential(*layers, activation(act))


@RSSMS.register("rssm")
class RSSM(nn.Module):
    @dataclass
    class Config:
        deter: int = positive(512)
        """Size of the deterministic GRU state h."""
        stoch: int = positive(32)
        """Stochastic variables: Gaussian dimensions, or categorical variables."""
        classes: int = non_negative(32)
        """Classes per categorical variable; 0 makes the stochastic state Gaussian."""
        hidden: int = positive(512)
        """Units of the layers around the GRU."""
        blocks: int = positive(1)
        """Block-diagonal GRU groups (DreamerV3: 8)."""
        unimix: float = unit(0.01)
        """Uniform probability mixed into categorical distributions."""
        min_std: float = positive(0.1)
        """Floor of the Gaussian std."""
        act: Activation = "silu"
        norm: bool = True
        learned_initial: bool = True
        """Start episodes from a learned h (tanh of a parameter) instead of zeros."""

    def __init__(self, cfg: Config, embed_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.discrete = cfg.classes > 0
        self.stoch_dim = cfg.stoch * cfg.classes if self.discrete else cfg.stoch
        self.feat_dim = cfg.deter + self.stoch_dim
        stats = self.stoch_dim if self.discrete else 2 * cfg.stoch
        self.img_in = _layer(self.stoch_dim + action_dim, cfg.hidden, cfg.act, cfg.norm)
        self.gru = BlockGRU(cfg.hidden, cfg.deter, cfg.blocks, cfg.norm)
        self.prior_net = nn.Sequential(_layer(cfg.deter, cfg.hidden, cfg.act, cfg.norm), nn.Linear(cfg.hidden, stats))
        self.post_net = nn.Sequential(
            _layer(cfg.deter + embed_dim, cfg.hidden, cfg.act, cfg.norm), nn.Linear(cfg.hidden, stats)
        )
        self.initial_deter = nn.Parameter(torch.zeros(cfg.deter), requires_grad=cfg.learned_initial)
        self._kernels = dict(_KERNELS)  # the step functions, eager or compiled (`compile_steps`)

    # ------------------------------------------------------------------ distributions

    def _stats(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.discrete:
            logits = raw.unflatten(-1, (self.cfg.stoch, self.cfg.classes))
            if self.cfg.unimix > 0:
                probs = (1 - self.cfg.unimix) * F.softmax(logits, -1) + self.cfg.unimix / self.cfg.classes
                logits = torch.log(probs)
            return {"logits": logits}
        mean, std = raw.chunk(2, -1)
        return {"mean": mean, "std": F.softplus(std) + self.cfg.min_std}

    def dist(self, state: State) -> D.Distribution:
        """The distribution a state's `stoch` was drawn from, with event shape `[S, C]` or `[S]`."""
        if self.discrete:
            return D.Independent(D.OneHotCategoricalStraightThrough(logits=state["logits"]), 1)
        return D.Independent(D.Normal(state["mean"], state["std"]), 1)

    def _sample(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        sample = self.dist(stats).rsample()
        return sample.flatten(-2) if self.discrete else sample

    # ------------------------------------------------------------------ steps

    def initial(self, n: int) -> State:
        """Start states of `n` episodes."""
        deter = torch.tanh(self.initial_deter).expand(n, -1)
        stats = self._stats(self.prior_net(deter))
        mode = self.dist(stats).mode if self.discrete else stats["mean"]
        return {"deter": deter, "stoch": mode.flatten(-2) if self.discrete else mode, **stats}

    def features(self, state: State) -> torch.Tensor:
        """[h, z] `[..., D + S·C]`: what heads, actor and critic see."""
        return torch.cat([state["deter"], state["stoch"]], -1)

    def img_step(self, state: State, action: torch.Tensor) -> State:
        """One imagined step: the prior state after `action` `[N, A]`."""
        return self._kernels["img"](self, state, action)

    def obs_step(
        self, state: State, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor
    ) -> tuple[State, State]:
        """Posterior and prior after `action` (the one that led to this observation) given its `embed`.
        Where `is_first` `[N]` is set, the episode restarts from the initial state with no action."""
        if bool(is_first.any()):
            start = self.initial(len(is_first))
            state = {k: torch.where(is_first.view(-1, *[1] * (v.dim() - 1)), start[k], v) for k, v in state.items()}
            action = torch.where(is_first[:, None], torch.zeros_like(action), action)
        return self._kernels["obs"](self, state, action, embed)

    def compile_steps(self) -> None:
        """Run the imagined and the observed step as `torch.compile`d graphs (compiled on first use, once
        per batch size and grad mode): fused elementwise ops, at the cost of the compile time."""
        self._kernels = {k: torch.compile(f, dynamic=False) for k, f in _KERNELS.items()}

    def observe(
        self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor, state: State | None = None
    ) -> tuple[State, State]:
        """Filter a sequence: embeddings `[B, T, E]`, actions `[B, T, A]`, is_first `[B, T]` →
        posterior and prior states `[B, T, ...]`. Without `state` the first step starts an episode."""
        B, T = embed.shape[:2]
        if state is None:
            state = self.initial(B)
            is_first = is_first.clone()
            is_first[:, 0] = True
        posts, priors = [], []
        for t in range(T):
            state, prior = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
            posts.append(state)
            priors.append(prior)
        stack = lambda states: {k: torch.stack([s[k] for s in states], 1) for k in states[0]}  # noqa: E731
        return stack(posts), stack(priors)

    def imagine(
        self, start: State, policy: Callable[[torch.Tensor], D.Distribution], horizon: int, rsample: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll `policy` (features → action distribution) from `start` `[N, ...]` for `horizon` steps:
        features `[H+1, N, F]` and actions `[H, N, A]`."""
        state, feats, actions = start, [self.features(start)], []
        for _ in range(horizon):
            dist = policy(feats[-1])
            action = dist.rsample() if rsample else dist.sample()
            state = self.img_step(state, action)
            feats.append(self.features(state))
            actions.append(action)
        return torch.stack(feats), torch.stack(actions)


def _img_step(rssm: RSSM, state: State, action: torch.Tensor) -> State:
    x = rssm.img_in(torch.cat([state["stoch"], action], -1))
    deter = rssm.gru(x, state["deter"])
    stats = rssm._stats(rssm.prior_net(deter))
    return {"deter": deter, "stoch": rssm._sample(stats), **stats}


def _obs_step(rssm: RSSM, state: State, action: torch.Tensor, embed: torch.Tensor) -> tuple[State, State]:
    prior = _img_step(rssm, state, action)
    stats = rssm._stats(rssm.post_net(torch.cat([prior["deter"], embed], -1)))
    return {"deter": prior["deter"], "stoch": rssm._sample(stats), **stats}, prior


_KERNELS = {"img": _img_step, "obs": _obs_step}
