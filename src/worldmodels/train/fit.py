"""The `fit` phase: a budget of update steps over the data an earlier phase gathered (the replay of a
`learn` phase before it) or the recorded dataset of `train.offline`, with no acting. Each step gives every
started sampling stream one update (and its followers); an agent that trains in stages (a tokenizer, then
a world model, then a policy on them) declares a `fit` phase per stage instead of phase kinds of its own.
A fit phase evaluates every `train.eval_every` of its own steps."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from worldmodels.errors import ConfigError
from worldmodels.phases import Phase, PhaseSpec, Run, Saved, Tick, crossed, register_phase
from worldmodels.train.metrics import Means
from worldmodels.train.streams import Streams


@register_phase("fit")
class FitPhase(Phase):
    def __init__(self, spec: PhaseSpec, trainer: Run):
        super().__init__(spec, trainer)
        if not spec.streams:
            raise ConfigError(f"phase '{spec.name}' (fit) declares no update streams")
        self.streams = Streams(spec.streams, self.agent, spec.name, trainer.clock)
        self.count = 0
        self._recent = Means()  # since the last log line

    @property
    def source(self) -> Any:
        """The replay of the latest phase before this one that has one, else the offline dataset."""
        mine = self.trainer.phases.index(self) if self in self.trainer.phases else len(self.trainer.phases)
        for phase in reversed(self.trainer.phases[:mine]):
            if getattr(phase, "source", None) is not None:
                return phase.source
        if self.trainer.offline is None:
            raise ConfigError(
                f"phase '{self.name}' (fit) has no data: no phase before it collects and train.offline is not set"
            )
        return self.trainer.offline

    @property
    def progress(self) -> int:
        return self.count

    def advance(self, bar: tqdm) -> Tick:
        before = self.count
        self.streams.earn(lambda stream: 1.0, before)
        self.streams.run(self.source, self._recent.add)
        self.count = before + 1
        self.done = self.count >= self.spec.budget
        t = self.cfg.train
        metrics = self._log() if crossed(before, self.count, t.log_every) else None
        return Tick(
            count=self.count,
            metrics=metrics,
            evaluate=crossed(before, self.count, t.eval_every),
            checkpoint=crossed(before, self.count, t.checkpoint_every),
        )

    def _log(self) -> dict[str, float]:
        return {f"{self.name}/{k}": v for k, v in self._recent.pop().items()} | self.trainer.clock.pop()

    def flush(self) -> dict[str, float] | None:
        return self._log() if self._recent else None

    def reset(self) -> None:
        super().reset()
        self.count = 0
        self.streams = Streams(self.spec.streams, self.agent, self.name, self.trainer.clock)

    def save(self) -> Saved:
        state = {"count": self.count, "streams": self.streams.state_dict()}
        if self.trainer.offline is not None:  # where its sampler is: resumed, the phase draws the same batches
            state["dataset"] = self.trainer.offline.state_dict()
        return Saved(state)

    def load(self, saved: Saved, path) -> None:
        self.count = int(saved.state["count"])
        self.streams.load_state_dict(saved.state["streams"])
        if self.trainer.offline is not None:
            self.trainer.offline.load_state_dict(saved.state["dataset"])

    def summary(self) -> dict[str, Any]:
        return {f"{self.name}_steps": self.count, **self.streams.summary()}
