"""Phases: the parts of a run that an agent declares (`Agent.phases`, as `PhaseSpec`s) and the trainer
carries out in order, each advanced a chunk at a time; and update streams, the named kinds of update a
phase makes (`Stream`).

After each chunk a phase answers with a `Tick`: how far it got in its own unit, a metrics line to log, and
whether the trainer should evaluate or checkpoint now. The trainer owns everything around the chunks
(seeding, evaluation, logging, checkpoints, resume); a phase owns its data and progress and hands them
over as `Saved` parts (JSON state, numpy arrays, torch objects) for every checkpoint.

This module is the ground floor agents build phases on (World Models registers its own kinds); the
trainer's kinds `learn` (collect → replay → update streams) and `fit` (a budget of updates over the data
an earlier phase gathered) live in `train/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from worldmodels.data.sources import SampleSpec


@dataclass(frozen=True)
class Stream:
    """One named kind of update in a phase: the agent method `update` (default: the stream's name) is
    called with a batch, and returns its metrics.

    A stream with a `sample` draws its own batches: `ratio` replayed steps per collected step in a `learn`
    phase, once per step of a `fit` phase; it starts once the run has `start` env steps (`learn`, beyond
    `train.prefill`) or the phase `start` steps (`fit`). A stream without one follows the stream before it:
    it runs after each of that stream's updates, on the same batch, from that stream's `start`-th update on,
    and then on every `every`-th (0: each). `trains` names the optimisers it steps: reset when the phase is
    redone, their learning rate ramped up linearly over the stream's first `warmup` updates."""

    name: str
    sample: SampleSpec | None = None
    ratio: float = 0.0
    start: int = 0
    every: int = 0
    trains: tuple[str, ...] = ()
    warmup: int = 0
    update: str = ""

    @property
    def method(self) -> str:
        return self.update or self.name

    @classmethod
    def per_agent_steps(cls, name: str, sample: SampleSpec, every: float, start: int, warmup: int = 0) -> Stream:
        """Stream `name` of a `learn` phase making one update on `sample` every `every` agent steps from env
        step `start` on, stepping optimiser `name` by method `learn_{name}` (the papers' schedules: IRIS,
        DIAMOND)."""
        ratio = sample.batch_size * sample.seq_len / every  # replayed steps per agent step
        return cls(name, sample, ratio, start, trains=(name,), warmup=warmup, update=f"learn_{name}")


@dataclass(frozen=True)
class PhaseSpec:
    """One part of training an agent declares (`Agent.phases`); the trainer runs the phases in order.

    `kind` names how the phase runs (`learn`, `fit`, or a kind an agent registers); `streams` are its
    updates; `trains` names the optimisers (in `Agent.optimizers`) whose parameters it fits, which are reset
    when the phase is redone (by default those of its streams); `sample` is what a phase kind without streams
    draws; `budget` how far it goes in its own unit (`learn` has none: it runs to `train.steps`, read as it
    goes, so a run can be extended); `gives` says what later phases get from it, for the message when they
    are asked for before it has finished."""

    name: str
    kind: str
    trains: tuple[str, ...] = ()
    sample: SampleSpec | None = None
    budget: int = 0
    gives: str = ""
    streams: tuple[Stream, ...] = ()

    def __post_init__(self) -> None:
        if not self.trains:
            trains = dict.fromkeys(name for stream in self.streams for name in stream.trains)
            object.__setattr__(self, "trains", tuple(trains))
        if self.streams and self.streams[0].sample is None:
            raise ValueError(f"phase '{self.name}': its first stream '{self.streams[0].name}' must sample batches")


def derive_seed(seed: int, *stream: int) -> int:
    """An independent seed for one random stream of a run (`stream` names it: numbers, by convention)."""
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]."""
    return every > 0 and before // every != after // every


class Run(Protocol):
    """What a phase sees of the trainer running it."""

    cfg: Any
    run_dir: Path
    rank: int  # this process's rank under torchrun (0 alone, or the one that logs and writes)
    world: int  # how many ranks run (1 without torchrun)
    seed: int  # this rank's seed for its own random streams (`distributed.rank_seed`)
    agent: Any
    step: int  # env steps so far, of every rank, action repeat included (offline: updates); phases that spend them add
    pool: Any  # the run's environments (`EnvPool`), for phases that collect
    offline: Any  # the `OfflineSource` of `train.offline`, or None
    phases: list[Phase]
    clock: Any  # a `train.metrics.Stopwatch`: where the wall time goes (`perf/share_*`)


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

    def load_without_shard(self, saved: Saved, path: Path) -> None:
        """Instead of `load`, on a resume on more ranks than wrote the checkpoint, for a rank that had none:
        `saved` is rank 0's part; keep what every rank shares and start this rank's own data anew. By
        default `load`: a phase whose state is the same on every rank."""
        self.load(saved, path)

    def absorb(self, saved: Saved, path: Path, shard: int) -> None:
        """After `load`, on a resume on fewer ranks than wrote the checkpoint: take over the data of rank
        `shard` of that run, whose part is `saved` (a phase whose state every rank shares has none)."""

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
