"""What the training loop needs of an algorithm, and the shared optimiser/checkpoint plumbing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from worldmodels.envs.spaces import ActSpec, ObsSpec
from worldmodels.errors import TrainingError


class Agent(nn.Module):
    """An algorithm: acts on batches of observations and learns from replayed `[B, T, ...]` batches.

    Subclasses register in `AGENTS`, declare a `Config` dataclass, build their components from it,
    put their optimisers in `self.optimizers` (so checkpoints hold them) and implement `act`/`update`.
    """

    def __init__(self, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__()
        self.obs_spec, self.act_spec = obs_spec, act_spec
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.updates = 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def initial_state(self, n: int) -> Any:
        """Recurrent state for `n` environments (None for memoryless agents)."""
        return None

    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> tuple[torch.Tensor, Any]:
        """Model actions `[N, A]` for observations `[N, ...]`; `explore` samples, else the mode."""
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One learning step on a replayed batch `[B, T, ...]`; returns scalar metrics."""
        raise NotImplementedError

    def optimizer_state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


def adam(params: Iterable[nn.Parameter], lr: float, eps: float) -> torch.optim.Adam:
    return torch.optim.Adam(list(params), lr=lr, eps=eps)


def step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float, name: str) -> dict[str, float]:
    """Backpropagate `loss`, clip the gradient norm of `opt`'s parameters and step; fail on non-finite loss."""
    if not torch.isfinite(loss):
        raise TrainingError(
            f"the {name} loss became {loss.item()}; the last checkpoint is intact — "
            f"resume with a lower learning rate for {name} (e.g. halve it) or a smaller train.ratio"
        )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"]]
    norm = nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    return {f"loss/{name}": loss.item(), f"grad_norm/{name}": norm.item()}


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Stop gradients into `modules`' parameters while still letting them flow through the modules."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
