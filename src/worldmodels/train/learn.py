"""The `learn` phase, most agents' only one: collect with the current policy into replay (or read a
recorded dataset, `train.offline`) and spend the credit of the phase's update streams as it comes, until
`train.steps`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from worldmodels.agents.base import raise_if_non_finite
from worldmodels.data.files import readable
from worldmodels.data.sources import OfflineSource, OnlineSource
from worldmodels.errors import ConfigError, TrainingError
from worldmodels.phases import Phase, PhaseSpec, Run, Saved, Tick, crossed, register_phase
from worldmodels.train.bench import cpu_settings
from worldmodels.train.collect import Collector
from worldmodels.train.logger import plot_curve
from worldmodels.train.metrics import Means
from worldmodels.train.streams import Streams

SLOW_HOURS = 3
"""A CPU run estimated to need more than this many hours is told which CPU setting learned in the benchmarks."""


@register_phase("learn")
class LearnPhase(Phase):
    """Collect with the current policy → store → update each stream at its ratio, until `train.steps` env
    steps (read at every step, so a run can be extended). With `train.offline` the batches come from a
    recorded dataset instead: nothing is collected and one step gives every stream one update."""

    final_eval = True

    def __init__(self, spec: PhaseSpec, trainer: Run):
        super().__init__(spec, trainer)
        self.offline: OfflineSource | None = trainer.offline
        self.uses_envs = self.offline is None
        if self.offline is None:
            self.collector: Collector | None = Collector(trainer)
            self.source: Any = OnlineSource(self.collector.replay)
        else:
            self._refuse_offline()
            self.collector, self.source = None, self.offline
        self.streams = Streams(spec.streams, self.agent, spec.name, trainer.clock)
        self.pace = Pace(trainer, 0 if self.offline is not None else self.cfg.train.prefill)
        self._recent = Means()  # since the last log line
        self._window = {"time": time.perf_counter(), "step": trainer.step, "updates": self.agent.updates}

    @property
    def finished(self) -> bool:
        return self.trainer.step >= self.cfg.train.steps

    @property
    def total(self) -> int:
        return self.cfg.train.steps

    @property
    def progress(self) -> int:
        return self.trainer.step

    def _refuse_offline(self) -> None:
        """An agent that learns from what it chose while acting, or re-weights replay, needs online data."""
        own = ", ".join(self.agent.record_spec())
        if own or self.agent.priority is not None:
            why = f"it learns from what it recorded while acting ({own})" if own else "it samples by priority"
            raise ConfigError(
                f"agent '{self.cfg.agent.name}' cannot learn from an offline dataset: {why}; "
                f"train it online (drop train.offline)"
            )

    def start(self) -> None:
        if self.collector is not None:
            self.collector.start()

    def reset(self) -> None:
        if self.trainer.step > 0:
            raise ConfigError(f"phase '{self.name}' cannot be redone inside a run; start a new --run-dir instead")

    def advance(self, bar: tqdm) -> Tick:
        t, before = self.cfg.train, self.trainer.step
        if self.collector is None:
            self.trainer.step = before + 1
            self.streams.earn(lambda stream: 1.0, self.trainer.step)
        else:
            self.collector.collect(self._recent.add)
            if self.trainer.step >= t.prefill:
                envs = self.collector.pool.num_envs * self.trainer.world  # the global batch's env steps
                self.streams.earn(
                    lambda s: envs * s.ratio / (s.sample.batch_size * s.sample.seq_len), self.trainer.step
                )
        self.streams.run(self.source, self._recent.add, None if self.collector is None else self._sampled)
        self.pace.check(bar)
        now = self.trainer.step
        metrics, postfix = self._log() if crossed(before, now, t.log_every) else (None, None)
        return Tick(
            count=now,
            advanced=now - before,
            metrics=metrics,
            evaluate=crossed(before, now, t.eval_every),
            checkpoint=crossed(before, now, t.checkpoint_every),
            postfix=postfix,
        )

    def _sampled(self, index: np.ndarray) -> None:
        """Priorities are data the replay needs on the host after every update; non-finite ones come from a
        non-finite loss, which is the error to report (`step` records it without stopping)."""
        priorities = self.agent.new_priorities
        if not np.isfinite(priorities).all():
            raise_if_non_finite(self.agent.optimizers.values())
            raise TrainingError(f"agent '{self.cfg.agent.name}' set non-finite replay priorities")
        self.collector.replay.update_priorities(index, priorities)

    def _log(self) -> tuple[dict[str, float], str]:
        metrics = self._recent.pop()  # first: the time below then includes the device's queued work
        now, step, updates = time.perf_counter(), self.trainer.step, self.agent.updates
        elapsed = max(now - self._window["time"], 1e-9)
        metrics["perf/steps_per_s"] = (step - self._window["step"]) / elapsed
        metrics["perf/updates_per_s"] = (updates - self._window["updates"]) / elapsed
        metrics |= self.trainer.clock.pop()
        metrics["train/updates"] = updates
        metrics["train/episodes"] = self.collector.episodes if self.collector else 0
        metrics["replay/size"] = len(self.offline if self.collector is None else self.collector.replay)
        self._window = {"time": now, "step": step, "updates": updates}
        last = self.collector.last_return if self.collector else None
        shown = "-" if last is None else f"{last:.1f}"
        return (
            metrics,
            f"{metrics['perf/steps_per_s']:.0f} steps/s, {metrics['perf/updates_per_s']:.1f} upd/s, return {shown}",
        )

    def flush(self) -> dict[str, float] | None:
        return self._log()[0] if self._recent else None

    def summary(self) -> dict[str, Any]:
        return {"episodes": self.collector.episodes if self.collector else 0, **self.streams.summary()}

    def end(self) -> None:
        if self.trainer.rank == 0:
            plot_curve(self.trainer.run_dir, f"{self.cfg.agent.name} on {self.cfg.env.id}")

    # ------------------------------------------------------------------ checkpoints

    def unsaved_bytes(self) -> int:
        return self.collector.replay.unsaved_bytes() if self.collector else 0

    def save(self) -> Saved:
        if self.collector is None:
            return Saved({"dataset": self.offline.state_dict(), "streams": self.streams.state_dict()})
        saved = self.collector.save()
        saved.state["streams"] = self.streams.state_dict()
        return saved

    def load(self, saved: Saved, path: Path) -> None:
        with readable(path / "state.json"):
            self.streams.load_state_dict(saved.state["streams"])
            dataset = saved.state.get("dataset")
        if self.collector is None:
            self.offline.load_state_dict(dataset)
        else:
            self.collector.load(saved, path)
        self._window = {"time": time.perf_counter(), "step": self.trainer.step, "updates": self.agent.updates}

    def load_without_shard(self, saved: Saved, path: Path) -> None:
        with readable(path / "state.json"):
            self.streams.load_state_dict(saved.state["streams"])
        if self.collector is not None:
            self.collector.restart()  # this rank's environments and replay shard start anew
        self._window = {"time": time.perf_counter(), "step": self.trainer.step, "updates": self.agent.updates}

    def absorb(self, saved: Saved, path: Path, shard: int) -> None:
        if self.collector is not None:
            self.collector.absorb(saved, path, shard)

    def saved(self) -> None:
        if self.collector is not None:
            self.collector.saved()


class Pace:
    """Once, a minute into training after the prefill: when the rest of the run would take more than
    `SLOW_HOURS` on a CPU at the measured pace, say so and name a setting the benchmarks learned with."""

    def __init__(self, trainer: Run, prefill: int):
        self.trainer, self.prefill = trainer, prefill
        self.since: dict[str, float] | None = {}  # where the pace is measured from; None once told

    def check(self, bar: tqdm) -> None:
        step, cfg = self.trainer.step, self.trainer.cfg
        if self.since is None or step < self.prefill or self.trainer.rank:
            return
        now = time.perf_counter()
        if not self.since:
            self.since.update(time=now, step=step)
            return
        if now - self.since["time"] < 60:
            return
        per_s = (step - self.since["step"]) / (now - self.since["time"])  # env steps per second
        hours = (cfg.train.steps - step) / max(per_s, 1e-9) / 3600
        self.since = None
        if hours > SLOW_HOURS and self.trainer.agent.device.type == "cpu":
            hint = cpu_settings(cfg.preset, cfg.agent.name) or "lower train.ratio or train.steps"
            bar.write(
                f"note: at this pace the run needs about {hours:.0f} more hours on this CPU "
                f"(train.ratio={cfg.train.ratio:g}); for a CPU: {hint}"
            )
