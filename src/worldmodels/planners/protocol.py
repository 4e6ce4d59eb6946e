"""What a planner plans with, what it returns, and the pieces every sampling planner shares.

A planner is an optimiser over action sequences, `optimize(objective, x0) -> Plan`, where the objective
scores a population of candidate sequences in one batched call:

    objective(actions [B, P, H, A]) -> returns [B, P]

B independent problems (one per environment), P candidates, horizon H, A action dims (one-hot for
discrete actions). `rollout_objective` builds that objective from any model that offers

    step(state [N, ...], action [N, A]) -> (next_state [N, ...], reward [N] or [N, K])
    cont(state [N, ...]) -> [N] or [N, K]     (optional: probability that the episode goes on in a reached state)
    value(state [N, ...]) -> [N] or [N, K]    (optional terminal value)

where a state is any pytree of tensors with rows `[N, ...]` (a tensor, a tuple, an RSSM's state dict), so
the same planner serves a probabilistic ensemble with K particles per row (state `[N, K, S]`, rewards per
particle `[N, K]`, averaged into the row's return), a latent RSSM and a TD-MPC2 latent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map

from worldmodels.errors import ConfigError
from worldmodels.schema import positive, unit

State = Any  # a pytree of tensors `[N, ...]`
Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Model:
    """The model callbacks a planner needs (see the module docstring for shapes)."""

    step: Callable[[State, torch.Tensor], tuple[State, torch.Tensor]]
    value: Callable[[State], torch.Tensor] | None = None
    cont: Callable[[State], torch.Tensor] | None = None


@dataclass(frozen=True)
class Plan:
    """The result of one optimisation.

    actions: `[B, H, A]` the sequence to execute (its first step now); one-hot rows for discrete actions.
    centre:  `[B, H, A]` the sampling distribution's centre (mean, or probabilities if discrete): the warm start.
    returns: `[B]` the objective's estimate for the chosen sequence(s).
    elites:  `[B, K, H, A]` the final elite candidates, for planners that reuse them (iCEM), else None.
    std:     `[B, H, A]` the final sampling std of continuous planners that adapt it (MPPI), else None:
             TD-MPC2 explores with it.
    """

    actions: torch.Tensor
    centre: torch.Tensor
    returns: torch.Tensor
    elites: torch.Tensor | None = None
    std: torch.Tensor | None = None


def _repeat(state: State, times: int) -> State:
    return tree_map(lambda x: x.repeat_interleave(times, 0), state)


def rollout_objective(model: Model, start: State, discount: float = 1.0) -> Objective:
    """Score candidate sequences by rolling them through `model` from `start` (`[B, ...]`), all B × P
    candidates in one batch of N = B·P rows per step, each reward weighted by the discount and the
    probability that the episode is still running (as in the Dreamer family's imagination):

        R = Σ_{t<H} γ^t C_t r(s_t, a_t, s_{t+1}) + γ^H C_H v(s_H),    C_t = Π_{1≤τ≤t} c(s_τ)

    so the reward of the step that ends an episode counts and nothing after it does (C = 1 without `cont`)."""

    def objective(actions: torch.Tensor) -> torch.Tensor:
        B, P, H, A = actions.shape
        state = _repeat(start, P)  # [B·P, ...], rows of one problem together
        flat = actions.reshape(B * P, H, A)
        total = torch.zeros(B * P, device=actions.device)
        alive = torch.ones((), device=actions.device)  # C_t, per row or per particle
        for t in range(H):
            state, reward = model.step(state, flat[:, t])
            total = total + discount**t * _row_mean(alive * reward.float())
            if model.cont is not None:
                alive = alive * model.cont(state).float()
        if model.value is not None:
            total = total + discount**H * _row_mean(alive * model.value(state).float())
        return total.reshape(B, P)

    return objective


def _row_mean(x: torch.Tensor) -> torch.Tensor:
    """`[N]` from `[N]` or per-particle `[N, K]`."""
    return x.reshape(len(x), -1).mean(1)


@dataclass
class SamplingConfig:
    """Options shared by the sampling planners (CEM, MPPI, iCEM)."""

    horizon: int = positive(15)
    """Planned steps H."""
    population: int = positive(500)
    """Candidate sequences sampled per iteration P."""
    iterations: int = positive(5)
    """Refinements of the sampling distribution per action."""
    init_std: float = positive(0.5)
    """Std of the continuous sampling distribution at the start of each action, in units of the bound width."""
    momentum: float = unit(0.1)
    """Weight kept from the previous iteration's distribution: centre ← m·old + (1 − m)·new."""
    discrete_reset: float = unit(0.5)
    """Discrete actions: weight of the uniform distribution mixed into the warm-started probabilities at the
    start of each action, as continuous planning resets its std to `init_std`. Without it the elites'
    one-hot frequencies saturate the probabilities, every later candidate repeats the last plan, and the
    planner never revises it."""


class Planner:
    """Base of the planners: action space, bounds and the warm start by shifting the last plan.

    Continuous actions live in the box [low, high]^A (scalars or `[A]` tensors); discrete actions are
    one-hot over `action_dim` choices. Subclasses implement `optimize`.
    """

    def __init__(
        self,
        cfg: Any,
        action_dim: int,
        discrete: bool = False,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
    ):
        self.cfg = cfg
        self.horizon = cfg.horizon
        self.action_dim = action_dim
        self.discrete = discrete
        self.low = torch.as_tensor(low, dtype=torch.float32).expand(action_dim).clone()
        self.high = torch.as_tensor(high, dtype=torch.float32).expand(action_dim).clone()
        if not discrete and bool((self.low >= self.high).any()):
            raise ConfigError(f"planner action bounds need low < high, got low={low}, high={high}")

    def optimize(self, objective: Objective, x0: torch.Tensor, reuse: torch.Tensor | None = None) -> Plan:
        """Maximise `objective` starting from the centre `x0` `[B, H, A]`; `reuse` `[B, K, H, A]` are
        candidates carried over from the last plan (used by iCEM)."""
        raise NotImplementedError

    def bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.low.to(device), self.high.to(device)

    def initial(self, batch: int, device: torch.device) -> torch.Tensor:
        """The uninformed centre `[B, H, A]`: the middle of the bounds, or uniform probabilities."""
        if self.discrete:
            return torch.full((batch, self.horizon, self.action_dim), 1.0 / self.action_dim, device=device)
        low, high = self.bounds(device)
        return ((low + high) / 2).expand(batch, self.horizon, self.action_dim).clone()

    def warm_start(
        self, prev: Plan | None, batch: int, device: torch.device, reset: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last plan shifted one step forward, the new last step uninformed; rows where `reset` `[B]`
        is true (a new episode) and a missing plan start uninformed. Discrete plans are mixed with the
        uniform distribution by `discrete_reset`. Returns (x0 `[B, H, A]`, reuse)."""
        fresh = self.initial(batch, device)
        if prev is None:
            return fresh, None
        x0 = torch.cat([prev.centre[:, 1:], fresh[:, -1:]], 1)
        if self.discrete:  # only the sampling planners (CEM, MPPI) plan discrete actions
            x0 = torch.lerp(x0, fresh, self.cfg.discrete_reset)
        reuse = None
        if prev.elites is not None:
            K = prev.elites.shape[1]
            reuse = torch.cat([prev.elites[:, :, 1:], fresh[:, None, -1:].expand(-1, K, -1, -1)], 2)
        if reset is not None and bool(reset.any()):
            x0 = torch.where(reset[:, None, None], fresh, x0)
            if reuse is not None:
                reuse = torch.where(reset[:, None, None, None], fresh[:, None], reuse)
        return x0, reuse


def clamp(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(actions, high), low)


def sample(centre: torch.Tensor, std: torch.Tensor | None, population: int, low, high) -> torch.Tensor:
    """P candidates `[B, P, H, A]` around `centre` `[B, H, A]`: clipped Gaussian with `std` `[B, H, A]`,
    or, when `std` is None (discrete actions), one-hot samples of the probabilities `centre`."""
    if std is None:
        return sample_categorical(centre, population)
    noise = torch.randn(centre.shape[0], population, *centre.shape[1:], device=centre.device)
    return clamp(centre[:, None] + std[:, None] * noise, low, high)


def sample_categorical(probs: torch.Tensor, population: int) -> torch.Tensor:
    """One-hot samples `[B, P, H, n]` from per-step probabilities `[B, H, n]`."""
    B, H, n = probs.shape
    index = torch.multinomial(probs.reshape(B * H, n), population, replacement=True)  # [B·H, P]
    return F.one_hot(index.reshape(B, H, population).transpose(1, 2), n).to(probs.dtype)


def top_k(candidates: torch.Tensor, returns: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best candidates `[B, k, H, A]` and their returns `[B, k]`, best first."""
    best, index = returns.topk(k, dim=1)
    return torch.gather(candidates, 1, index[:, :, None, None].expand(-1, -1, *candidates.shape[2:])), best


def discrete_plan(probs: torch.Tensor) -> torch.Tensor:
    """The most probable action at each step, one-hot `[B, H, n]`."""
    return F.one_hot(probs.argmax(-1), probs.shape[-1]).to(probs.dtype)


def check_elites(elites: int, population: int, name: str) -> None:
    if not 1 <= elites <= population:
        raise ConfigError(f"{name}: elites must be between 1 and the population ({population}), got {elites}")
