"""World Models' four phases (Ha & Schmidhuber 2018), run by the one trainer in the order the agent declares:

    collect     random-policy episodes recorded to RUN/rollouts/ (a dataset, as `wm record` writes)
    vae         V on every collected frame, an epoch per chunk; writes reconstructions.png
    mdrnn       the frames encoded once by V (RUN/latents.npz), then M and its no-memory baseline on
                windows of the latent sequences, `mdrnn_train.validate_every` updates per chunk, each chunk
                measured on held-out rollouts
    controller  CMA-ES over C's parameters, a generation per chunk, candidates scored in the real
                environment or in M's dream, the search's mean evaluated every `evolution.eval_every`

and for each later round r of `iterate` (the paper's iterative training):

    collect_r     episodes played by C with perturbed parameters, to RUN/rollouts_r/, until `train.steps`
    mdrnn_r       M trained further on every episode so far (RUN/latents_r.npz), validated on the same
                  held-out random rollouts as in round 1
    controller_r  CMA-ES again, starting at C's parameters

Under torchrun (`distributed.py`) the ranks share the work: each records its share of the rollouts into
the one folder (which multi-node runs need on a shared file system); V and M train data-parallel, every
rank drawing the same global batch and fitting its own slice of it; the candidates of each CMA-ES
generation are split over the ranks, which score theirs and share the returns; rank 0 writes the latents,
figures and checkpoints.

Every chunk ends with a checkpoint. The CMA-ES search is kept as the fitness values it was told and
rebuilt by replaying them. `step` in metrics.jsonl counts real environment steps (collection and
controller rollouts, not evaluations); TensorBoard plots each phase's scalars against its own counter
(rollouts, V epochs, M updates, generations; later rounds count on from earlier ones). `train.steps` caps
the real steps the controller spends (its search in the real environment, or later rounds' episodes), and
`collect.max_share` of it those of the random rollouts.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldmodels import distributed
from worldmodels.agents.world_models.controller import Evolution
from worldmodels.agents.world_models.data import (
    encode_rollouts,
    frame_batches,
    load_latents,
    sample_windows,
    split_windows,
)
from worldmodels.agents.world_models.plots import plot_pipeline, reconstructions
from worldmodels.agents.world_models.rollouts import ControllerRollouts
from worldmodels.data.episodes import episode_file, episode_seed, write_index
from worldmodels.envs.record import record_episode, record_many
from worldmodels.errors import CheckpointError, ConfigError
from worldmodels.phases import Phase, Saved, Tick, derive_seed, register_phase
from worldmodels.workers import process_pool


class _Staged(Phase):
    """A World Models phase: finished once and for all (`done` is kept in checkpoints), the run's figure
    redrawn after it ran."""

    def _collected(self) -> list[Collect]:
        """The collect phases up to this one: the random rollouts, then each later round's."""
        mine = self.trainer.phases.index(self)
        return [p for p in self.trainer.phases[: mine + 1] if isinstance(p, Collect)]

    @property
    def round(self) -> int:
        """1 for the paper's single pass, r for the phases of `iterate`'s round r."""
        return len(self._collected())

    @property
    def seed(self) -> int:
        """The seed of this phase's random streams: `train.seed` in the first round, one of its own in each later."""
        seed = self.cfg.train.seed
        return seed if self.round == 1 else derive_seed(seed, 34, self.round)

    @property
    def before(self) -> int:
        """Units of the phases of this kind in earlier rounds (later rounds count on from them)."""
        mine = self.trainer.phases.index(self)
        return sum(p.spec.budget for p in self.trainer.phases[:mine] if type(p) is type(self))

    def _files(self) -> list[Path]:
        """Every episode collected so far, the random rollouts M holds out last (later rounds' episodes
        go before them), so that M trains on every new episode and validates on the same ones each round."""
        first, *later = [p.files() for p in self._collected()]
        keep = len(first) - _held_out(len(first), self.agent.cfg.mdrnn_train.validation)
        return first[:keep] + [f for files in later for f in files] + first[keep:]

    def _latents_path(self) -> Path:
        return self.trainer.run_dir / ("latents.npz" if self.round == 1 else f"latents_{self.round}.npz")

    def _latents(self) -> dict[str, np.ndarray]:
        """Every collected frame encoded by V (computed once per trained V and round, kept in latents*.npz)."""
        path = self._latents_path()
        if distributed.broadcast(not path.exists()):  # rank 0's answer: it writes them, the others wait
            if self.trainer.rank == 0:
                encode_rollouts(self.agent, self._files(), path)
            distributed.barrier()
        return load_latents(path)

    def end(self) -> None:
        if self.trainer.rank == 0:
            plot_pipeline(self.trainer.run_dir, f"World Models on {self.cfg.env.id}")


def _held_out(episodes: int, fraction: float) -> int:
    """Random rollouts M validates on: `fraction` of them, leaving at least one to train on."""
    return min(episodes - 1, round(episodes * fraction)) if fraction > 0 else 0


@register_phase("collect_rollouts")
class Collect(_Staged):
    """The random rollouts V and M first learn from, recorded by `collect.workers` processes."""

    unit = "rollout"
    policy = "random"  # what plays the episodes, as the progress bar and the run's summary name it
    metrics = "collect"  # prefix of its metrics

    def __init__(self, spec, trainer):
        super().__init__(spec, trainer)
        self.c = self.agent.cfg.collect
        self.lengths: list[int] = []
        self.returns: list[float] = []
        self._pool = None

    @property
    def folder(self) -> Path:
        return self.trainer.run_dir / ("rollouts" if self.round == 1 else f"rollouts_{self.round}")

    @property
    def progress(self) -> int:
        return len(self.lengths)

    def files(self) -> list[Path]:
        files = [episode_file(self.folder, i) for i in range(len(self.lengths))]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise CheckpointError(f"rollout file '{missing[0]}' is missing; collect again with train.phase={self.name}")
        return files

    def _record(self, episodes: list[int]) -> list[tuple[float, int]]:
        """Play and write episodes `episodes` (this rank's share of the chunk): their (return, length)."""
        c = self.c
        if self._pool is None:
            self._pool = process_pool(c.workers)
        env, act, folder, seed = self.cfg.env, self.agent.act_spec, self.folder, self.seed
        jobs = [(env, act, c.policy, episode_seed(seed, i), c.max_steps, episode_file(folder, i)) for i in episodes]
        return record_many(jobs, self._pool)

    @property
    def _played_by(self) -> str:
        """The policy the dataset's index names."""
        return self.c.policy

    @property
    def _chunk(self) -> int:
        """Episodes between checkpoints."""
        return max(self.c.workers * 4, self.spec.budget // 50)

    @property
    def _limit(self) -> float:
        """Env steps after which collecting stops short of `spec.budget` episodes."""
        return self.c.max_share * self.cfg.train.steps

    def advance(self, bar: tqdm) -> Tick:
        start = len(self.lengths)
        self.folder.mkdir(exist_ok=True)
        chunk = list(range(start, min(start + self._chunk, self.spec.budget)))
        mine = distributed.part(len(chunk))  # each rank records its share; all learn every result
        with self.trainer.clock.part("env"):
            results = [r for part in distributed.gather_all(self._record(chunk[mine])) for r in part]
        self.returns += [r for r, _ in results]
        self.lengths += [n for _, n in results]
        self.trainer.step += sum(n for _, n in results) * self.cfg.env.action_repeat
        count, mean = len(self.lengths), float(np.mean(self.returns))
        if count == self.spec.budget or self.trainer.step >= self._limit:
            self.done = True
            every = list(zip(self.returns, self.lengths))
            if self.trainer.rank == 0:
                env = asdict(self.cfg.env)
                write_index(self.folder, env, self.agent.act_spec, every, policy=self._played_by, seed=self.seed)
        return Tick(
            count=count,
            advanced=len(results),
            metrics={f"{self.metrics}/rollouts": count, f"{self.metrics}/return": mean} | self.trainer.clock.pop(),
            checkpoint=True,
            postfix=f"{self.policy}-policy return {mean:.1f}",
        )

    def reset(self) -> None:
        super().reset()
        if self.trainer.rank == 0:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.lengths, self.returns = [], []

    def save(self) -> Saved:
        return Saved({"lengths": self.lengths, "returns": self.returns})

    def load(self, saved: Saved, path: Path) -> None:
        self.lengths, self.returns = list(saved.state["lengths"]), list(saved.state["returns"])

    def summary(self) -> dict[str, Any]:
        return {"random_policy/return": float(np.mean(self.returns)) if self.returns else None}

    def end(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        super().end()


@register_phase("collect_controller")
class CollectWithController(Collect):
    """A later round's episodes (`iterate`), played in this process by C, each with C's parameters
    perturbed by its own Gaussian noise (`iterate.noise`); it stops early once `train.steps` is spent."""

    policy = _played_by = "controller"
    metrics = "collect/controller"
    _chunk = 4

    @property
    def _limit(self) -> float:
        return self.cfg.train.steps

    def advance(self, bar: tqdm) -> Tick | None:
        if self.trainer.step >= self._limit:
            if self.trainer.rank == 0:
                bar.write(f"real-environment budget train.steps={self.cfg.train.steps} reached: stopping")
            return None
        return super().advance(bar)

    def summary(self) -> dict[str, Any]:
        """The mean return of C's episodes in this round; nothing before it played (the latest round's wins)."""
        return {"controller_policy/return": float(np.mean(self.returns))} if self.returns else {}

    def _record(self, episodes: list[int]) -> list[tuple[float, int]]:
        agent, noise = self.agent, self.agent.cfg.iterate.noise
        results = []
        for i in episodes:
            rng = np.random.default_rng(derive_seed(self.seed, 33, i))
            shake = torch.as_tensor(rng.standard_normal(agent.controller.num_params), dtype=torch.float32)
            params = agent.controller_params + noise * shake.to(agent.device)
            choose, path = partial(agent.chooser, params), episode_file(self.folder, i)
            results.append(record_episode(self.cfg.env, agent.act_spec, choose, episode_seed(self.seed, i), None, path))
        return results


class _Counted(_Staged):
    """A phase that fits a model for `spec.budget` units (V's epochs, M's updates), `count` of them done."""

    def __init__(self, spec, trainer):
        super().__init__(spec, trainer)
        self.count = 0

    @property
    def progress(self) -> int:
        return self.count

    def reset(self) -> None:
        super().reset()
        self.count = 0

    def save(self) -> Saved:
        return Saved({"count": self.count})

    def load(self, saved: Saved, path: Path) -> None:
        self.count = int(saved.state["count"])


@register_phase("fit_vae")
class FitVAE(_Counted):
    unit = "batch"

    @property
    def _per_epoch(self) -> int:
        lengths = self._collected()[0].lengths
        return math.ceil((sum(lengths) + len(lengths)) / self.spec.sample.batch_size)

    @property
    def total(self) -> int:
        return self.spec.budget * self._per_epoch

    @property
    def progress(self) -> int:
        return self.count * self._per_epoch

    def advance(self, bar: tqdm) -> Tick:
        files, per_epoch, epoch = self._files(), self._per_epoch, self.count
        metrics: dict[str, float] = {}  # means over the epoch
        rng = np.random.default_rng(derive_seed(self.cfg.train.seed, 21, epoch))
        for frames in frame_batches(files, self.spec.sample.batch_size, rng):  # the same on every rank
            if len(frames) < self.trainer.world:
                continue  # a last batch too small to give every rank a frame
            frames = frames[distributed.part(len(frames))]
            with self.trainer.clock.part("update"):
                learnt = self.agent.vae_update(torch.as_tensor(frames, device=self.agent.device))
            for k, v in learnt.items():
                metrics[k] = metrics.get(k, 0.0) + v / per_epoch
            bar.update(1)
        self.count = epoch + 1
        if self.count == self.spec.budget:
            self.done = True
        if self.done and self.trainer.rank == 0:
            reconstructions(self.agent, files, self.trainer.run_dir / "reconstructions.png")
        return Tick(
            count=self.count,
            advanced=0,  # shown batch by batch
            metrics={"vae/epoch": self.count, **metrics} | self.trainer.clock.pop(),
            checkpoint=True,
            postfix=f"loss {metrics['vae/loss']:.1f}",
        )


@register_phase("fit_mdn")
class FitMDN(_Counted):
    unit = "update"

    def __init__(self, spec, trainer):
        super().__init__(spec, trainer)
        self.t = self.agent.cfg.mdrnn_train
        self._data: tuple | None = None  # latents, number of training episodes, held-out windows

    def _split(self) -> tuple:
        if self._data is None:
            data = self._latents()
            episodes, held = len(data["starts"]), _held_out(len(self._collected()[0].lengths), self.t.validation)
            valid = split_windows(data, episodes - held, self.spec.sample.seq_len) if held else None
            self._data = data, episodes - held, valid
        return self._data

    def advance(self, bar: tqdm) -> Tick:
        data, train_eps, valid = self._split()
        done = self.count
        rng = np.random.default_rng(derive_seed(self.seed, 22, done))
        n = min(self.t.validate_every, self.spec.budget - done)
        sums: dict[str, float] = {}  # means over the updates since the last validation
        for _ in range(n):
            with self.trainer.clock.part("sample"):
                batch = sample_windows(data, train_eps, self.spec.sample, rng, self.agent.device)  # same on every rank
                mine = distributed.part(self.spec.sample.batch_size)
                batch = {k: v[mine] for k, v in batch.items()}
            with self.trainer.clock.part("update"):
                learnt = self.agent.mdrnn_update(batch)
            for k, v in learnt.items():
                sums[k] = sums.get(k, 0.0) + v / n
            self.agent.updates += 1
            bar.update(1)
        if valid is not None:
            sums |= self.agent.mdrnn_validate({k: v.to(self.agent.device) for k, v in valid.items()})
        key = "valid/mdrnn_nll" if valid is not None else "mdrnn/nll"
        base = key.replace("mdrnn", "memoryless")
        self.count = done + n
        self.done = self.count == self.spec.budget
        return Tick(
            count=self.before + self.count,
            advanced=0,  # shown update by update
            metrics={"mdrnn/update": self.before + self.count, **sums} | self.trainer.clock.pop(),
            checkpoint=True,
            postfix=f"nll {sums[key]:.3f} (no memory {sums[base]:.3f})",
        )

    def reset(self) -> None:
        super().reset()
        self._data = None
        if self.trainer.rank == 0:
            self._latents_path().unlink(missing_ok=True)


@register_phase("evolve")
class Evolve(_Staged):
    """CMA-ES over the controller's parameters; a generation per chunk."""

    unit = "generation"
    final_eval = True  # a search stopped by train.steps between its evaluations still ends with one

    def __init__(self, spec, trainer):
        super().__init__(spec, trainer)
        self.e = self.agent.cfg.evolution
        self.search: Evolution | None = None
        self._scorer: ControllerRollouts | None = None
        self._starts: torch.Tensor | None = None

    @property
    def progress(self) -> int:
        return 0 if self.search is None else self.search.generation

    def check(self) -> None:
        if self.search is not None and self.search.popsize != self.e.population:
            raise ConfigError(
                f"the controller search in '{self.trainer.run_dir}' runs with agent.evolution.population="
                f"{self.search.popsize}; continue it with that, or start it again with train.phase=controller"
            )

    def advance(self, bar: tqdm) -> Tick | None:
        e, seed, real = self.e, self.seed, self.e.where == "real"
        if real and self.trainer.step >= self.cfg.train.steps:
            if self.trainer.rank == 0:
                bar.write(f"real-environment budget train.steps={self.cfg.train.steps} reached: stopping")
            return None
        if self.search is None:
            x0 = self.agent.controller_params.cpu().numpy() if self.round > 1 else None  # later rounds go on from C
            self.search = Evolution(self.agent.controller.num_params, e.sigma, e.population, derive_seed(seed, 30), x0)
        g = self.search.generation
        population = self.search.ask()
        params = np.repeat(population, e.samples, axis=0)  # [P*S, n], candidate-major
        if real:
            if self._scorer is None:
                self._scorer = ControllerRollouts(self.agent, self.cfg.env, e.workers)
            seeds = [derive_seed(seed, 31, g, j) for j in range(e.samples)] * e.population
            mine = distributed.part(len(params))  # each rank scores its slice of the candidates
            with self.trainer.clock.part("env"):
                scored = distributed.gather_all(self._scorer.returns(params[mine], seeds[mine], e.max_steps))
            returns = np.concatenate([r for r, _ in scored])
            self.trainer.step += sum(used for _, used in scored)
            extra = {}
        else:
            device = self.agent.device
            starts = self._dream_starts()
            gen = torch.Generator(device).manual_seed(derive_seed(seed, 32, g))
            z0 = starts[torch.randint(len(starts), (len(params),), generator=gen, device=device)]
            theta = torch.as_tensor(params, dtype=torch.float32, device=device)
            mine = distributed.part(len(params))  # each rank dreams its slice of the candidates
            if self.trainer.rank:
                gen.manual_seed(derive_seed(seed, 32, g, self.trainer.rank))
            ret, length = self.agent.dream_returns(theta[mine], z0[mine], e.temperature, e.dream_horizon, gen)
            scored = distributed.gather_all((ret.cpu().numpy(), length.cpu().numpy()))
            returns = np.concatenate([r for r, _ in scored])
            extra = {"controller/dream_length": float(np.concatenate([n for _, n in scored]).mean())}
        fitness = returns.reshape(e.population, e.samples).mean(1)
        self.search.tell(fitness)
        self.agent.set_controller(self.search.mean)
        last = g + 1 == self.spec.budget
        self.done = last
        return Tick(
            count=self.before + g + 1,
            metrics={
                "controller/generation": self.before + g + 1,
                "controller/fitness_mean": float(fitness.mean()),
                "controller/fitness_max": float(fitness.max()),
                "controller/sigma": self.search.step_size,
                **extra,
            }
            | self.trainer.clock.pop(),
            evaluate=last or bool(e.eval_every and (g + 1) % e.eval_every == 0),
            checkpoint=True,
            postfix=f"fitness {fitness.mean():.1f} (best {fitness.max():.1f})",
        )

    def _dream_starts(self) -> torch.Tensor:
        """Latents `[N, Z]` of the first frames of the collected episodes (dreams start from them)."""
        if self._starts is None:
            data = self._latents()
            first = data["starts"]
            mean, log_std = torch.as_tensor(data["mean"][first]), torch.as_tensor(data["log_std"][first])
            starts = distributed.broadcast(mean + log_std.exp() * torch.randn(mean.shape))  # rank 0's draw
            self._starts = starts.to(self.agent.device)
        return self._starts

    def stop(self) -> None:
        self.done = True

    def reset(self) -> None:
        super().reset()
        self.search, self._starts = None, None
        self.agent.controller_params.zero_()

    def save(self) -> Saved:
        return Saved({"search": None if self.search is None else self.search.state_dict()})

    def load(self, saved: Saved, path: Path) -> None:
        search = saved.state["search"]
        self.search = None if search is None else Evolution.from_state(search)

    def end(self) -> None:
        if self._scorer is not None:
            self._scorer.close()
            self._scorer = None
        super().end()
