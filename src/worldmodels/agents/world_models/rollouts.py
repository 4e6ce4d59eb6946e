"""Real-environment rollouts of the World Models pipeline, in worker processes.

The random rollouts V and M learn from are recorded by `data/episodes.py`. `ControllerRollouts` scores
controller candidates: it steps a batch of environments in lockstep, each row acting with its own
parameter vector, with V, M and C evaluated once per step for the whole batch;
the rows are split between `workers` processes (spawned, one torch thread each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldmodels.agents.world_models.agent import WorldModelsAgent
from worldmodels.envs import make_env
from worldmodels.envs.config import EnvConfig
from worldmodels.workers import process_pool


class RolloutWorker:
    """An agent (V, M and the controller form) and a growing set of environments to score candidates in."""

    def __init__(self, agent_cfg: Any, env_cfg: EnvConfig, obs_spec, act_spec, weights: dict[str, torch.Tensor]):
        self.agent = WorldModelsAgent(agent_cfg, obs_spec, act_spec)
        self.agent.load_state_dict(weights)
        self.agent.eval()
        self.env_cfg = env_cfg
        self.envs: list = []

    @torch.no_grad()
    def returns(self, params: np.ndarray, seeds: list[int], max_steps: int | None) -> tuple[np.ndarray, int]:
        """Row i acts with `params[i]` in an episode started from `seeds[i]`: returns `[N]` and env steps."""
        n, agent = len(seeds), self.agent
        while len(self.envs) < n:
            self.envs.append(make_env(self.env_cfg))
        obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds)])
        theta = torch.as_tensor(params, dtype=torch.float32)
        h, c = agent.initial_state(n)
        alive = np.ones(n, bool)
        total, steps, t = np.zeros(n), 0, 0
        while alive.any() and (max_steps is None or t < max_steps):
            rows = np.flatnonzero(alive)
            z = agent.vae(torch.as_tensor(obs[rows])).mean
            action, (h_new, c_new) = agent.control(theta[rows], z, (h[:, rows], c[:, rows]))
            h[:, rows], c[:, rows] = h_new, c_new
            env_action = agent.act_spec.to_env(action.numpy())
            for j, i in enumerate(rows):
                obs[i], reward, terminated, truncated, _ = self.envs[i].step(env_action[j])
                total[i] += reward
                alive[i] = not (terminated or truncated)
            steps += len(rows) * self.env_cfg.action_repeat
            t += 1
        return total, steps

    def close(self) -> None:
        for env in self.envs:
            env.close()


_WORKER: RolloutWorker | None = None


def _init_worker(*args: Any) -> None:
    global _WORKER
    _WORKER = RolloutWorker(*args)


def _score(args: tuple) -> tuple[np.ndarray, int]:
    return _WORKER.returns(*args)


class ControllerRollouts:
    """Scores batches of controller parameters by real-environment returns, split over `workers` processes."""

    def __init__(self, agent: WorldModelsAgent, env_cfg: EnvConfig, workers: int):
        weights = {k: v.detach().cpu() for k, v in agent.state_dict().items()}
        args = (agent.cfg, env_cfg, agent.obs_spec, agent.act_spec, weights)
        self.workers = workers
        self.pool = process_pool(workers, _init_worker, args)
        self.local = RolloutWorker(*args) if self.pool is None else None

    def returns(self, params: np.ndarray, seeds: list[int], max_steps: int | None) -> tuple[np.ndarray, int]:
        """Returns `[N]` of rows acting with `params` `[N, P]` from episode `seeds` `[N]`, and the env steps used."""
        if self.pool is None:
            return self.local.returns(params, seeds, max_steps)
        chunks = np.array_split(np.arange(len(seeds)), self.workers)
        jobs = [(params[c], [seeds[i] for i in c], max_steps) for c in chunks if len(c)]
        results = list(self.pool.map(_score, jobs))
        return np.concatenate([r for r, _ in results]), sum(s for _, s in results)

    def close(self) -> None:
        if self.pool is None:
            self.local.close()
        else:
            self.pool.shutdown(cancel_futures=True)
