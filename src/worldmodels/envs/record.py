"""Recording episodes into a dataset (`wm record`, World Models' collect phase), played by a random policy
or by any chooser of actions (a trained agent's, for expert data): playing the environments is done here,
the files' layout is `data/episodes.py`'s."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from worldmodels.data.episodes import INDEX, KEYS, episode_file, episode_seed, read_index, write_index, write_npz
from worldmodels.data.replay import flatten
from worldmodels.envs.config import EnvConfig
from worldmodels.envs.make import make_env
from worldmodels.envs.spaces import act_spec_of
from worldmodels.errors import ConfigError
from worldmodels.spaces import ActSpec, Obs, obs_map
from worldmodels.workers import process_pool

Policy = Literal["uniform", "brownian", "held"]
Chooser = Callable[[Obs], np.ndarray]
"""Picks the model action `[A]` for one observation of an episode (one chooser plays one episode)."""
BROWNIAN_DT = 1 / 50
HELD_STEPS = 4
"""Steps each uniformly drawn action is kept for by the `held` policy."""


def random_actions(policy: Policy, act_spec: ActSpec, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Model actions `[A]` of a random `policy`, one per step, without end.

    `uniform` draws every action independently; `brownian` (continuous actions) walks
    a_{t+1} = clip(a_t + √dt·N(0, 1)) with dt = 1/50, which drives further than jitter; `held` draws an action
    uniformly and keeps it for `HELD_STEPS` steps, which goes somewhere and turns often (a Brownian walk sits
    against a wall for long stretches once its action points into it)."""
    action = act_spec.random(1, rng)[0]
    for step in itertools.count():
        if policy == "brownian" and not act_spec.discrete:
            action = np.clip(action + np.sqrt(BROWNIAN_DT) * rng.standard_normal(act_spec.dim), -1, 1)
        elif policy != "held" or step % HELD_STEPS == 0:
            action = act_spec.random(1, rng)[0]
        yield np.asarray(action, np.float32)


def record_episode(
    env_cfg: EnvConfig,
    act_spec: ActSpec,
    policy: Policy | Callable[[], Chooser],
    seed: int,
    max_steps: int | None,
    path: Path,
    keys: tuple[str, ...] = KEYS,
) -> tuple[float, int]:
    """Play one episode of a random `policy` (or of a new chooser from `policy()`) from `seed` and write its
    `keys` to `path`; returns (return, length T)."""
    if callable(policy):
        arrays = play_episode(env_cfg, act_spec, policy(), seed, max_steps)
    else:
        arrays = random_episode(env_cfg, act_spec, policy, seed, max_steps)
    write_npz(path, {k: v for k, v in arrays.items() if k.partition("/")[0] in keys})
    return float(arrays["reward"].sum()), len(arrays["reward"]) - 1


def random_episode(
    env_cfg: EnvConfig, act_spec: ActSpec, policy: Policy, seed: int, max_steps: int | None
) -> dict[str, np.ndarray]:
    """One episode of a random `policy` (see `random_actions`) from `seed`, in a file's flat layout (T + 1
    rows, action 0 zeros)."""
    actions = random_actions(policy, act_spec, np.random.default_rng(seed))
    return play_episode(env_cfg, act_spec, lambda obs: next(actions), seed, max_steps)


def play_episode(
    env_cfg: EnvConfig, act_spec: ActSpec, choose: Chooser, seed: int, max_steps: int | None
) -> dict[str, np.ndarray]:
    """One episode from `seed` with the actions `choose` picks, in a file's flat layout (T + 1 rows, action 0
    zeros)."""
    env = make_env(env_cfg)
    try:
        obs = contiguous(env.reset(seed=seed)[0])
        frames, actions, rewards, terminal = [obs], [np.zeros(act_spec.dim, np.float32)], [0.0], [False]
        while max_steps is None or len(frames) <= max_steps:
            action = np.asarray(choose(obs), np.float32)
            obs, reward, terminated, truncated, _ = env.step(act_spec.to_env(action[None])[0])
            obs = contiguous(obs)
            frames.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terminal.append(bool(terminated))
            if terminated or truncated:
                break
    finally:
        env.close()
    stacked = {k: np.stack([f[k] for f in frames]) for k in frames[0]} if isinstance(obs, dict) else np.stack(frames)
    return {
        **flatten({"obs": stacked}),
        "action": np.stack(actions).astype(np.float32),
        "reward": np.asarray(rewards, np.float32),
        "is_terminal": np.asarray(terminal, bool),
    }


def contiguous(obs: Obs) -> Obs:
    """An observation in arrays of its own (rendered frames can be flipped views, which torch refuses)."""
    return obs_map(np.ascontiguousarray, obs)


def _record_job(args: tuple) -> tuple[float, int]:
    return record_episode(*args)


def record_many(jobs: list[tuple], pool: Executor | None) -> list[tuple[float, int]]:
    """`record_episode(*job)` for every job, spread over `pool` (in this process without one)."""
    if pool is None:
        return [record_episode(*job) for job in jobs]
    return list(pool.map(_record_job, jobs))


def record(
    env_cfg: EnvConfig,
    out: Path,
    episodes: int,
    seed: int,
    policy: Policy | Callable[[], Chooser] = "uniform",
    max_steps: int | None = None,
    workers: int = 1,
    actions: bool = True,
) -> dict[str, Any]:
    """Write `episodes` episodes of `env_cfg` played by a random `policy` to the dataset folder `out`; returns
    its index. A `policy` that makes choosers (`train.evaluate.AgentPolicy`: a trained agent) plays in this
    process, one chooser an episode, whatever `workers` says. Without `actions` the episodes hold their
    frames alone (`obs`: video without actions, for Genie).

    Episode i is played from seed (`seed`, i), so the same arguments write the same dataset."""
    out = Path(out)
    if (out / INDEX).exists() or any(out.glob("episode_*.npz")):
        raise ConfigError(f"'{out}' already holds a dataset; record into an empty or new folder")
    env = make_env(env_cfg)
    act_spec = act_spec_of(env.action_space, env_cfg.id)
    env.close()
    out.mkdir(parents=True, exist_ok=True)  # only once the environment is known good
    keys = KEYS if actions else ("obs",)
    jobs = [
        (env_cfg, act_spec, policy, episode_seed(seed, i), max_steps, episode_file(out, i), keys)
        for i in range(episodes)
    ]
    results: list[tuple[float, int]] = []
    pool = None if callable(policy) else process_pool(workers)
    try:
        with tqdm(total=episodes, desc="record", unit="episode", disable=None) as bar:
            for start in range(0, episodes, 4 * workers):
                results += record_many(jobs[start : start + 4 * workers], pool)
                bar.update(len(results) - bar.n)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    write_index(out, asdict(env_cfg), act_spec, results, keys, policy=str(policy), seed=seed)
    return read_index(out)
