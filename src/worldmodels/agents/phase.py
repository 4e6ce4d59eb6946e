"""Phases: the parts of a run an agent declares (`Agent.phases`, a `PhaseSpec` each) and the one trainer
(`train/loop.py`) carries out in order, each advanced a chunk at a time.

This is the protocol between the two: a phase kind subclasses `Phase` and registers with
`register_phase("kind")`; after each chunk it answers with a `Tick` (how far it got in its own unit, a
metrics line to log, whether the trainer should evaluate or checkpoint now). The trainer owns everything
around the chunks (seeding, evaluation, logging, checkpoints, resume); a phase owns its data and progress
and hands them over as `Saved` parts (JSON state, numpy arrays, torch objects) for every checkpoint.
It lives beside the agents, below the trainer, so that an agent's own phase kinds (World Models',
`agents/world_models/phases.py`) register without importing `train`; `learn`, the phase of most agents,
is in `train/phases.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from worldmodels.agents.base import PhaseSpec
from worldmodels.data.sources import OfflineSource


def derive_seed(seed: int, *stream: int) -> int:
    """An independent seed for one random stream of a run (`stream` names it: numbers, by convention)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


class Run(Protocol):
    """What a phase sees of the trainer running it."""

    cfg: Any
    run_dir: Path
    agent: Any
    step: int  # env steps so far, action repeat included (offline: updates); phases that spend them add
    pool: Any  # the run's environments (`EnvPool`), for phases that collect
    offline: OfflineSource | None
    phases: list[Phase]


@dataclass
class Tick:
    """What one chunk of a phase did: `advanced` units of progress for the bar (0 from a phase that moved
    the bar as it went), up to `count` (the phase's own counter: TensorBoard's x axis for its metrics and
    the seed of an evaluation it asks for); a metrics line to log; whether to evaluate or checkpoint now."""

    count: int
    advanced: int = 1
    metrics: dict[str, float] | None = None
    evaluate: bool = False
    checkpoint: bool = False
    postfix: str | None = None


@dataclass
class Saved:
    """A phase's part of a checkpoint: `state` is JSON, `arrays` go to `<name>.npz` files, `torch` to optim.pt."""

    state: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    torch: Any = None


class Phase:
    """A part of training: runs while not `finished`, a chunk per `advance`."""

    unit = "step"
    final_eval = False
    """Evaluate when the phase ends, unless the last chunk just did."""
    uses_envs = False
    """Steps the trainer's environment pool (else the trainer closes it once the phases are built)."""

    def __init__(self, spec: PhaseSpec, trainer: Run):
        self.spec, self.trainer = spec, trainer
        self.cfg, self.agent = trainer.cfg, trainer.agent
        self.name = spec.name
        self.done = False

    @property
    def finished(self) -> bool:
        return self.done

    @property
    def total(self) -> int:
        """Units the phase runs for (the progress bar's end)."""
        return self.spec.budget

    @property
    def progress(self) -> int:
        raise NotImplementedError

    def check(self) -> None:
        """Before a resumed run continues this phase: raise ConfigError if the config no longer fits it."""

    def start(self) -> None:
        """Once, when a new run begins (not on resume)."""

    def advance(self, bar: tqdm) -> Tick | None:
        """One chunk of work; None when the phase stops without finishing (a budget ran out)."""
        raise NotImplementedError

    def stop(self) -> None:
        """An evaluation reached `train.stop_return`."""

    def flush(self) -> dict[str, float] | None:
        """Metrics gathered since the last logged line, when the phase ends."""
        return None

    def reset(self) -> None:
        """Start again from nothing: drop the phase's data and progress (its modules are reset by the trainer)."""
        self.done = False

    def save(self) -> Saved:
        return Saved()

    def load(self, saved: Saved, path: Path) -> None:
        """Restore from checkpoint `path`; inside the trainer's `fitting` block."""

    def saved(self) -> None:
        """After a checkpoint was written."""

    def unsaved_bytes(self) -> int:
        """About what this phase adds to a checkpoint beyond the weights."""
        return 0

    def summary(self) -> dict[str, Any]:
        return {}

    def end(self) -> None:
        """After the phase ran, finished or not: release its workers, draw the run's figures."""


PHASES: dict[str, type[Phase]] = {}
"""Phase kinds by name (`PhaseSpec.kind`)."""


def register_phase(kind: str):
    def decorate(cls: type[Phase]) -> type[Phase]:
        PHASES[kind] = cls
        return cls

    return decorate
