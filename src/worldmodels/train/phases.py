"""Phases: the parts of a run that an agent declares (`Agent.phases`) and the one `Trainer` carries out in
order, each advanced a chunk at a time.

After each chunk a phase answers with a `Tick`: how far it got in its own unit, a metrics line to log, and
whether the trainer should evaluate or checkpoint now. The trainer owns everything around the chunks
(seeding, evaluation, logging, checkpoints, resume); a phase owns its data and progress and hands them
over as `Saved` parts (JSON state, numpy arrays, torch objects) for every checkpoint.

`learn`, registered here, is the phase of most agents: collect with the current policy into replay (or
read a recorded dataset, `train.offline`) and update at `ratio` until `train.steps`. World Models
registers its four in `train/world_models/phases.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.agents.base import PhaseSpec, raise_if_non_finite, to_tensor
from worldmodels.data import Replay
from worldmodels.data.files import readable
from worldmodels.data.sources import OfflineSource, OnlineSource
from worldmodels.errors import ConfigError, EnvError, TrainingError
from worldmodels.train.bench import cpu_settings
from worldmodels.train.checkpoint import list_checkpoints, replay_chunks
from worldmodels.train.logger import plot_curve
from worldmodels.train.metrics import Means

SLOW_HOURS = 3
"""A CPU run estimated to need more than this many hours is told which CPU setting learned in the benchmarks."""


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
    metrics: dict[str, float | torch.Tensor] | None = None
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


@register_phase("learn")
class LearnPhase(Phase):
    """Collect with the current policy → store → update at the spec's ratio, until `train.steps` env steps
    (read at every step, so a run can be extended). With `train.offline` the batches come from a recorded
    dataset instead: nothing is collected and one update is one step."""

    final_eval = True

    def __init__(self, spec: PhaseSpec, trainer: Run):
        super().__init__(spec, trainer)
        t = self.cfg.train
        self.offline: OfflineSource | None = trainer.offline
        self.uses_envs = self.offline is None
        self.rng = np.random.default_rng(derive_seed(t.seed, 1))  # random prefill actions
        if self.offline is None:
            self.pool = trainer.pool
            self.replay = Replay(t.replay_capacity, self.pool.num_envs, derive_seed(t.seed, 3), self.agent.priority)
            self.source = OnlineSource(self.replay)
            envs = self.pool.num_envs
        else:
            self._refuse_offline()
            self.source, envs = self.offline, 1
        self.state = self.agent.initial_state(envs)
        self.is_first = np.ones(envs, bool)
        self.update_credit = 0.0
        self.episodes = 0
        self.last_return: float | None = None
        self._recent = Means()  # since the last log line
        self._window = {"time": time.perf_counter(), "step": trainer.step, "updates": self.agent.updates}
        self._pace: dict[str, float] | None = {}  # where the pace of training is measured from; None once done

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
        if self.offline is None:
            first = self.pool.first_records()
            self.replay.add(self._with_agent_records(first.records, {}, 0), first.streams)

    def reset(self) -> None:
        if self.trainer.step > 0:
            raise ConfigError(f"phase '{self.name}' cannot be redone inside a run; start a new --run-dir instead")

    def advance(self, bar: tqdm) -> Tick:
        t, before = self.cfg.train, self.trainer.step
        if self.offline is None:
            self._collect()
        else:
            self.trainer.step, self.update_credit = before + 1, self.update_credit + 1
        self._train()
        self._warn_if_slow(bar)
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

    def _collect(self) -> None:
        t = self.cfg.train
        extra: dict[str, np.ndarray] = {}
        if self.trainer.step < t.prefill:
            action = self.pool.act_spec.random(self.pool.num_envs, self.rng)
        else:
            device = self.agent.device
            obs = to_tensor(self.pool.obs, device)
            is_first = torch.as_tensor(self.is_first, device=device)
            action, self.state, extra = self.agent.act(obs, is_first, self.state, explore=True)
            action = action.cpu().numpy()
        try:
            out = self.pool.step(action)
        except EnvError as err:
            step = self.trainer.step
            raise EnvError(f"{err} (after {step:,} env steps of the run; its last checkpoint is intact)") from None
        self.replay.add(self._with_agent_records(out.records, extra, self.pool.num_envs), out.streams)
        self.is_first = out.is_first
        self.trainer.step += self.pool.num_envs * self.cfg.env.action_repeat
        for _, ret, length in out.finished:
            self.episodes += 1
            self.last_return = ret
            self._recent.add({"episode/return": ret, "episode/length": length})
        if self.trainer.step >= t.prefill:
            sample = self.spec.sample
            self.update_credit += self.pool.num_envs * self.spec.ratio / (sample.batch_size * sample.seq_len)

    def _with_agent_records(
        self, records: dict[str, np.ndarray], extra: dict[str, np.ndarray], acted: int
    ) -> dict[str, np.ndarray]:
        """Add the agent's own per-step data: `extra` for the first `acted` rows, zeros elsewhere."""
        rows = len(records["obs"])
        for key, (shape, dtype) in self.agent.record_spec().items():
            value = np.zeros((rows, *shape), dtype)
            if key in extra:
                value[:acted] = extra[key]
            records[key] = value
        return records

    def _train(self) -> None:
        if not self.source.can_sample(self.spec.sample):
            return
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = self.source.sample(self.spec.sample)
            index = batch.get("index")
            batch = {k: to_tensor(v, self.agent.device) for k, v in batch.items()}
            self._recent.add(self.agent.update(batch))
            if self.agent.priority is not None:
                self._set_priorities(index, self.agent.new_priorities)

    def _set_priorities(self, index: np.ndarray, priorities: np.ndarray) -> None:
        """Priorities are data the replay needs on the host after every update; non-finite ones come from a
        non-finite loss, which is the error to report (`step` records it without stopping)."""
        if not np.isfinite(priorities).all():
            raise_if_non_finite(self.agent.optimizers.values())
            raise TrainingError(f"agent '{self.cfg.agent.name}' set non-finite replay priorities")
        self.replay.update_priorities(index, priorities)

    def _warn_if_slow(self, bar: tqdm) -> None:
        """Once, a minute into training after the prefill: when the rest of the run would take more than
        `SLOW_HOURS` on a CPU at the measured pace, say so and name a setting the benchmarks learned with."""
        step, prefill = self.trainer.step, 0 if self.offline is not None else self.cfg.train.prefill
        if self._pace is None or step < prefill:
            return
        now = time.perf_counter()
        if not self._pace:
            self._pace.update(time=now, step=step)
            return
        if now - self._pace["time"] < 60:
            return
        per_s = (step - self._pace["step"]) / (now - self._pace["time"])  # env steps per second
        hours = (self.cfg.train.steps - step) / max(per_s, 1e-9) / 3600
        self._pace = None
        if hours > SLOW_HOURS and self.agent.device.type == "cpu":
            hint = cpu_settings(self.cfg.preset, self.cfg.agent.name) or "lower train.ratio or train.steps"
            bar.write(
                f"note: at this pace the run needs about {hours:.0f} more hours on this CPU "
                f"(train.ratio={self.spec.ratio:g}); for a CPU: {hint}"
            )

    def _log(self) -> tuple[dict[str, float], str]:
        metrics = self._recent.pop()  # first: the time below then includes the device's queued work
        now, step, updates = time.perf_counter(), self.trainer.step, self.agent.updates
        elapsed = max(now - self._window["time"], 1e-9)
        metrics["perf/steps_per_s"] = (step - self._window["step"]) / elapsed
        metrics["perf/updates_per_s"] = (updates - self._window["updates"]) / elapsed
        metrics["train/updates"] = updates
        metrics["train/episodes"] = self.episodes
        metrics["replay/size"] = len(self.replay if self.offline is None else self.offline)
        self._window = {"time": now, "step": step, "updates": updates}
        last = "-" if self.last_return is None else f"{self.last_return:.1f}"
        return (
            metrics,
            f"{metrics['perf/steps_per_s']:.0f} steps/s, {metrics['perf/updates_per_s']:.1f} upd/s, return {last}",
        )

    def flush(self) -> dict[str, float] | None:
        return self._log()[0] if self._recent else None

    def summary(self) -> dict[str, Any]:
        return {"episodes": self.episodes}

    def end(self) -> None:
        plot_curve(self.trainer.run_dir, f"{self.cfg.agent.name} on {self.cfg.env.id}")

    # ------------------------------------------------------------------ checkpoints

    def unsaved_bytes(self) -> int:
        return self.replay.unsaved_bytes() if self.offline is None else 0

    def save(self) -> Saved:
        if self.offline is None:
            replay_arrays, replay = self.replay.save(self.trainer.run_dir / "replay")
            arrays, data = {"replay": replay_arrays, "envs": self.pool.state_dict()}, {"replay": replay}
        else:
            arrays, data = {}, {"dataset": self.offline.state_dict()}
        state = {
            **data,
            "update_credit": self.update_credit,
            "episodes": self.episodes,
            "last_return": self.last_return,
            "is_first": self.is_first.tolist(),
            "rng": self.rng.bit_generator.state,
        }
        return Saved(state, arrays, torch={"act_state": self.state})

    def load(self, saved: Saved, path: Path) -> None:
        s = saved.state
        if self.offline is None:
            with readable(path / "manifest.json"):  # the arrays a checkpoint of an online run always has
                replay, envs = saved.arrays["replay"], saved.arrays["envs"]
        with readable(path / "state.json"):
            data = s["dataset"] if self.offline is not None else s["replay"]
            self.update_credit, self.episodes = float(s["update_credit"]), int(s["episodes"])
            self.last_return, self.is_first = s["last_return"], np.asarray(s["is_first"], bool)
            self.rng.bit_generator.state = s["rng"]
        if self.offline is not None:
            self.offline.load_state_dict(data)
        else:
            self.replay.load(self.trainer.run_dir / "replay", replay, data)
            with readable(path / "envs.npz"):  # a pool of another size is a ConfigError, which passes
                self.pool.load_state_dict(envs)
        self.state = _to_device((saved.torch or {}).get("act_state"), self.agent.device)  # recurrent memory
        self._window = {"time": time.perf_counter(), "step": self.trainer.step, "updates": self.agent.updates}

    def saved(self) -> None:
        """Replay chunks are shared between checkpoints: delete those no kept checkpoint refers to."""
        if self.offline is not None:
            return
        needed = set().union(*(replay_chunks(c) for c in list_checkpoints(self.trainer.run_dir / "checkpoints")))
        for chunk in (self.trainer.run_dir / "replay").glob("*.npz"):
            if chunk.name not in needed:
                chunk.unlink()


def _to_device(state: Any, device: torch.device) -> Any:
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    return state.to(device) if isinstance(state, torch.Tensor) else state
