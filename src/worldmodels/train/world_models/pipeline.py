"""The World Models pipeline: collect → V → M → C, each stage resumable and runnable alone.

    collect     random-policy episodes recorded to RUN/rollouts/ (a dataset, as `wm record` writes)
    vae         V on every collected frame, `vae_train.epochs` passes; writes reconstructions.png
    mdrnn       the frames encoded once by V (RUN/latents.npz), then `mdrnn_train.updates` steps of M and
                of its no-memory baseline on windows of the latent sequences; held-out rollouts measure both
    controller  CMA-ES over C's parameters, candidates scored in the real environment or in M's dream,
                the search's mean evaluated in the real environment every `evolution.eval_every` generations

A checkpoint (the package's format: weights, optimiser states, JSON state) is written after every
chunk of rollouts, V epoch, `mdrnn_train.validate_every` updates of M and generation; checkpoints are
numbered by save, and their state says which stages are finished and how far the current one is.
The CMA-ES search is kept as the fitness values it was told and rebuilt by replaying them. `step` in
metrics.jsonl counts real environment steps (collection and controller rollouts, not evaluations);
TensorBoard plots each stage's scalars against its own counter (rollouts, V epochs, M updates,
generations). `train.steps` caps the real steps spent by the controller stage; `train.stop_return`
stops it at the first evaluation that reaches that return.
"""

from __future__ import annotations

import copy
import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from worldmodels.agents.controller import Evolution
from worldmodels.agents.world_models import WorldModelsAgent
from worldmodels.config import Config, save_config
from worldmodels.data.episodes import episode_file, episode_seed, record_many, write_index
from worldmodels.data.files import readable
from worldmodels.envs import EnvPool
from worldmodels.errors import CheckpointError, ConfigError
from worldmodels.train.checkpoint import (
    Payload,
    clean_interrupted,
    disk_space,
    fitting,
    load_checkpoint,
    save_checkpoint,
    set_torch_rng_state,
    torch_rng_state,
)
from worldmodels.train.evaluate import evaluate
from worldmodels.train.logger import Logger
from worldmodels.train.loop import _seed, build_agent, resume_point
from worldmodels.train.world_models.data import (
    encode_rollouts,
    frame_batches,
    load_latents,
    sample_windows,
    split_windows,
)
from worldmodels.train.world_models.plots import plot_pipeline, reconstruction_grid
from worldmodels.train.world_models.rollouts import ControllerRollouts
from worldmodels.workers import process_pool

STAGES = ("collect", "vae", "mdrnn", "controller")
NEEDS = {"vae": "collected rollouts", "mdrnn": "a trained VAE", "controller": "a trained MDN-RNN"}
TRAINED = {"vae": ("vae",), "mdrnn": ("mdrnn", "memoryless")}
"""The agent's modules (and optimisers, by the same names) that each stage trains."""


class WorldModelsTrainer:
    """Owns one World Models run folder; `run()` carries out the stages `agent.stage` asks for."""

    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.wm: WorldModelsAgent.Config = cfg.agent.cfg
        ckpt = resume_point(self.run_dir, resume)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        random.seed(cfg.train.seed)
        torch.manual_seed(cfg.train.seed)
        pool = EnvPool(cfg.env, 0, num_envs=1)
        pool.close()
        self.agent: WorldModelsAgent = build_agent(cfg, pool.obs_spec, pool.act_spec)
        self.device = self.agent.device
        self.p: dict[str, Any] = {"done": [], "saves": 0, "step": 0, "log_lines": 0, "lengths": [], "returns": []}
        self.p |= {"vae_epoch": 0, "mdrnn_update": 0, "evolution": None, "last_eval": None}
        if resume:
            self._restore(ckpt)
        self.stages = self._plan()  # before the folder is touched: a stage that cannot run changes nothing
        self.run_dir.mkdir(parents=True, exist_ok=True)
        clean_interrupted(self.run_dir / "checkpoints")
        kept = copy.deepcopy(cfg)
        kept.agent.cfg.stage = "all"  # a stage is this command's choice: a later --resume continues them all
        save_config(kept, self.run_dir / "config.yaml")
        # lines written after the checkpoint belong to the run being replaced
        self.logger = Logger(self.run_dir, keep_lines=self.p["log_lines"] if resume else None)
        self.step = self.p["step"]
        if self.wm.stage != "all":
            self.save()  # the reset stages are recorded at once

    # ------------------------------------------------------------------ stages

    def run(self) -> dict[str, Any]:
        for stage in self.stages:
            getattr(self, f"_{stage}")()
            plot_pipeline(self.run_dir, f"World Models on {self.cfg.env.id}")
            if stage not in self.p["done"]:
                break  # stopped early (budget or stop_return); the stage resumes next time
        self.logger.flush()
        return self.summary()

    def _plan(self) -> list[str]:
        stage, done = self.wm.stage, self.p["done"]
        if stage == "all":
            search = self.p["evolution"]
            if search is not None and search["popsize"] != self.wm.evolution.population:
                raise ConfigError(
                    f"the controller search in '{self.run_dir}' runs with agent.evolution.population="
                    f"{search['popsize']}; continue it with that, or start it again with agent.stage=controller"
                )
            return [s for s in STAGES if s not in done]
        missing = [s for s in STAGES[: STAGES.index(stage)] if s not in done]
        if missing:
            raise ConfigError(
                f"stage '{stage}' needs {NEEDS[stage]}, but stage '{missing[0]}' has not finished in "
                f"'{self.run_dir}'; run it first with agent.stage={missing[0]} (or agent.stage=all)"
            )
        self._reset_from(stage)
        return [stage]

    def _reset_from(self, stage: str) -> None:
        """Start `stage` again from scratch; the stages after it depend on it, so they are reset too."""
        later = STAGES[STAGES.index(stage) :]
        self.p["done"] = [s for s in self.p["done"] if s not in later]
        for name in (part for s in later for part in TRAINED.get(s, ())):
            for m in getattr(self.agent, name).modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            self.agent.optimizers[name].state.clear()
        if stage == "collect":
            shutil.rmtree(self.run_dir / "rollouts", ignore_errors=True)
            self.p |= {"lengths": [], "returns": []}
        if "vae" in later:
            self.p["vae_epoch"] = 0
        if "mdrnn" in later:
            self.p["mdrnn_update"] = 0
            (self.run_dir / "latents.npz").unlink(missing_ok=True)
        self.p |= {"evolution": None, "last_eval": None}
        self.agent.controller_params.zero_()

    def _collect(self) -> None:
        c, seed = self.wm.collect, self.cfg.train.seed
        folder = self.run_dir / "rollouts"
        folder.mkdir(exist_ok=True)
        bar = tqdm(total=c.rollouts, initial=len(self.p["lengths"]), desc="collect", unit="rollout", disable=None)
        chunk = max(c.workers * 4, c.rollouts // 50)  # rollouts between checkpoints
        pool = process_pool(c.workers)
        try:
            while (start := len(self.p["lengths"])) < c.rollouts:
                jobs = [
                    (self.cfg.env, self.agent.act_spec, c.policy, episode_seed(seed, i), c.max_steps, self._file(i))
                    for i in range(start, min(start + chunk, c.rollouts))
                ]
                results = record_many(jobs, pool)
                self.p["returns"] += [r for r, _ in results]
                self.p["lengths"] += [n for _, n in results]
                self.step += sum(n for _, n in results) * self.cfg.env.action_repeat
                bar.update(len(results))
                count, mean = len(self.p["lengths"]), float(np.mean(self.p["returns"]))
                bar.set_postfix_str(f"random-policy return {mean:.1f}", refresh=False)
                self._log(count, {"collect/rollouts": count, "collect/return": mean})
                if count == c.rollouts:
                    self.p["done"].append("collect")
                    results = list(zip(self.p["returns"], self.p["lengths"]))
                    write_index(folder, self.cfg.env, self.agent.act_spec, results, policy=c.policy, seed=seed)
                self.save()
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def _file(self, i: int) -> Path:
        return episode_file(self.run_dir / "rollouts", i)

    def _files(self) -> list[Path]:
        files = [self._file(i) for i in range(len(self.p["lengths"]))]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise CheckpointError(f"rollout file '{missing[0]}' is missing; collect again with agent.stage=collect")
        return files

    def _vae(self) -> None:
        t, files = self.wm.vae_train, self._files()
        per_epoch = math.ceil((sum(self.p["lengths"]) + len(files)) / t.batch_size)
        bar = tqdm(
            total=t.epochs * per_epoch, initial=self.p["vae_epoch"] * per_epoch, desc="vae", unit="batch", disable=None
        )
        while (epoch := self.p["vae_epoch"]) < t.epochs:
            metrics: dict[str, float] = {}  # means over the epoch
            rng = np.random.default_rng(_seed(self.cfg.train.seed, 21, epoch))
            for frames in frame_batches(files, t.batch_size, rng):
                for k, v in self.agent.vae_update(torch.as_tensor(frames, device=self.device)).items():
                    metrics[k] = metrics.get(k, 0.0) + v / per_epoch
                bar.update(1)
            bar.set_postfix_str(f"loss {metrics['vae/loss']:.1f}", refresh=False)
            self.p["vae_epoch"] = epoch + 1
            self._log(epoch + 1, {"vae/epoch": epoch + 1, **metrics})
            if epoch + 1 == t.epochs:
                self.p["done"].append("vae")
                reconstruction_grid(self.agent, files, self.run_dir / "reconstructions.png")
            self.save()
        bar.close()

    def _mdrnn(self) -> None:
        t = self.wm.mdrnn_train
        data = self._latents()
        episodes = len(data["starts"])
        held = min(episodes - 1, round(episodes * t.validation)) if t.validation > 0 else 0
        train_eps, valid_eps = np.arange(episodes - held), np.arange(episodes - held, episodes)
        valid = split_windows(data, valid_eps, t.seq_len) if held else None
        bar = tqdm(total=t.updates, initial=self.p["mdrnn_update"], desc="mdrnn", unit="update", disable=None)
        while (done := self.p["mdrnn_update"]) < t.updates:
            rng = np.random.default_rng(_seed(self.cfg.train.seed, 22, done))
            n = min(t.validate_every, t.updates - done)
            sums: dict[str, float] = {}  # means over the updates since the last validation
            for _ in range(n):
                batch = sample_windows(data, train_eps, t.batch_size, t.seq_len, rng, self.device)
                for k, v in self.agent.mdrnn_update(batch).items():
                    sums[k] = sums.get(k, 0.0) + v / n
                bar.update(1)
            if valid is not None:
                sums |= self.agent.mdrnn_validate({k: v.to(self.device) for k, v in valid.items()})
            key = "valid/mdrnn_nll" if valid is not None else "mdrnn/nll"
            base = key.replace("mdrnn", "memoryless")
            bar.set_postfix_str(f"nll {sums[key]:.3f} (no memory {sums[base]:.3f})", refresh=False)
            self.p["mdrnn_update"] = done + n
            self._log(done + n, {"mdrnn/update": done + n, **sums})
            if done + n == t.updates:
                self.p["done"].append("mdrnn")
            self.save()
        bar.close()

    def _latents(self) -> dict[str, np.ndarray]:
        """Every collected frame encoded by V (computed once per trained V, kept in latents.npz)."""
        path = self.run_dir / "latents.npz"
        if not path.exists():
            encode_rollouts(self.agent, self._files(), path)
        return load_latents(path)

    def _controller(self) -> None:
        e, seed = self.wm.evolution, self.cfg.train.seed
        if self.p["evolution"] is None:
            evo = Evolution(self.agent.controller.num_params, e.sigma, e.population, _seed(seed, 30))
        else:
            evo = Evolution.from_state(self.p["evolution"])
        real = e.where == "real"
        scorer = ControllerRollouts(self.agent, self.cfg.env, e.workers) if real else None
        starts = None if real else self._dream_starts()
        bar = tqdm(
            total=e.generations, initial=evo.generation, desc=f"controller ({e.where})", unit="gen", disable=None
        )
        try:
            while (g := evo.generation) < e.generations:
                if real and self.step >= self.cfg.train.steps:
                    bar.write(f"real-environment budget train.steps={self.cfg.train.steps} reached: stopping")
                    break
                population = evo.ask()
                params = np.repeat(population, e.samples, axis=0)  # [P*S, n], candidate-major
                if real:
                    seeds = [_seed(seed, 31, g, j) for j in range(e.samples)] * e.population
                    returns, used = scorer.returns(params, seeds, e.max_steps)
                    self.step += used
                    extra = {}
                else:
                    gen = torch.Generator(self.device).manual_seed(_seed(seed, 32, g))
                    z0 = starts[torch.randint(len(starts), (len(params),), generator=gen, device=self.device)]
                    theta = torch.as_tensor(params, dtype=torch.float32, device=self.device)
                    ret, length = self.agent.dream_returns(theta, z0, e.temperature, e.dream_horizon, gen)
                    returns, extra = ret.cpu().numpy(), {"controller/dream_length": float(length.mean())}
                fitness = returns.reshape(e.population, e.samples).mean(1)
                evo.tell(fitness)
                self.agent.set_controller(evo.mean)
                self.p["evolution"] = evo.state_dict()
                metrics = {
                    "controller/generation": g + 1,
                    "controller/fitness_mean": float(fitness.mean()),
                    "controller/fitness_max": float(fitness.max()),
                    "controller/sigma": evo.step_size,
                    **extra,
                }
                bar.update(1)
                bar.set_postfix_str(f"fitness {fitness.mean():.1f} (best {fitness.max():.1f})", refresh=False)
                last = g + 1 == e.generations
                if last or (e.eval_every and (g + 1) % e.eval_every == 0):
                    metrics |= self._evaluate(g + 1, bar)
                self._log(g + 1, metrics)
                stop = self.cfg.train.stop_return
                if last or (stop is not None and "eval/return" in metrics and metrics["eval/return"] >= stop):
                    self.p["done"].append("controller")
                    if not last:
                        bar.write(f"eval return reached train.stop_return={stop:g}: stopping")
                self.save()
                if "controller" in self.p["done"]:
                    break
        finally:
            bar.close()
            if scorer is not None:
                scorer.close()

    def _dream_starts(self) -> torch.Tensor:
        """Latents `[N, Z]` of the first frames of the collected episodes (dreams start from them)."""
        data = self._latents()
        first = data["starts"]
        mean, log_std = torch.as_tensor(data["mean"][first]), torch.as_tensor(data["log_std"][first])
        return (mean + log_std.exp() * torch.randn(mean.shape)).to(self.device)

    def _evaluate(self, generation: int, bar: tqdm) -> dict[str, float]:
        t = self.cfg.train
        returns = evaluate(self.agent, self.cfg.env, t.eval_episodes, _seed(t.seed, 4, generation))
        result = {"eval/return": float(returns.mean()), "eval/return_std": float(returns.std())}
        self.p["last_eval"] = result
        bar.write(
            f"generation {generation:>5d}  eval return {returns.mean():9.2f} ± {returns.std():.2f}"
            f"  ({t.eval_episodes} episodes)"
        )
        return result

    # ------------------------------------------------------------------ logging, checkpoints

    def _log(self, counter: int, metrics: dict[str, float]) -> None:
        """One metrics line at the current env step; TensorBoard plots it against the stage's `counter`."""
        self.logger.log(self.step, metrics, tb_step=counter)
        self.p["log_lines"] += 1

    def summary(self) -> dict[str, Any]:
        random_return = float(np.mean(self.p["returns"])) if self.p["returns"] else None
        return {
            "step": self.step,
            "stages_done": list(self.p["done"]),
            "random_policy/return": random_return,
            **(self.p["last_eval"] or {}),
            "run_dir": str(self.run_dir),
        }

    def save(self) -> Path:
        self.logger.flush()
        self.p["saves"] += 1
        self.p["step"] = self.step
        state = {
            "agent": "world_models",
            "env": self.cfg.env.id,
            "progress": self.p,
            "rng": torch_rng_state(),
        }
        payload = Payload(
            weights=self.agent.state_dict(),
            torch_state={"optimizers": self.agent.optimizer_state()},
            state=state,
        )
        keep = self.cfg.train.keep_checkpoints
        with disk_space(self.run_dir, 3 * sum(t.nbytes for t in payload.weights.values())):
            return save_checkpoint(self.run_dir / "checkpoints", self.p["saves"], payload, keep)

    def _restore(self, path: Path) -> None:
        payload = load_checkpoint(path)
        s = payload.state
        if s.get("agent") != "world_models":
            raise CheckpointError(f"checkpoint '{path}' is of agent '{s.get('agent')}', not 'world_models'")
        with readable(path / "optim.pt"):
            optimizers = payload.torch_state["optimizers"]
        with readable(path / "state.json"):
            self.p |= s["progress"]
            set_torch_rng_state(s["rng"])
        with fitting(path, "resume without overrides that change the VAE, the MDN-RNN or the controller"):
            self.agent.load_state_dict(payload.weights)
            self.agent.load_optimizer_state(optimizers)

    def close(self) -> None:
        self.logger.close()
