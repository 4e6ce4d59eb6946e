"""What the training loop needs of an algorithm, and the shared optimiser/checkpoint plumbing."""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from worldmodels import distributed
from worldmodels.data.sources import SampleSpec
from worldmodels.data.windows import Ends
from worldmodels.errors import TrainingError
from worldmodels.phases import PhaseSpec, Stream
from worldmodels.schema import unit
from worldmodels.spaces import ActSpec, Obs, ObsSpec, obs_map

Metrics = dict[str, torch.Tensor | float]
"""What an update reports: named 0-dim tensors, detached and left on the agent's device (the trainer reads
them all at once per log line), or floats for values that live on the host."""


class Acted(NamedTuple):
    """What `act` returns: model actions `[N, A]`, the state to pass to the next call (None for memoryless
    agents), and the `record_spec` data chosen with the actions (`[N, ...]` arrays), stored beside them."""

    action: torch.Tensor
    state: Any = None
    records: dict[str, np.ndarray] = {}


class Dream(NamedTuple):
    """What `open_loop` imagines: observations `[T, ...]` (over the context: what the model makes of the
    real ones, such as their reconstructions), for a model with a reward head the rewards `[T]` received
    on arriving at each (None otherwise), and the model's own measures of the episode (0-dim tensors,
    such as a tokenizer's codebook usage), reported under `eval/`."""

    obs: Any
    reward: torch.Tensor | None = None
    metrics: dict[str, torch.Tensor] = {}


@dataclass
class WindowsConfig:
    """Fields of every agent whose world model learns from replayed windows (its `Config` inherits them)."""

    terminal_windows: float = unit(0.0)
    """Share of each world-model batch drawn among the windows that end at a termination (DreamerV2's
    `prioritize_ends`, `data/windows.py`); 0: every window alike. Where terminations are rare (a goal that
    ends the episode), a continue head trained on uniform windows learns their base rate and nothing else
    (benchmarks/NOTES.md, twentieth sitting)."""


class Agent(nn.Module):
    """An algorithm: acts on batches of observations and learns from replayed `[B, T, ...]` batches.

    Subclasses register in `AGENTS`, declare a `Config` dataclass, build their components from it,
    put their optimisers in `self.optimizers` (so checkpoints hold them) and implement `act`/`update`.
    """

    priority: tuple[float, float] | None = None
    """(α, β) to sample replay in proportion to priority^α with importance weights^β; None: uniform.
    A prioritised agent finds `index` `[B]` and `weight` `[B]` in its batches and sets `new_priorities`
    `[B]` (one per sampled sequence) in each `update`."""
    probe_overrides: tuple[str, ...] = ()
    """Overrides that keep a probe run of this agent short (`train/probe.py`): a smaller planner, fewer
    stages. The probe reaches the same code, so they shrink sizes and counts only."""

    terminal_windows: float = 0.0
    """Share of the batches of `windows` that end at a termination (an agent with a `WindowsConfig` sets it)."""

    def __init__(self, obs_spec: ObsSpec, act_spec: ActSpec):
        super().__init__()
        self.obs_spec, self.act_spec = obs_spec, act_spec
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.updates = 0
        self.new_priorities: np.ndarray | None = None

    def phases(self, train: Any) -> list[PhaseSpec]:
        """How this agent trains, given the run's `TrainConfig`: by default one `learn` phase, collecting
        with the current policy (or reading `train.offline`) with one update stream, `update`, training
        every optimiser at `train.ratio` on `windows` until `train.steps`."""
        stream = Stream("update", self.windows(train), train.ratio, trains=tuple(self.optimizers))
        return [PhaseSpec("learn", "learn", streams=(stream,))]

    def windows(self, train: Any) -> SampleSpec:
        """The run's `batch_size x seq_len` windows, `terminal_windows` of each batch among those that end at a
        termination."""
        ends = Ends(self.terminal_windows) if self.terminal_windows else None
        return SampleSpec(train.batch_size, train.seq_len, ends=ends)

    def record_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Extra per-step data this agent stores in replay (name → (shape, dtype)), such as MCTS visit
        counts. Rows where the agent did not act (random prefill, episode starts) hold zeros."""
        return {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def initial_state(self, n: int) -> Any:
        """Recurrent state for `n` environments (None for memoryless agents)."""
        return None

    def act(self, obs: torch.Tensor, is_first: torch.Tensor, state: Any, explore: bool) -> Acted:
        """Model actions `[N, A]` for observations `[N, ...]`; `explore` samples, else the mode."""
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor]) -> Metrics:
        """One learning step on a replayed batch `[B, T, ...]`; returns its `Metrics`, left on the device."""
        raise NotImplementedError

    def open_loop(self, obs: torch.Tensor, action: torch.Tensor, context: int) -> Dream:
        """Observations `[T, ...]` (and rewards, if the model predicts them) imagined from the first `context`
        real ones and the real actions `[T, A]` (action t is the one that led to observation t)."""
        raise NotImplementedError(f"{type(self).__name__} cannot dream: it has no observation decoder")

    def optimizer_state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


def adam(params: Iterable[nn.Parameter], lr: float, eps: float) -> torch.optim.Adam:
    return torch.optim.Adam(list(params), lr=lr, eps=eps)


_STEPPED: weakref.WeakKeyDictionary[torch.optim.Optimizer, tuple[str, torch.Tensor]] = weakref.WeakKeyDictionary()
"""Per optimiser that `step` has stepped: the name of its loss and `[loss, gradient norm]` of its latest step
while all were finite, else of its first non-finite one. Device tensors, read by `raise_if_non_finite`."""


def step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float, name: str) -> Metrics:
    """Backpropagate `loss`, clip the gradient norm of `opt`'s parameters and step; returns the loss and the
    norm as 0-dim tensors, reading nothing on the host.

    A non-finite loss or gradient norm is not refused here: that would be a host sync per step (a stall on
    a GPU, and no CUDA graphs). The gradient of such a step is zeroed instead, so the weights stay finite
    (Adam's moments still move them a little) and acting and later updates run as usual, and the step is
    recorded; the trainer calls `raise_if_non_finite` at every log line and before every checkpoint, so the
    run stops with the error naming this loss and no checkpoint holds a state stepped past it. Masking
    costs one small kernel per parameter tensor; checking lazily without it would let NaN weights reach
    acting, which fails first with a less clear error (a distribution refusing NaN logits).

    Under torchrun the gradients and the loss are averaged over the ranks before clipping, so every rank
    steps alike (`distributed.average_gradients`), and a non-finite value on one rank is refused on all.
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in opt.param_groups for p in group["params"]]
    loss = distributed.average_gradients(params, loss.detach())  # the ranks meet here; one rank: as it was
    norm = nn.utils.clip_grad_norm_(params, clip)
    seen = torch.stack([loss.detach().float(), norm.float()])
    bad = ~torch.isfinite(seen).all()
    for p in params:
        if p.grad is not None:
            p.grad.masked_fill_(bad, 0.0)
    opt.step()
    _, kept = _STEPPED.get(opt, (name, seen))
    _STEPPED[opt] = (name, torch.where(torch.isfinite(kept).all(), seen, kept))
    return {f"loss/{name}": loss.detach(), f"grad_norm/{name}": norm}


def raise_if_non_finite(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Raise `TrainingError` if a step of one of `optimizers` had a non-finite loss or gradient norm, naming
    the loss; one host read for all of them."""
    stepped = [_STEPPED[opt] for opt in optimizers if opt in _STEPPED]
    if not stepped:
        return
    for (name, _), (loss, norm) in zip(stepped, torch.stack([seen for _, seen in stepped]).tolist()):
        if math.isfinite(loss) and math.isfinite(norm):
            continue
        what = f"loss became {loss}" if not math.isfinite(loss) else f"loss's gradient norm became {norm}"
        raise TrainingError(
            f"the {name} {what}; the last checkpoint is intact — "
            f"resume with a lower learning rate for {name} (e.g. halve it) or a smaller train.ratio"
        )


def to_tensor(obs: Obs, device: torch.device) -> torch.Tensor | dict[str, torch.Tensor]:
    """An observation batch (array or dict of arrays) as tensors on `device`."""
    return obs_map(lambda x: torch.as_tensor(x, device=device), obs)


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
