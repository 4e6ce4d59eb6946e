"""The training loop: collect with the current policy → store → update at `train.ratio` → evaluate →
log → checkpoint, with a progress bar. A run can be resumed exactly from its latest checkpoint.

With `train.offline` the batches come from a recorded dataset instead (`data/sources.py`): nothing is
collected, one update is one step of the run, and the same evaluation, logs and checkpoints apply."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import Config, save_config
from worldmodels.data import Replay
from worldmodels.data.files import readable
from worldmodels.data.sources import OfflineSource, OnlineSource, SampleSpec
from worldmodels.envs import EnvPool
from worldmodels.envs.config import EnvConfig
from worldmodels.errors import CheckpointError, ConfigError, EnvError
from worldmodels.registry import AGENTS
from worldmodels.schema import parse
from worldmodels.train.bench import cpu_settings
from worldmodels.train.checkpoint import (
    Payload,
    clean_interrupted,
    disk_space,
    fitting,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    replay_chunks,
    save_checkpoint,
    set_torch_rng_state,
    torch_rng_state,
)
from worldmodels.train.evaluate import evaluate
from worldmodels.train.logger import Logger, plot_curve

SLOW_HOURS = 3
"""A CPU run estimated to need more than this many hours is told which CPU setting learned in the benchmarks."""


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=cpu or device=auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_agent(cfg: Config, obs_spec, act_spec) -> Agent:
    """The agent named by `cfg.agent`, on the configured device."""
    agent = AGENTS.build(cfg.agent.name, cfg.agent.cfg, obs_spec=obs_spec, act_spec=act_spec)
    return agent.to(resolve_device(cfg.device))


def _to_device(state: Any, device: torch.device) -> Any:
    if isinstance(state, dict):
        return {k: _to_device(v, device) for k, v in state.items()}
    return state.to(device) if isinstance(state, torch.Tensor) else state


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from (None for a new run); refuses a resume without one and a new
    run in a folder that already holds one."""
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if resume and ckpt is None:
        raise CheckpointError(f"cannot resume: '{run_dir}' holds no complete checkpoint")
    if not resume and ckpt is not None:
        raise ConfigError(f"'{run_dir}' already holds a run; continue it with --resume or pick another --run-dir")
    return ckpt


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of `every` lies in (before, after]."""
    return every > 0 and before // every != after // every


def _seed(seed: int, *stream: int) -> int:
    return int(np.random.SeedSequence([seed, *stream]).generate_state(1)[0])


class Trainer:
    """Owns one run directory: its config, environments, agent, replay, logs and checkpoints."""

    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        ckpt = resume_point(self.run_dir, resume)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        random.seed(t.seed)
        torch.manual_seed(t.seed)
        self.rng = np.random.default_rng(_seed(t.seed, 1))  # random prefill actions
        self.offline = OfflineSource(t.offline, _seed(t.seed, 3)) if t.offline else None
        if self.offline is not None:
            cfg.env = parse(EnvConfig, self.offline.index["env"], "env")
        self.pool = EnvPool(cfg.env, _seed(t.seed, 2), num_envs=1 if self.offline else None)
        self.agent = build_agent(cfg, self.pool.obs_spec, self.pool.act_spec)
        if self.offline is not None:
            self.pool.close()  # it only told the agent the spaces; evaluations make their own environments
            self._check_offline()
        self.run_dir.mkdir(parents=True, exist_ok=True)  # only once the environment and agent are known good
        clean_interrupted(self.run_dir / "checkpoints")
        self.device = self.agent.device
        self.replay = Replay(t.replay_capacity, self.pool.num_envs, _seed(t.seed, 3), priority=self.agent.priority)
        self.source = OnlineSource(self.replay) if self.offline is None else self.offline
        self.spec = SampleSpec(t.batch_size, t.seq_len)
        self.state = self.agent.initial_state(self.pool.num_envs)
        self.is_first = np.ones(self.pool.num_envs, bool)
        self.step = 0  # env steps, action repeat included (offline: updates)
        self.update_credit = 0.0
        self.episodes = 0
        self.last_eval_step = -1
        self.last_return: float | None = None
        if resume:
            self._restore(ckpt)
        elif self.offline is None:
            first = self.pool.first_records()
            self.replay.add(self._with_agent_records(first.records, {}, 0), first.streams)
        save_config(cfg, self.run_dir / "config.yaml")  # after a resume fits: a failed one leaves the run as it was
        self.logger = Logger(self.run_dir, resume_step=self.step if resume else None)
        self._window = {"time": time.perf_counter(), "step": self.step, "updates": self.agent.updates}
        self._recent: dict[str, list[float]] = {}
        self._pace: dict[str, float] | None = {}  # where the pace of training is measured from; None once done

    # ------------------------------------------------------------------ main loop

    def run(self) -> dict[str, Any]:
        t = self.cfg.train
        bar = tqdm(
            total=t.steps,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            desc="train",
            disable=None,
            smoothing=0.05,
        )
        try:
            while self.step < t.steps:
                before = self.step
                if self.offline is None:
                    self._collect()
                else:
                    self.step, self.update_credit = self.step + 1, self.update_credit + 1
                self._train()
                bar.update(self.step - before)
                self._warn_if_slow(bar)
                if crossed(before, self.step, t.eval_every):
                    self._evaluate(bar)
                    if t.stop_return is not None and self.last_eval["eval/return"] >= t.stop_return:
                        bar.write(f"eval return reached train.stop_return={t.stop_return:g}: stopping")
                        break
                if crossed(before, self.step, t.log_every):
                    bar.set_postfix_str(self._log(), refresh=False)
                if crossed(before, self.step, t.checkpoint_every):
                    self.save()
            if self.last_eval_step != self.step:
                self._evaluate(bar)
            if self._recent:
                self._log()
            self.save()
        finally:
            bar.close()
            self.logger.flush()
            plot_curve(self.run_dir, f"{self.cfg.agent.name} on {self.cfg.env.id}")
        return self.summary()

    def close(self) -> None:
        self.logger.close()
        self.pool.close()

    def _check_offline(self) -> None:
        """An agent that learns from what it chose while acting, or re-weights replay, needs online data."""
        own = ", ".join(self.agent.record_spec())
        if own or self.agent.priority is not None:
            why = f"it learns from what it recorded while acting ({own})" if own else "it samples by priority"
            raise ConfigError(
                f"agent '{self.cfg.agent.name}' cannot learn from an offline dataset: {why}; "
                f"train it online (drop train.offline)"
            )

    def _collect(self) -> None:
        extra: dict[str, np.ndarray] = {}
        if self.step < self.cfg.train.prefill:
            action = self.pool.act_spec.random(self.pool.num_envs, self.rng)
        else:
            obs = to_tensor(self.pool.obs, self.device)
            is_first = torch.as_tensor(self.is_first, device=self.device)
            action, self.state, extra = self.agent.act(obs, is_first, self.state, explore=True)
            action = action.cpu().numpy()
        try:
            out = self.pool.step(action)
        except EnvError as err:
            raise EnvError(f"{err} (after {self.step:,} env steps of the run; its last checkpoint is intact)") from None
        self.replay.add(self._with_agent_records(out.records, extra, self.pool.num_envs), out.streams)
        self.is_first = out.is_first
        self.step += self.pool.num_envs * self.cfg.env.action_repeat
        for _, ret, length in out.finished:
            self.episodes += 1
            self.last_return = ret
            self._note("episode/return", ret)
            self._note("episode/length", length)
        if self.step >= self.cfg.train.prefill:
            t = self.cfg.train
            self.update_credit += self.pool.num_envs * t.ratio / (t.batch_size * t.seq_len)

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
        if not self.source.can_sample(self.spec):
            return
        while self.update_credit >= 1.0:
            self.update_credit -= 1.0
            batch = self.source.sample(self.spec)
            index = batch.get("index")
            batch = {k: to_tensor(v, self.device) for k, v in batch.items()}
            for key, value in self.agent.update(batch).items():
                self._note(key, value)
            if self.agent.priority is not None:
                self.replay.update_priorities(index, self.agent.new_priorities)

    def _warn_if_slow(self, bar: tqdm) -> None:
        """Once, a minute into training after the prefill: when the rest of the run would take more than
        `SLOW_HOURS` on a CPU at the measured pace, say so and name a setting the benchmarks learned with."""
        if self._pace is None or self.step < self.cfg.train.prefill:
            return
        now = time.perf_counter()
        if not self._pace:
            self._pace.update(time=now, step=self.step)
            return
        if now - self._pace["time"] < 60:
            return
        per_s = (self.step - self._pace["step"]) / (now - self._pace["time"])  # env steps per second
        hours = (self.cfg.train.steps - self.step) / max(per_s, 1e-9) / 3600
        self._pace = None
        if hours > SLOW_HOURS and self.device.type == "cpu":
            hint = cpu_settings(self.cfg.preset, self.cfg.agent.name) or "lower train.ratio or train.steps"
            bar.write(
                f"note: at this pace the run needs about {hours:.0f} more hours on this CPU "
                f"(train.ratio={self.cfg.train.ratio:g}); for a CPU: {hint}"
            )

    def _evaluate(self, bar: tqdm) -> None:
        t = self.cfg.train
        returns = evaluate(self.agent, self.cfg.env, t.eval_episodes, _seed(t.seed, 4, self.step))
        self.last_eval_step = self.step
        metrics = {"eval/return": float(returns.mean()), "eval/return_std": float(returns.std())}
        self.logger.log(self.step, metrics)
        self.last_eval = metrics
        bar.write(
            f"step {self.step:>9,d}  eval return {returns.mean():9.2f} ± {returns.std():.2f}"
            f"  ({t.eval_episodes} episodes)"
        )

    def _note(self, key: str, value: float) -> None:
        self._recent.setdefault(key, []).append(value)

    def _log(self) -> str:
        now = time.perf_counter()
        elapsed = max(now - self._window["time"], 1e-9)
        metrics = {k: float(np.mean(v)) for k, v in self._recent.items()}
        metrics["perf/steps_per_s"] = (self.step - self._window["step"]) / elapsed
        metrics["perf/updates_per_s"] = (self.agent.updates - self._window["updates"]) / elapsed
        metrics["train/updates"] = self.agent.updates
        metrics["train/episodes"] = self.episodes
        metrics["replay/size"] = len(self.replay if self.offline is None else self.offline)
        self.logger.log(self.step, metrics)
        self._recent.clear()
        self._window = {"time": now, "step": self.step, "updates": self.agent.updates}
        last = "-" if self.last_return is None else f"{self.last_return:.1f}"
        return f"{metrics['perf/steps_per_s']:.0f} steps/s, {metrics['perf/updates_per_s']:.1f} upd/s, return {last}"

    def summary(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "updates": self.agent.updates,
            "episodes": self.episodes,
            **getattr(self, "last_eval", {}),
            "run_dir": str(self.run_dir),
        }

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path:
        with disk_space(self.run_dir, self._checkpoint_bytes()):
            return self._save()

    def _checkpoint_bytes(self) -> int:
        """About what a checkpoint writes: the weights with two optimiser moments each, and the replay rows
        not yet in chunk files."""
        weights = sum(t.nbytes for t in self.agent.state_dict().values())
        return 3 * weights + self.replay.unsaved_bytes()

    def _save(self) -> Path:
        if self.offline is None:
            replay_arrays, replay_meta = self.replay.save(self.run_dir / "replay")
            arrays = {"replay": replay_arrays, "envs": self.pool.state_dict()}
        else:
            arrays, replay_meta = {}, self.offline.state_dict()
        state = {
            "step": self.step,
            "updates": self.agent.updates,
            "update_credit": self.update_credit,
            "episodes": self.episodes,
            "last_return": self.last_return,
            "last_eval_step": self.last_eval_step,
            "is_first": self.is_first.tolist(),
            "agent": self.cfg.agent.name,
            "env": self.cfg.env.id,
            "replay": replay_meta,
            "rng": {**torch_rng_state(), "numpy": self.rng.bit_generator.state, "python": random.getstate()},
        }
        payload = Payload(
            weights=self.agent.state_dict(),
            torch_state={"optimizers": self.agent.optimizer_state(), "act_state": self.state},
            arrays=arrays,
            state=json.loads(json.dumps(state)),
        )
        path = save_checkpoint(self.run_dir / "checkpoints", self.step, payload, self.cfg.train.keep_checkpoints)
        # replay chunks are shared between checkpoints: delete those no kept checkpoint refers to
        needed = set().union(*(replay_chunks(c) for c in list_checkpoints(self.run_dir / "checkpoints")))
        for chunk in (self.run_dir / "replay").glob("*.npz"):
            if chunk.name not in needed:
                chunk.unlink()
        return path

    def _restore(self, path: Path) -> None:
        payload = load_checkpoint(path)
        s = payload.state
        if s.get("agent") != self.cfg.agent.name:
            raise CheckpointError(f"checkpoint '{path}' is of agent '{s.get('agent')}', not '{self.cfg.agent.name}'")
        with readable(path / "optim.pt"):
            optimizers = payload.torch_state["optimizers"]
        if self.offline is None:
            with readable(path / "manifest.json"):  # the arrays a checkpoint of an online run always has
                replay, envs = payload.arrays["replay"], payload.arrays["envs"]
        with readable(path / "state.json"):
            replay_meta = s["replay"]
            self.step, self.agent.updates = int(s["step"]), int(s["updates"])
            self.update_credit, self.episodes = float(s["update_credit"]), int(s["episodes"])
            self.last_return, self.last_eval_step = s["last_return"], int(s["last_eval_step"])
            self.is_first = np.asarray(s["is_first"], bool)
            set_torch_rng_state(s["rng"])
            self.rng.bit_generator.state = s["rng"]["numpy"]
            random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in s["rng"]["python"]))
        with fitting(path, "resume without overrides that change the model, replay or environments"):
            self.agent.load_state_dict(payload.weights)
            self.agent.load_optimizer_state(optimizers)
            if self.offline is not None:
                self.offline.load_state_dict(replay_meta)
            else:
                self.replay.load(self.run_dir / "replay", replay, replay_meta)
        if self.offline is None:
            with readable(path / "envs.npz"):  # a pool of another size is a ConfigError, which passes
                self.pool.load_state_dict(envs)
        self.state = _to_device(payload.torch_state.get("act_state"), self.device)  # recurrent agents' memory
