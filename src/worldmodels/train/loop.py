"""The trainer: one for every agent. It carries out the phases the agent declares (`Agent.phases`,
`phases.py`; the kinds `learn` and `fit` in `train/`), in order, a chunk at a time with a progress bar
each, and owns what is common to them all: seeding, the pluggable evaluation (`train.evaluate`), logs,
checkpoints and exact resume.

A checkpoint holds the weights, the optimisers, the random states, the trainer's counters and every
phase's own part (`Saved`); `train.phase` runs one phase alone, from scratch, resetting those after it.

Under torchrun every rank runs a trainer in lockstep (`distributed.py`): each with its own environments,
replay shard and random streams; rank 0 alone evaluates, logs and writes the run folder, and its
checkpoints hold every rank's shard (phase parts and random states). The same ranks resume from their own
shards exactly; another number of ranks deals the shards out again (`Phase.absorb`, `load_without_shard`).
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_map
from tqdm import tqdm

from worldmodels import distributed
from worldmodels.agents.base import Agent, raise_if_non_finite
from worldmodels.config import Config, save_config
from worldmodels.data.episodes import dataset_specs
from worldmodels.data.files import readable
from worldmodels.data.sources import OfflineSource
from worldmodels.envs import EnvPool
from worldmodels.envs.config import EnvConfig
from worldmodels.errors import CheckpointError, ConfigError
from worldmodels.phases import PHASES, Phase, PhaseSpec, Saved, derive_seed
from worldmodels.registry import AGENTS
from worldmodels.schema import parse
from worldmodels.train import fit, learn  # noqa: F401  (register the phase kinds)
from worldmodels.train.checkpoint import (
    Payload,
    clean_interrupted,
    disk_space,
    fitting,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_torch_rng_state,
    torch_rng_state,
)
from worldmodels.train.controllability import DeltaPSNR, held_out_episodes
from worldmodels.train.evaluate import OpenLoop, Returns
from worldmodels.train.goals import GoalSuccess
from worldmodels.train.logger import Logger, NoLogger
from worldmodels.train.metrics import Stopwatch, to_host


def resolve_device(name: str) -> torch.device:
    """The device `device=name` means for this process (under torchrun: the GPU of its local rank)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=cpu or device=auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return distributed.local_device(name)


def build_agent(cfg: Config, obs_spec, act_spec) -> Agent:
    """The agent named by `cfg.agent`, on the configured device."""
    agent = AGENTS.build(cfg.agent.name, cfg.agent.cfg, obs_spec=obs_spec, act_spec=act_spec)
    return agent.to(resolve_device(cfg.device))


SHARD = "rank"
"""A checkpoint's arrays of rank r > 0 are the files `rank<r>-<name>.npz`."""


@dataclass
class _Shard:
    """What rank r > 0 hands rank 0 for a checkpoint: its phases' parts and its random states."""

    states: dict[str, Any]
    arrays: dict[str, dict[str, np.ndarray]]
    torch: dict[str, Any]
    rng: dict[str, Any]

    @classmethod
    def of(cls, parts: dict[str, Saved], rng: dict[str, Any]) -> _Shard:
        own = {name: part.torch for name, part in parts.items()}
        on_cpu = tree_map(lambda x: x.cpu() if isinstance(x, torch.Tensor) else x, own)
        arrays = {name: a for part in parts.values() for name, a in part.arrays.items()}
        return cls({n: p.state for n, p in parts.items()}, arrays, on_cpu, json.loads(json.dumps(rng)))


def resume_point(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint a run continues from (None for a new run); refuses a resume without one and a new
    run in a folder that already holds one."""
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if resume and ckpt is None:
        raise CheckpointError(f"cannot resume: '{run_dir}' holds no complete checkpoint")
    if not resume and ckpt is not None:
        raise ConfigError(f"'{run_dir}' already holds a run; continue it with --resume or pick another --run-dir")
    return ckpt


class Stopped(KeyboardInterrupt):
    """`Trainer.run` stopped as asked (`Trainer.request_stop`), with a checkpoint at env step `step`."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


class Trainer:
    """Owns one run directory: its config, agent, phases, logs and checkpoints. Under torchrun, one rank's
    part of the run (the process group is joined here)."""

    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False):
        distributed.init(resolve_device(cfg.device))
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.cfg, self.run_dir = cfg, Path(distributed.broadcast(str(run_dir)))  # rank 0 names a default one
        ckpt = resume_point(self.run_dir, resume)
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.seed = distributed.rank_seed(t.seed, self.rank)  # this rank's environments, replay, exploration
        self.clock = Stopwatch()
        self.stop_requested = False  # `request_stop`: checkpoint and stop after the current tick
        random.seed(self.seed)
        torch.manual_seed(t.seed)  # the agent's initial weights are the same on every rank
        self.offline = OfflineSource(t.offline, derive_seed(self.seed, 3)) if t.offline else None
        if self.offline is not None and self.offline.index["env"] is not None:
            cfg.env = parse(EnvConfig, self.offline.index["env"], "env")
        # frames without actions need no environment: the data gives the spaces
        without_env = self.offline is not None and not self.offline.has_actions
        envs = 1 if t.offline else None
        self.pool = None if without_env else EnvPool(cfg.env, derive_seed(self.seed, 2), num_envs=envs)
        try:
            self._start(ckpt, resume)
        except BaseException:
            self.close_envs()
            raise

    def close_envs(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _start(self, ckpt: Path | None, resume: bool) -> None:
        cfg, t = self.cfg, self.cfg.train
        spaces = dataset_specs(cfg.train.offline) if self.pool is None else (self.pool.obs_spec, self.pool.act_spec)
        self.agent = build_agent(cfg, *spaces)
        if self.rank:
            torch.manual_seed(self.seed)
        self.step = 0  # env steps, action repeat included (offline: updates)
        self.last_eval_step = -1
        self.last_eval: dict[str, float] = {}
        self.log_lines = 0
        declared = self.agent.phases(t)
        if self.offline is not None:  # a batch asking for what the data lacks (actions): refused before any run
            batches = [p.sample for p in declared] + [s.sample for p in declared for s in p.streams]
            self.offline.refuse_missing([b for b in batches if b is not None], cfg.agent.name)
        self.phases = [self._phase(spec) for spec in declared]
        if not any(phase.uses_envs for phase in self.phases):
            self.close_envs()  # it only told the agent the spaces; evaluations make their own environments
        self.evaluator = self._evaluator()
        if resume:
            self._restore(ckpt)
        self.plan = self._plan()  # before the folder is touched: a phase that cannot run changes nothing
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            clean_interrupted(self.run_dir / "checkpoints")
        distributed.barrier()  # the folder is ready (and what a phase reset removed is gone) before any rank writes
        if not resume:
            for phase in self.phases:
                phase.start()
        self.logger: Logger | NoLogger = NoLogger()
        if self.rank == 0:
            kept = copy.deepcopy(cfg)
            kept.train.phase = "all"  # a phase alone is this command's choice: a later --resume continues them all
            save_config(kept, self.run_dir / "config.yaml")  # after a resume fits: a failed one leaves the run as is
            # lines written after the checkpoint belong to the run being replaced
            self.logger = Logger(
                self.run_dir, resume_step=self.step if resume else None, keep_lines=self.log_lines if resume else None
            )
        if t.phase != "all":
            self.save()  # the reset phases are recorded at once

    def _phase(self, spec: PhaseSpec) -> Phase:
        if spec.kind not in PHASES:
            raise ConfigError(
                f"agent '{self.cfg.agent.name}' declares phase kind '{spec.kind}'; known: {sorted(PHASES)}"
            )
        return PHASES[spec.kind](spec, self)

    def _evaluator(self) -> Returns | OpenLoop | DeltaPSNR | GoalSuccess:
        t = self.cfg.train
        if t.evaluate == "delta_psnr":
            env = self.cfg.env if self.offline is None or self.offline.index["env"] is not None else None
            episodes = held_out_episodes(self.agent, env, None, t.eval_episodes, derive_seed(t.seed, 5))
            return DeltaPSNR(self.agent, episodes)
        if t.evaluate == "goal_success":
            return GoalSuccess(self.agent, self.cfg.env, t.eval_episodes, derive_seed(t.seed, 6))
        if t.evaluate == "open_loop":
            policy = "uniform" if t.offline else "agent"  # the policy the model's data comes from
            return OpenLoop(self.agent, self.cfg.env, t.eval_episodes, derive_seed(t.seed, 5), policy)
        return Returns(self.agent, self.cfg.env, t.eval_episodes)

    def _plan(self) -> list[Phase]:
        """The phases this call runs: every one not finished, or `train.phase` alone (reset, with those after it)."""
        name, names = self.cfg.train.phase, [phase.name for phase in self.phases]
        if name == "all":
            for phase in self.phases:
                if not phase.finished:
                    phase.check()
            return self.phases
        if name not in names:
            raise ConfigError(
                f"train.phase={name}: agent '{self.cfg.agent.name}' has the phases {', '.join(names)} (or all)"
            )
        i = names.index(name)
        missing = [phase.name for phase in self.phases[:i] if not phase.finished]
        if missing:
            raise ConfigError(
                f"phase '{name}' needs {self.phases[i - 1].spec.gives}, but phase '{missing[0]}' has not finished "
                f"in '{self.run_dir}'; run it first with train.phase={missing[0]} (or train.phase=all)"
            )
        fresh = self._fresh_agent()
        for phase in self.phases[i:]:
            phase.reset()
            for optimizer in phase.spec.trains:
                self._reset_trained(optimizer, fresh)
        return [self.phases[i]]

    def _fresh_agent(self) -> Agent:
        """The agent a new run of this config starts from: built under the seed a new run builds it under,
        without touching this run's random state."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.train.seed)
            return build_agent(self.cfg, self.agent.obs_spec, self.agent.act_spec)

    def _reset_trained(self, name: str, fresh: Agent) -> None:
        """The parameters optimiser `name` trains, and the buffers of the modules they belong to, as `fresh`
        has them (the same initialisation code as a new run), and a fresh optimiser state."""
        optimizer = self.agent.optimizers[name]
        trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
        new_params, new_buffers = dict(fresh.named_parameters()), dict(fresh.named_buffers())
        with torch.no_grad():
            for module_name, module in self.agent.named_modules():
                own = list(module.named_parameters(recurse=False))
                if not own or not all(id(p) in trained for _, p in own):
                    continue
                prefix = f"{module_name}." if module_name else ""
                for key, value in [*own, *module.named_buffers(recurse=False)]:
                    value.copy_(new_params.get(prefix + key, new_buffers.get(prefix + key)))
        optimizer.state.clear()

    # ------------------------------------------------------------------ running

    def run(self) -> dict[str, Any]:
        try:
            for phase in self.plan:
                if phase.finished:
                    continue
                if self._run_phase(phase) or not phase.finished:
                    break  # stopped early (stop_return, or a budget): what is left resumes next time
        finally:
            self.logger.flush()
        return self.summary()

    def _run_phase(self, phase: Phase) -> bool:
        """Advance `phase` until it finishes or stops; True when an evaluation reached `train.stop_return`."""
        stop = self.cfg.train.stop_return
        bar = tqdm(
            total=phase.total,
            initial=phase.progress,
            unit=phase.unit,
            desc=phase.name,
            dynamic_ncols=True,
            disable=None if self.rank == 0 else True,
            smoothing=0.05,
        )
        stopped = False
        try:
            while not phase.finished:
                tick = phase.advance(bar)
                if tick is None:
                    break
                bar.update(tick.advanced)
                metrics = dict(tick.metrics or {})
                if tick.evaluate:
                    metrics |= self._evaluate(phase, tick.count, bar)
                    stopped = stop is not None and metrics.get("eval/return", -math.inf) >= stop
                if tick.postfix:
                    bar.set_postfix_str(tick.postfix, refresh=False)
                if metrics:
                    self._log(metrics, tick.count)
                if stopped:
                    if self.rank == 0:
                        bar.write(f"eval return reached train.stop_return={stop:g}: stopping")
                    phase.stop()
                    break
                if tick.checkpoint or self.stop_requested:
                    self.save()
                if self.stop_requested:
                    raise Stopped(self.step)
            final = phase.flush() or {}
            if phase.final_eval and self.last_eval_step != self.step:
                final |= self._evaluate(phase, phase.progress, bar)
            if final:
                self._log(final, phase.progress)
            self.save()
        finally:
            bar.close()
            phase.end()
        return stopped

    def request_stop(self) -> None:
        """Stop after the tick under way, with a checkpoint there: `run` then raises `Stopped` (`wm train` asks
        for this on SIGINT and SIGTERM). A checkpoint between ticks is one a periodic checkpoint could be, so
        the run resumes from it exactly."""
        self.stop_requested = True

    def _evaluate(self, phase: Phase, count: int, bar: tqdm) -> dict[str, float]:
        """The evaluator's metrics, seeded by the phase's counter: rank 0 evaluates and tells the others."""
        metrics = None
        if self.rank == 0:
            with self.clock.part("eval"):
                metrics = self.evaluator(derive_seed(self.cfg.train.seed, 4, count))
            bar.write(f"{phase.unit} {count:>9,d}  {self.evaluator.describe(metrics)}")
        metrics = distributed.broadcast(metrics)
        self.last_eval_step, self.last_eval = self.step, metrics
        return metrics

    def _log(self, metrics: dict[str, float | torch.Tensor], count: int) -> None:
        """One metrics line at the current env step; TensorBoard plots it against the phase's `count`.
        A non-finite loss since the last line stops the run here instead (see `agents.base.step`)."""
        raise_if_non_finite(self.agent.optimizers.values())
        if self.rank == 0:
            self.logger.log(self.step, to_host(metrics), tb_step=count)
        self.log_lines += 1

    def summary(self) -> dict[str, Any]:
        parts = {k: v for phase in self.phases for k, v in phase.summary().items()}
        return {
            "step": self.step,
            "updates": self.agent.updates,
            "phases_done": [phase.name for phase in self.phases if phase.finished],
            **parts,
            **self.last_eval,
            "run_dir": str(self.run_dir),
        }

    def close(self) -> None:
        self.logger.close()
        self.close_envs()

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Path | None:
        """Write a checkpoint (every rank takes part; rank 0 writes it and gets its path, the others None)."""
        raise_if_non_finite(self.agent.optimizers.values())  # no checkpoint holds weights stepped past one
        with self.clock.part("checkpoint"), disk_space(self.run_dir, self._checkpoint_bytes()):
            path = self._save()
        distributed.barrier()  # the checkpoint is in place before any rank drops what the older ones needed
        for phase in self.phases:
            phase.saved()
        return path

    def _checkpoint_bytes(self) -> int:
        """About what a checkpoint writes: the weights with two optimiser moments each, and what the phases add."""
        weights = sum(t.nbytes for t in self.agent.state_dict().values())
        return 3 * weights + sum(phase.unsaved_bytes() for phase in self.phases)

    def _save(self) -> Path | None:
        self.logger.flush()
        parts = {phase.name: phase.save() for phase in self.phases}
        rng = {**torch_rng_state(), "python": random.getstate()}
        shards = distributed.gather_to_main(_Shard.of(parts, rng) if self.rank else None)  # rank 0 keeps its own
        if self.rank:
            return None
        arrays = {name: a for part in parts.values() for name, a in part.arrays.items()}
        for r, shard in enumerate(shards[1:], start=1):
            arrays |= {f"{SHARD}{r}-{name}": a for name, a in shard.arrays.items()}
        state = {
            "agent": self.cfg.agent.name,
            "env": self.cfg.env.id,
            "step": self.step,
            "updates": self.agent.updates,
            "log_lines": self.log_lines,
            "last_eval_step": self.last_eval_step,
            "last_eval": self.last_eval,
            "done": [phase.name for phase in self.phases if phase.done],
            "phases": {name: part.state for name, part in parts.items()},
            "rng": rng,
            "world_size": self.world,
            "shards": [{"phases": shard.states, "rng": shard.rng} for shard in shards[1:]],
        }
        payload = Payload(
            weights=self.agent.state_dict(),
            torch_state={
                "optimizers": self.agent.optimizer_state(),
                "phases": {name: part.torch for name, part in parts.items()},
                "shards": [shard.torch for shard in shards[1:]],
            },
            arrays=arrays,
            state=json.loads(json.dumps(state)),
        )
        return save_checkpoint(self.run_dir / "checkpoints", self.step, payload, self.cfg.train.keep_checkpoints)

    def _restore(self, path: Path) -> None:
        payload = load_checkpoint(path)
        s = payload.state
        if s.get("agent") != self.cfg.agent.name:
            raise CheckpointError(f"checkpoint '{path}' is of agent '{s.get('agent')}', not '{self.cfg.agent.name}'")
        with readable(path / "state.json"):
            world = int(s.get("world_size", 1))
        # the shards of the run that wrote it this rank takes: its own, and on fewer ranks r + N, r + 2N, ...
        mine = list(range(self.rank, world, self.world))
        if world != self.world and self.rank == 0:
            print(
                f"note: '{path}' was written by {world} rank{'s' if world > 1 else ''}, this run has {self.world}: "
                f"the replay shards are dealt out again (rank r takes those of ranks r, r + {self.world}, ...); "
                f"ranks that took more than their own shard, or none, start new episodes",
                file=sys.stderr,
            )
        with readable(path / "optim.pt"):
            optimizers = payload.torch_state["optimizers"]
        with readable(path / "state.json"):
            self.step, self.agent.updates = int(s["step"]), int(s["updates"])
            self.log_lines, self.last_eval_step = int(s["log_lines"]), int(s["last_eval_step"])
            self.last_eval, done = dict(s["last_eval"]), set(s["done"])
        parts, rng = self._shard(payload, path, mine[0] if mine else 0)
        if mine:  # a rank with no shard keeps the random streams of its own seed
            with readable(path / "state.json"):
                set_torch_rng_state(rng)
                random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in rng["python"]))
        with fitting(path, "resume without overrides that change the model, replay or environments"):
            self.agent.load_state_dict(payload.weights)
            self.agent.load_optimizer_state(optimizers)
            for phase in self.phases:
                phase.done = phase.name in done
                if mine:
                    phase.load(parts[phase.name], path)
                else:
                    phase.load_without_shard(parts[phase.name], path)
                for other in mine[1:]:
                    phase.absorb(self._shard(payload, path, other)[0][phase.name], path, other)

    @staticmethod
    def _shard(payload: Payload, path: Path, r: int) -> tuple[dict[str, Saved], dict[str, Any]]:
        """Rank `r`'s part of the checkpoint in `payload` (read from `path`): every phase's, and its random states."""
        with readable(path / "state.json"):
            own = payload.state if r == 0 else payload.state["shards"][r - 1]
        with readable(path / "optim.pt"):
            torch_parts = payload.torch_state["phases"] if r == 0 else payload.torch_state["shards"][r - 1]
        arrays = payload.arrays
        if r:
            prefix = f"{SHARD}{r}-"
            arrays = {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
        parts = {name: Saved(state, arrays, torch_parts.get(name)) for name, state in own["phases"].items()}
        return parts, own["rng"]
