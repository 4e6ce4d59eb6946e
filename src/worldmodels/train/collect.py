"""What a `learn` phase acts with: the run's environments, the replay they fill, the agent's recurrent
state while it acts (with the current policy; random actions during `train.prefill`, uniform or, with
`train.prefill_colour`, coloured in time), and the episodes they finished. Its part of a checkpoint: the
replay (chunks shared between checkpoints), the environments' states, the acting state and the prefill's
random generators and noise."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils._pytree import tree_map

from worldmodels.agents.base import to_tensor
from worldmodels.agents.time_noise import TimeNoiseConfig, time_noise
from worldmodels.data import Replay
from worldmodels.data.files import readable
from worldmodels.envs import EnvPool
from worldmodels.errors import EnvError
from worldmodels.phases import Run, Saved, derive_seed
from worldmodels.train.checkpoint import list_checkpoints, replay_chunks, world_size


def replay_dir(run_dir: Path, rank: int) -> Path:
    """Where rank `rank` keeps its replay shard's chunk files."""
    return run_dir / "replay" if rank == 0 else run_dir / "replay" / f"rank{rank}"


class Collector:
    """Under torchrun, one rank's: its own environments and replay shard, seeded by the rank's seed."""

    def __init__(self, trainer: Run):
        t = trainer.cfg.train
        self.trainer, self.agent, self.pool = trainer, trainer.agent, trainer.pool
        self.rng = np.random.default_rng(derive_seed(trainer.seed, 1))  # random prefill actions
        self.noise_rng = torch.Generator().manual_seed(derive_seed(trainer.seed, 7))  # coloured prefill actions
        self.noise = None  # the prefill's coloured sequences, one per environment
        self.replay = Replay(t.replay_capacity, self.pool.num_envs, derive_seed(trainer.seed, 3), self.agent.priority)
        self.folder = replay_dir(trainer.run_dir, trainer.rank)
        self.state = self.agent.initial_state(self.pool.num_envs)
        self.is_first = np.ones(self.pool.num_envs, bool)
        self.episodes = 0
        self.last_return: float | None = None

    def start(self) -> None:
        first = self.pool.first_records()
        self.replay.add(self._with_agent_records(first.records, {}, 0), first.streams)

    def collect(self, note) -> None:
        """One step of every environment; the trainer's step counter advances by the env steps taken (by
        every rank: they step in lockstep) and each finished episode's return and length go to `note(metrics)`."""
        trainer = self.trainer
        extra: dict[str, np.ndarray] = {}
        if trainer.step < trainer.cfg.train.prefill:
            action = self._random_actions()
        else:
            device = self.agent.device
            obs = to_tensor(self.pool.obs, device)
            is_first = torch.as_tensor(self.is_first, device=device)
            with trainer.clock.part("act"):
                action, self.state, extra = self.agent.act(obs, is_first, self.state, explore=True)
                action = action.cpu().numpy()
        try:
            with trainer.clock.part("env"):
                out = self.pool.step(action)
        except EnvError as err:
            step = trainer.step
            raise EnvError(f"{err} (after {step:,} env steps of the run; its last checkpoint is intact)") from None
        self.replay.add(self._with_agent_records(out.records, extra, self.pool.num_envs), out.streams)
        self.is_first = out.is_first
        trainer.step += self.pool.num_envs * trainer.cfg.env.action_repeat * trainer.world
        for _, ret, length in out.finished:
            self.episodes += 1
            self.last_return = ret
            note({"episode/return": ret, "episode/length": length})

    def _random_actions(self) -> np.ndarray:
        """The prefill's actions `[N, A]`: uniform, or for continuous actions with `train.prefill_colour`,
        σ = 1 Gaussian noise coloured in time across each episode, clipped to the bounds."""
        spec, colour = self.pool.act_spec, self.trainer.cfg.train.prefill_colour
        if spec.discrete or colour == 0:
            return spec.random(self.pool.num_envs, self.rng)
        like, is_first = torch.zeros(self.pool.num_envs, spec.dim), torch.as_tensor(self.is_first)
        eps, self.noise = time_noise(like, is_first, self.noise, TimeNoiseConfig(colour), self.noise_rng)
        return eps.clamp(-1.0, 1.0).numpy()

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

    def restart(self) -> None:
        """New episodes in new environments (seeded by the rank's seed and the run's step), as a resume on
        another number of ranks leaves this rank's: the replay keeps what it holds, the next rows begin
        episodes."""
        trainer, num_envs = self.trainer, self.pool.num_envs
        self.pool.close()
        self.pool = trainer.pool = EnvPool(trainer.cfg.env, derive_seed(trainer.seed, 2, trainer.step), num_envs)
        self.state, self.is_first = self.agent.initial_state(num_envs), np.ones(num_envs, bool)
        self.noise = None
        self.start()

    def absorb(self, saved: Saved, path: Path, shard: int) -> None:
        """Append the replay of rank `shard` of the run that wrote checkpoint `path` (a resume on fewer ranks)
        to this rank's, and begin new episodes after it."""
        t = self.trainer.cfg.train
        other = Replay(t.replay_capacity, self.pool.num_envs, 0, self.agent.priority)
        with readable(path / "manifest.json"):
            tail = saved.arrays["replay"]
        with readable(path / "state.json"):
            meta, episodes = saved.state["replay"], int(saved.state["episodes"])
        other.load(replay_dir(self.trainer.run_dir, shard), tail, meta)
        self.replay.extend(other)
        self.episodes += episodes
        self.restart()

    # ------------------------------------------------------------------ checkpoints

    def save(self) -> Saved:
        replay_arrays, replay = self.replay.save(self.folder)
        state = {
            "replay": replay,
            "episodes": self.episodes,
            "last_return": self.last_return,
            "is_first": self.is_first.tolist(),
            "rng": self.rng.bit_generator.state,
        }
        arrays = {"replay": replay_arrays, "envs": self.pool.state_dict()}
        noise = {"generator": self.noise_rng.get_state(), "sequences": self.noise}
        return Saved(state, arrays, torch={"act_state": self.state, "prefill_noise": noise})

    def load(self, saved: Saved, path: Path) -> None:
        s = saved.state
        with readable(path / "manifest.json"):  # the arrays a checkpoint of an online run always has
            replay, envs = saved.arrays["replay"], saved.arrays["envs"]
        with readable(path / "state.json"):
            data, self.episodes = s["replay"], int(s["episodes"])
            self.last_return, self.is_first = s["last_return"], np.asarray(s["is_first"], bool)
            self.rng.bit_generator.state = s["rng"]
        self.replay.load(self.folder, replay, data)
        with readable(path / "envs.npz"):  # a pool of another size is a ConfigError, which passes
            self.pool.load_state_dict(envs)
        device = self.agent.device  # the recurrent memory, on this run's device
        self.state = tree_map(
            lambda x: x.to(device) if isinstance(x, torch.Tensor) else x, (saved.torch or {}).get("act_state")
        )
        noise = (saved.torch or {}).get("prefill_noise")
        if noise is not None:  # checkpoints from before coloured prefills have none: the prefill was uniform
            self.noise_rng.set_state(noise["generator"])
            self.noise = noise["sequences"]

    def saved(self) -> None:
        """Replay chunks are shared between checkpoints: delete those no kept checkpoint refers to (and, on
        rank 0, the folders of ranks no kept checkpoint has, after a resume on fewer ranks)."""
        checkpoints = list_checkpoints(self.trainer.run_dir / "checkpoints")
        needed = set().union(*(replay_chunks(c, self.trainer.rank) for c in checkpoints))
        for chunk in self.folder.glob("*.npz"):
            if chunk.name not in needed:
                chunk.unlink()
        if self.trainer.rank == 0:
            ranks = max((world_size(c) for c in checkpoints), default=1)
            for folder in self.folder.glob("rank*"):
                if folder.name[4:].isdigit() and int(folder.name[4:]) >= ranks:
                    shutil.rmtree(folder)
