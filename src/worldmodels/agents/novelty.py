"""Plan2Explore's intrinsic reward (Sekar et al. 2020) for the agents that learn behaviour in imagination.

An ensemble (the `novelty` slot: PETS's ensemble of MLPs, `dynamics/ensemble.py`) learns to predict each
replayed step's next features from its features and action, every member on its own bootstrap resample of
the batch's transitions. In imagination the disagreement of its members is a reward for the step:

    r_t ← r_t + novelty_scale · mean_f Std_e[μ_e(s_t, a_t)_f]        (member means in normalised units)

Where the world model has seen a transition often, the members agree; where it has not, they differ, so the
actor is drawn towards what it has not seen yet, and the pull fades as the data covers it: exploration for
sparse tasks whose first reward no random walk reaches. Not yet shown to help here: with `latent_mlp` on
MountainCar-v0 at the default scale it did not (`benchmarks/NOTES.md`, twenty-second sitting). Off unless a
preset fills the slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from worldmodels import contracts, distributed
from worldmodels.agents.base import Metrics, adam, frozen, step
from worldmodels.registry import DYNAMICS, component
from worldmodels.schema import Spec, non_negative, positive


@dataclass
class NoveltyConfig:
    """Fields of the agents whose actor may be drawn to novel transitions (their `Config` inherits them)."""

    novelty: Spec | None = component("dynamics", None, contract=contracts.EnsembleDynamics)
    """Plan2Explore's ensemble (e.g. `{name: ensemble, probabilistic: false}`; on the command line
    `agent.novelty.name=ensemble`): its members' disagreement on each imagined step is added to the reward;
    empty (the default): no intrinsic reward."""
    novelty_scale: float = non_negative(1.0)
    """Weight of the disagreement against the reward head's rewards."""
    novelty_lr: float = positive(3e-4)
    """Learning rate of the ensemble."""


class Novelty(nn.Module):
    """The ensemble, its optimiser, its update on replayed transitions and the reward it gives."""

    def __init__(self, cfg: NoveltyConfig, feat_dim: int, action_dim: int, adam_eps: float, grad_clip: float):
        super().__init__()
        self.scale, self.grad_clip = cfg.novelty_scale, grad_clip
        self.ensemble = DYNAMICS.build(cfg.novelty.name, cfg.novelty.cfg, latent_dim=feat_dim, action_dim=action_dim)
        self.optimizer = adam(self.ensemble.parameters(), cfg.novelty_lr, adam_eps)

    def update(self, feats: torch.Tensor, action: torch.Tensor, first: torch.Tensor) -> Metrics:
        """One step on the transitions of replayed windows: features `[B, T, F]` (detached), the actions
        that led into each step `[B, T, A]` and the episodes' first steps `[B, T]`."""
        inside = ~first[:, 1:].bool().flatten()  # state t → t+1 stays in one episode
        s, a = feats[:, :-1].flatten(0, 1)[inside], action[:, 1:].flatten(0, 1)[inside].float()
        s2 = feats[:, 1:].flatten(0, 1)[inside]
        n = len(s)
        if not distributed.agree(n > 0):  # every rank skips alike: the ranks meet in `step`
            return {}
        self.ensemble.update_normalisers(s, a, s2)
        boot = torch.randint(0, n, (self.ensemble.members, n), device=s.device)  # [E, n]: each member's resample
        loss, _ = self.ensemble.loss(s[boot], a[boot], s2[boot])
        return step(self.optimizer, loss, self.grad_clip, "novelty")

    def reward(self, feats: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The weighted disagreement on imagined steps: features `[H, N, F]` and actions `[H, N, A]` → `[H, N]`.
        Differentiable in its inputs (a continuous actor follows it through the dynamics), not in the ensemble."""
        lead = feats.shape[:-1]
        E = self.ensemble.members
        s = feats.reshape(1, -1, feats.shape[-1]).expand(E, -1, -1)
        a = actions.reshape(1, -1, actions.shape[-1]).expand(E, -1, -1)
        with frozen(self.ensemble):
            mean, _ = self.ensemble.members_normalised(s, a)  # [E, H·N, F]
        return self.scale * mean.var(0, correction=0).clamp(min=1e-12).sqrt().mean(-1).reshape(lead)
