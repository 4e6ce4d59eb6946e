"""Recurrent state-space model (PlaNet, Dreamer, STORM): a deterministic state h and a stochastic state z.

    h_t = f(h_{<t}, x_t),  x_t = [z_{t−1}, a_{t−1}]   deterministic path: the `backbone` (GRU, LSTM, transformer)
    p(z_t | h_t)                                    prior, used to imagine
    q(z_t | h_t, e_t)  or  q(z_t | e_t)             posterior, with the embedding e_t of o_t (`posterior`)
The stochastic state is Gaussian (PlaNet, DreamerV1; std floored at `min_std`) or `stoch` one-hot
categoricals of `classes` classes (DreamerV2/V3) sampled with straight-through gradients and `unimix`
uniform probability mixed in. With the posterior from the observation alone (STORM), every z_t of a
window is known before h is computed, so `observe` runs the backbone over the whole window at once
(in parallel for the transformer).

A state is a dict of tensors that only the RSSM looks inside: the backbone's carry (`deter` `[..., D]`
and what else it keeps), `stoch` `[..., S·C]` (or `[..., S]`) and the parameters of the distribution it
was drawn from (`logits` `[..., S, C]` or `mean`, `std` `[..., S]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from worldmodels.dynamics.backbones import pick, reset
from worldmodels.nn import Activation, OneHotDist, activation
from worldmodels.nn.precision import widened
from worldmodels.registry import BACKBONES, RSSMS, component
from worldmodels.schema import Spec, non_negative, positive, unit

State = dict[str, torch.Tensor]


def _layer(in_dim: int, out_dim: int, act: str, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim, bias=not norm)]
    layers += [nn.LayerNorm(out_dim)] if norm else []
    return nn.Sequential(*layers, activation(act))


@RSSMS.register("rssm")
class RSSM(nn.Module):
    @dataclass
    class Config:
        deter: int = positive(512)
        """Size of the deterministic state h."""
        backbone: Spec = component("backbone", "gru")
        """The deterministic path: `gru` (Dreamer's block GRU), `lstm` or `transformer` (STORM)."""
        posterior: Literal["history", "observation"] = "history"
        """What q(z_t | ·) sees: h_t and e_t (Dreamer, PlaNet), or e_t alone (STORM: `observe` is then one
        call of the backbone over the window, one parallel pass for the transformer, instead of a loop)."""
        stoch: int = positive(32)
        """Stochastic variables: Gaussian dimensions, or categorical variables."""
        classes: int = non_negative(32)
        """Classes per categorical variable; 0 makes the stochastic state Gaussian."""
        hidden: int = positive(512)
        """Units of the layers around the backbone."""
        unimix: float = unit(0.01)
        """Uniform probability mixed into categorical distributions."""
        min_std: float = positive(0.1)
        """Floor of the Gaussian std."""
        act: Activation = "silu"
        norm: bool = True
        """LayerNorm in the layers (and in the GRU's or LSTM's gates)."""
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
        self.backbone = BACKBONES.build(
            cfg.backbone.name, cfg.backbone.cfg, in_dim=cfg.hidden, dim=cfg.deter, norm=cfg.norm
        )
        self.prior_net = nn.Sequential(_layer(cfg.deter, cfg.hidden, cfg.act, cfg.norm), nn.Linear(cfg.hidden, stats))
        self.from_history = cfg.posterior == "history"
        post_in = cfg.deter * self.from_history + embed_dim
        self.post_net = nn.Sequential(_layer(post_in, cfg.hidden, cfg.act, cfg.norm), nn.Linear(cfg.hidden, stats))
        self.initial_deter = nn.Parameter(torch.zeros(cfg.deter), requires_grad=cfg.learned_initial)
        self._kernels = dict(_KERNELS)  # the step functions, eager or compiled (`compile_steps`)

    # ------------------------------------------------------------------ distributions

    def _stats(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = widened(raw)  # bfloat16 under autocast
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
            return D.Independent(D.OneHotCategoricalStraightThrough(logits=state["logits"], validate_args=False), 1)
        return D.Independent(D.Normal(state["mean"], state["std"], validate_args=False), 1)

    def _sample(self, stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """z with straight-through (categorical) or reparameterised (Gaussian) gradients. The categoricals are
        drawn by `OneHotDist`, not by `dist`'s `torch.distributions` object, whose multinomial checks the
        whole tensor on every draw: an eager DreamerV3 update (size1m, vector, one thread) took 8–10 % longer."""
        if self.discrete:
            return _one_hot_sample(stats["logits"]).flatten(-2)
        return self.dist(stats).rsample()

    # ------------------------------------------------------------------ steps

    def initial(self, n: int) -> State:
        """Start states of `n` episodes."""
        deter = torch.tanh(self.initial_deter).expand(n, -1)
        stats = self._stats(self.prior_net(deter))
        mode = self.dist(stats).mode if self.discrete else stats["mean"]
        return {**self.backbone.initial(deter), "stoch": mode.flatten(-2) if self.discrete else mode, **stats}

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
            state = reset(state, self.initial(len(is_first)), is_first)
            action = torch.where(is_first[:, None], torch.zeros_like(action), action)
        return self._kernels["obs"](self, state, action, embed)

    def compile_steps(self) -> None:
        """Run the imagined and the observed step as `torch.compile`d graphs (compiled on first use, once
        per batch size and grad mode): fused elementwise ops, at the cost of the compile time."""
        self._kernels = {k: torch.compile(f, dynamic=False) for k, f in _KERNELS.items()}

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor) -> tuple[State, State]:
        """Filter a window: embeddings `[B, T, E]`, actions `[B, T, A]`, is_first `[B, T]` → posterior and
        prior states `[B, T, ...]`. The first step starts an episode."""
        is_first = is_first.clone()
        is_first[:, 0] = True
        if not self.from_history:
            return self._observe_window(embed, action, is_first)
        state, posts, priors = self.initial(embed.shape[0]), [], []
        for t in range(embed.shape[1]):
            state, prior = self.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
            posts.append(state)
            priors.append(prior)
        stack = lambda states: {k: torch.stack([s[k] for s in states], 1) for k in states[0]}  # noqa: E731
        return stack(posts), stack(priors)

    def _observe_window(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor) -> tuple[State, State]:
        """With q(z_t | e_t) every z_t is drawn first; then the backbone reads x_t = [z_{t−1}, a_{t−1}]
        for the whole window in one call (z_{t−1}, a_{t−1}: the initial latent and no action at a start)."""
        post_stats = self._stats(self.post_net(embed))
        stoch = self._sample(post_stats)  # [B, T, S]
        start = self.initial(embed.shape[0])
        first = is_first[..., None]
        prev = torch.where(first, start["stoch"][:, None], torch.cat([stoch[:, :1], stoch[:, :-1]], 1))
        x = self.img_in(torch.cat([prev, torch.where(first, torch.zeros_like(action), action)], -1))
        carry = self.backbone.sequence(x, is_first, {k: v for k, v in start.items() if k not in _OWN})
        prior_stats = self._stats(self.prior_net(carry["deter"]))
        prior = {**carry, "stoch": self._sample(prior_stats), **prior_stats}
        return {**carry, "stoch": stoch, **post_stats}, prior

    def starts(self, post: State, index: torch.Tensor | None = None) -> State:
        """States `[N, ...]` to continue from: those of `post` `[B, T, ...]` at flat positions `index` `[N]`
        of its B·T steps (all by default), with what the backbone needs of the steps before them."""
        B, T = post["stoch"].shape[:2]
        if index is None:
            index = torch.arange(B * T, device=post["stoch"].device)
        own = pick({k: v for k, v in post.items() if k in _OWN}, index)
        return {**self.backbone.starts({k: v for k, v in post.items() if k not in _OWN}, index), **own}

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
    carry = rssm.backbone.step(x, {k: v for k, v in state.items() if k not in _OWN})
    stats = rssm._stats(rssm.prior_net(carry["deter"]))
    return {**carry, "stoch": rssm._sample(stats), **stats}


def _obs_step(rssm: RSSM, state: State, action: torch.Tensor, embed: torch.Tensor) -> tuple[State, State]:
    prior = _img_step(rssm, state, action)
    seen = torch.cat([prior["deter"], embed], -1) if rssm.from_history else embed
    stats = rssm._stats(rssm.post_net(seen))
    carry = {k: v for k, v in prior.items() if k not in _OWN}
    return {**carry, "stoch": rssm._sample(stats), **stats}, prior


@torch.compiler.disable
def _one_hot_sample(logits: torch.Tensor) -> torch.Tensor:
    """One-hot draws `[..., S, C]` with straight-through gradients, exactly one-hot in value. Eager even in a
    compiled step: drawn inside the compiled graph, a compiled DreamerV3 update took 0.99 s instead of 0.86."""
    dist = OneHotDist(logits)
    return dist.sample() + (dist.probs - dist.probs.detach())


_OWN = ("stoch", "logits", "mean", "std")
"""The keys of a state that are the RSSM's own; the rest is the backbone's carry."""


_KERNELS = {"img": _img_step, "obs": _obs_step}
