"""The Python face of the CLI, in the style of Stable-Baselines3.

from worldmodels import make_agent, load_agent
agent = make_agent("latent_mlp", env="CartPole-v1", train={"seed": 1})
agent.learn(10_000)
action, _ = agent.predict(obs)
agent.save("my_run")
agent = load_agent("my_run")
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

from worldmodels.agents.base import to_tensor
from worldmodels.config import Config, load_config, read_preset
from worldmodels.data.episodes import INDEX, dataset_specs, holds_actions
from worldmodels.envs import EnvPool, make_env
from worldmodels.errors import CheckpointError, ConfigError
from worldmodels.spaces import Obs, obs_map
from worldmodels.train.checkpoint import fitting, latest_checkpoint, load_checkpoint, replay_chunks
from worldmodels.train.controllability import DeltaPSNR, held_out_episodes
from worldmodels.train.evaluate import OpenLoop, evaluate, record_video
from worldmodels.train.loop import Trainer, build_agent
from worldmodels.train.play import parse_script, play


def _flatten(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(f"{prefix}.{k}" if prefix else k, v)]
    return [f"{prefix}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]


class AgentRun:
    """A run: a config and a run directory, trained with `learn` and queried with `predict`."""

    def __init__(self, cfg: Config, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self._trainer: Trainer | None = None
        self._agent = None

    @property
    def agent(self):
        """The underlying `Agent` (torch module): the trainer's while training, else loaded from the run."""
        if self._trainer is not None:
            return self._trainer.agent
        if self._agent is None:
            self._agent = _load_weights(self.cfg, self.run_dir)
        return self._agent

    def learn(self, steps: int) -> dict[str, Any]:
        """Train for `steps` more environment steps; returns the run summary (with the last evaluation)."""
        if self._trainer is None:
            resume = latest_checkpoint(self.run_dir / "checkpoints") is not None
            self._trainer = Trainer(self.cfg, self.run_dir, resume=resume)
            self._agent = None
        self._trainer.cfg.train.steps = self._trainer.step + steps
        return self._trainer.run()

    def predict(
        self, obs: Obs, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """Env actions for one observation `[*obs_shape]` or a batch `[N, *obs_shape]` (arrays or dicts of
        arrays), and the next recurrent state. Observations and actions are those of the environment as
        the package builds it (`make_env()`: continuous actions in [-1, 1], frames resized).
        `deterministic` acts as evaluation does: by the policy's mode, except for agents that evaluate by sampling
        (`agent.eval_policy: sample`, the default of `latent_mlp` and DreamerV3); `eval_policy=mode` makes those
        deterministic too."""
        agent = self.agent
        obs = obs_map(np.asarray, obs)
        key, spec = agent.obs_spec.items()[0]
        first_array = obs[key] if key else obs
        single = first_array.ndim == len(spec.shape)
        batch = to_tensor(obs_map(lambda x: x[None], obs) if single else obs, agent.device)
        n = 1 if single else first_array.shape[0]
        if state is None:
            state = agent.initial_state(n)
            episode_start = np.ones(n, bool)
        first = torch.as_tensor(np.zeros(n, bool) if episode_start is None else episode_start, device=agent.device)
        action, state, _ = agent.act(batch, first, state, explore=not deterministic)
        env_action = agent.act_spec.to_env(action.cpu().numpy())
        return (env_action[0] if single else env_action), state

    def make_env(self, render: bool = False) -> gym.Env:
        """The environment this agent acts in, with the run's wrappers (the one `predict` expects)."""
        return make_env(self.cfg.env, render=render)

    def evaluate(self, episodes: int = 10, seed: int = 12345) -> dict[str, float]:
        returns = evaluate(self.agent, self.cfg.env, episodes, seed)
        return {"episodes": episodes, "return_mean": float(returns.mean()), "return_std": float(returns.std())}

    def open_loop(self, episodes: int = 10, seed: int = 12345) -> dict[str, float]:
        """The world model's open-loop errors on `episodes` episodes it never trained on, by horizon and beside
        copying the last real observation (`train.evaluate.OpenLoop`)."""
        policy = "uniform" if self.cfg.train.offline else "agent"
        return OpenLoop(self.agent, self.cfg.env, episodes, seed, policy)(seed)

    def delta_psnr(self, episodes: int = 10, seed: int = 12345, data: str | Path | None = None) -> dict[str, float]:
        """Genie's measures on held-out video (`train.controllability.DeltaPSNR`): the clips of dataset `data`,
        else `episodes` random-policy episodes of the run's environment."""
        held_out = held_out_episodes(self.agent, self._env(), data and Path(data), episodes, seed)
        return DeltaPSNR(self.agent, held_out)(seed)

    def play(self, script: str, seed: int = 12345, data: str | Path | None = None) -> Path:
        """Genie: the GIF `play_<script>.gif` in the run folder, generated by the latent actions of `script`
        ('0,3,3,1') from a prompt frame: the first of a held-out episode (`delta_psnr`'s)."""
        agent = self.agent
        if not hasattr(agent, "latent_actions"):
            raise ConfigError(f"wm play plays a model of latent actions (genie), not {self.cfg.agent.name}")
        chosen = parse_script(script, agent.latent_actions.actions)
        prompt = held_out_episodes(agent, self._env(), data and Path(data), 1, seed)[0]["obs"][0]
        out = self.run_dir / f"play_{'-'.join(map(str, chosen))}.gif"
        play(agent, prompt, chosen, out)
        return out

    def _env(self):
        """The run's environment, None when it learnt from clips that come from none."""
        offline = self.cfg.train.offline
        return None if offline and not (Path(offline) / INDEX).exists() else self.cfg.env

    def record_video(self, path: str | Path, seed: int = 12345) -> tuple[Path, float]:
        return record_video(self.agent, self.cfg.env, Path(path), seed)

    def save(self, path: str | Path) -> Path:
        """Write a loadable copy of this run (config and latest checkpoint) to folder `path`."""
        path = Path(path)
        if self._trainer is not None:
            self._trainer.save()
        src = latest_checkpoint(self.run_dir / "checkpoints")
        if src is None:
            raise CheckpointError("nothing to save yet: call learn() first")
        if path.resolve() != self.run_dir.resolve():
            (path / "checkpoints").mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.run_dir / "config.yaml", path / "config.yaml")
            shutil.copytree(src, path / "checkpoints" / src.name, dirs_exist_ok=True)
            (path / "replay").mkdir(exist_ok=True)
            for name in replay_chunks(src):
                shutil.copy2(self.run_dir / "replay" / name, path / "replay" / name)
        return path

    def close(self) -> None:
        if self._trainer is not None:
            self._trainer.close()
            self._trainer = None


def make_agent(
    preset: str = "latent_mlp",
    env: str | None = None,
    run_dir: str | Path | None = None,
    **overrides: Any,
) -> AgentRun:
    """A new run from a preset.

    `overrides` are sections (`train={"seed": 1}`) or dotted keys (`**{"train.seed": 1}`).
    """
    items = _flatten("", overrides)
    if env is not None:
        items.append(f"env.id={env}")
    cfg = load_config(preset, items)
    if run_dir is None:
        name = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
        run_dir = default_run_dir(name, cfg.env.id)
    return AgentRun(cfg, Path(run_dir))


def load_agent(path: str | Path, **overrides: Any) -> AgentRun:
    """Open a run folder written by training or `save`; `learn` on it continues the run exactly."""
    path = Path(path)
    if not (path / "config.yaml").exists():
        raise CheckpointError(f"'{path}' is not a run folder: it has no config.yaml")
    if latest_checkpoint(path / "checkpoints") is None:
        raise CheckpointError(f"'{path}' holds no complete checkpoint")
    cfg = load_config(read_preset(str(path / "config.yaml")), _flatten("", overrides))
    return AgentRun(cfg, path)


def default_run_dir(preset: str, env_id: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{preset}-{env_id.replace(':', '-').replace('/', '-')}-{stamp}"


def _load_weights(cfg: Config, run_dir: Path):
    """Build the run's agent and load the weights of its latest checkpoint."""
    ckpt = latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise CheckpointError(f"'{run_dir}' holds no complete checkpoint to load")
    if cfg.train.offline and not holds_actions(cfg.train.offline):  # learnt from frames alone: no environment
        obs_spec, act_spec = dataset_specs(cfg.train.offline)
    else:
        pool = EnvPool(cfg.env, seed=0, num_envs=1)
        obs_spec, act_spec = pool.obs_spec, pool.act_spec
        pool.close()
    agent = build_agent(cfg, obs_spec, act_spec)
    payload = load_checkpoint(ckpt)
    with fitting(ckpt, "load it with the config.yaml it was trained with"):
        agent.load_state_dict(payload.weights)
    agent.eval()
    return agent


__all__ = ["AgentRun", "load_agent", "make_agent"]
