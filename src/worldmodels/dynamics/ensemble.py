"""Probabilistic ensemble of Gaussian MLPs (PETS, Chua et al. 2018) and its trajectory-sampling propagation.

E members, batched as one module with `[E, ...]` weights, each predicting a Gaussian over the change of
state, Δs = s' − s, from normalised (s, a):

    μ_e, log σ²_e = f_e((s, a) normalised)                           (outputs in normalised Δs units)
    log σ² ← max − softplus(max − log σ²);  log σ² ← min + softplus(log σ² − min)    (learned bounds)
    loss_e = mean[(μ_e − Δ̂)² e^(−log σ²_e) + log σ²_e] + 0.01 (Σ max − Σ min)       (Gaussian NLL, Δ̂ normalised)

Each member trains on its own bootstrap resample of the batch. Propagation of K particles per row
(`propagate`, state `[N, K, S]` → `[N, K, S]`):

    ts1          every step, each row's particles are dealt to the members afresh (a random balanced split)
    tsinf        particle k follows member k mod E for the whole horizon (TS∞)
    expectation  every particle moves to the mean of the members' means (no sampling; one particle suffices)

(the names of Chua et al.: TS1 re-samples a particle's bootstrap every step, TS∞ never does). In the
sampling modes each member moves its share of the particles, `assignment` of them; the next state is
drawn from its Gaussian. `by_member` runs any per-member function (PETS's reward ensemble) on the same
assignment, so a particle's reward comes from the member that moved it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from worldmodels.errors import ConfigError
from worldmodels.nn import Normaliser, activation
from worldmodels.registry import DYNAMICS
from worldmodels.schema import positive

Propagation = Literal["ts1", "tsinf", "expectation"]


class EnsembleLinear(nn.Module):
    """E independent linear layers applied at once: `[E, N, in]` → `[E, N, out]`."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = in_dim**-0.5
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """E MLPs of `layers` × `hidden` units with one shared activation: `[E, N, in]` → `[E, N, out]`."""

    def __init__(self, members: int, in_dim: int, out_dim: int, hidden: int, layers: int, act: str):
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        self.hidden = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(members, hidden, out_dim)
        self.act = activation(act)
        self.inplace_act = {"silu": F.silu, "relu": F.relu, "elu": F.elu}.get(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # without autograd (planning) the activation overwrites the matmul's output: half the fresh memory,
        # whose first-touch page faults otherwise cost as much as a third of the matmul time on CPU
        inplace = self.inplace_act if not torch.is_grad_enabled() else None
        for layer in self.hidden:
            x = inplace(layer(x), inplace=True) if inplace is not None else self.act(layer(x))
        return self.head(x)


@dataclass
class EnsembleConfig:
    """Size of an ensemble of MLPs; the ensemble components' configs extend it."""

    members: int = positive(5)
    """Ensemble size E."""
    hidden: int = positive(200)
    """Units per hidden layer."""
    layers: int = positive(3)
    """Hidden layers."""
    act: Literal["silu", "elu", "relu", "tanh", "gelu"] = "silu"
    """Activation."""

    def mlp(self, in_dim: int, out_dim: int) -> EnsembleMLP:
        return EnsembleMLP(self.members, in_dim, out_dim, self.hidden, self.layers, self.act)


@DYNAMICS.register("ensemble")
class ProbabilisticEnsemble(nn.Module):
    """E Gaussian (or deterministic) MLPs over the change of state. `latent_dim` is the state size S."""

    @dataclass
    class Config(EnsembleConfig):
        probabilistic: bool = True
        """Predict a Gaussian (PE); false: a point prediction trained by MSE (DE)."""
        min_logvar: float = -10.0
        """Initial lower bound of log σ² (learned)."""
        max_logvar: float = 0.5
        """Initial upper bound of log σ² (learned)."""
        bound_weight: float = positive(0.01)
        """Weight of the term that pulls the learned log-variance bounds together."""

    def __init__(self, cfg: Config, latent_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.members, self.state_dim, self.action_dim = cfg.members, latent_dim, action_dim
        S = latent_dim
        self.net = cfg.mlp(S + action_dim, 2 * S if cfg.probabilistic else S)
        self.min_logvar = nn.Parameter(torch.full((S,), cfg.min_logvar))
        self.max_logvar = nn.Parameter(torch.full((S,), cfg.max_logvar))
        self.inputs = Normaliser(S + action_dim)
        self.targets = Normaliser(S)

    # ------------------------------------------------------------------ members

    def members_normalised(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's prediction of the normalised change: mean and log σ² `[E, N, S]` from `[E, N, S|A]`."""
        x = self.inputs.normalise(torch.cat([state, action], -1))
        out = self.net(x).float()  # bounds and sampling in float32, also under bf16 autocast
        if not self.cfg.probabilistic:
            return out, torch.zeros_like(out)
        mean, logvar = out.chunk(2, -1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def members_next(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's Gaussian over the next state: mean and std `[E, N, S]` from `[E, N, S|A]`."""
        mean, logvar = self.members_normalised(state, action)
        scale = self.targets.std
        std = scale * (0.5 * logvar).exp() if self.cfg.probabilistic else torch.zeros_like(mean)
        return state + self.targets.mean + scale * mean, std

    def update_normalisers(self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor) -> None:
        """Fold transitions `[N, S|A]` into the input and target statistics."""
        self.inputs.update(torch.cat([state, action], -1))
        self.targets.update(next_state - state)

    def loss(self, state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Training loss from per-member batches `[E, N, S|A]` (each member its own bootstrap sample)."""
        target = self.targets.normalise(next_state - state)
        mean, logvar = self.members_normalised(state, action)
        mse = ((mean - target) ** 2).mean()
        if not self.cfg.probabilistic:
            return mse, {"mse": mse.detach()}
        nll = ((mean - target) ** 2 * torch.exp(-logvar) + logvar).mean()
        bounds = self.cfg.bound_weight * (self.max_logvar.sum() - self.min_logvar.sum())
        return nll + bounds, {"nll": nll.detach(), "mse": mse.detach(), "logvar": logvar.mean().detach()}

    # ------------------------------------------------------------------ as one model

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> D.Independent:
        """The ensemble's predictive distribution over the next state, moment-matched to one Gaussian:
        `[..., S]`, `[..., A]` → Normal `[..., S]` (mean of the members; variance aleatoric + epistemic)."""
        lead = state.shape[:-1]
        s = state.reshape(1, -1, self.state_dim).expand(self.members, -1, -1)
        a = action.reshape(1, -1, self.action_dim).expand(self.members, -1, -1)
        mean, std = self.members_next(s, a)  # [E, N, S]
        var = (std**2).mean(0) + mean.var(0, correction=0)
        return D.Independent(
            D.Normal(mean.mean(0).reshape(*lead, -1), var.sqrt().clamp(min=1e-6).reshape(*lead, -1)), 1
        )

    def assignment(self, N: int, K: int, mode: Propagation, device: torch.device) -> torch.Tensor:
        """Which of the N·K particles (flat, row-major `[N, K]`) each member moves this step, `[E, N·K/E]`:
        every row gives each member K/E of its particles."""
        E = self.members
        if K % E:
            raise ConfigError(f"{mode} propagation needs particles divisible by the ensemble size {E}, got {K}")
        index = torch.arange(N * K, device=device).view(N, K)
        if mode == "ts1":
            index = index.gather(1, torch.rand(N, K, device=device).argsort(1))
        elif mode != "tsinf":
            raise ConfigError(f"unknown propagation '{mode}'; valid: ts1, tsinf, expectation")
        return index.view(N, K // E, E).permute(2, 0, 1).reshape(E, -1)

    def propagate(
        self, state: torch.Tensor, action: torch.Tensor, mode: Propagation, order: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Move K particles per row one step: state `[N, K, S]`, action `[N, A]` → next state `[N, K, S]`;
        `order` is this step's `assignment` (drawn here if not given)."""
        N, K, S = state.shape
        action = action[:, None].expand(N, K, -1)
        if mode == "expectation":
            s = state.reshape(1, N * K, S).expand(self.members, -1, -1)
            a = action.reshape(1, N * K, -1).expand(self.members, -1, -1)
            mean, _ = self.members_next(s, a)
            return mean.mean(0).reshape(N, K, S)
        if order is None:
            order = self.assignment(N, K, mode, state.device)

        def sample(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            mean, std = self.members_next(s, a)
            return mean + std * torch.randn_like(std)

        return by_member(sample, order, state, action)


def by_member(fn: Callable[..., torch.Tensor], order: torch.Tensor, *xs: torch.Tensor) -> torch.Tensor:
    """`fn` over per-member batches: each x `[N, K, D]` is split by `order` (`assignment`, `[E, M]`) into
    `[E, M, D]`, and `fn`'s output `[E, M, ...]` is put back in particle order, `[N, K, ...]`."""
    N, K = xs[0].shape[:2]
    flat = order.reshape(-1)
    out = fn(*(x.reshape(N * K, -1)[flat].view(*order.shape, -1) for x in xs))
    put = out.new_empty(N * K, *out.shape[2:])
    put[flat] = out.reshape(flat.shape[0], *out.shape[2:])
    return put.view(N, K, *out.shape[2:])
