"""Several environments stepped together, each episode reset with its own derived seed.

Because every episode starts from a known seed and the pool remembers the actions taken in the
current episodes, its exact state can be saved as a few numbers and rebuilt by replaying them:
this is what lets a resumed run continue the very episodes the killed run was in.

`vectorization=async` runs each environment in its own worker process; the pool sends every
environment its command first and then collects the answers, so they step in parallel.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from worldmodels.envs.config import EnvConfig
from worldmodels.envs.make import make_env
from worldmodels.envs.spaces import act_spec_of, obs_spec_of
from worldmodels.errors import ConfigError, EnvError, WMError
from worldmodels.spaces import Obs, obs_map, obs_set
from worldmodels.workers import ignore_interrupts


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


def _serve(env: gym.Env, method: str, args: tuple) -> Any:
    """The commands a pool sends to one environment."""
    if method == "spaces":
        return env.observation_space, env.action_space
    if method == "reset":
        return env.reset(seed=args[0])[0]
    if method == "step":
        obs, reward, terminated, truncated, _ = env.step(args[0])
        return obs, float(reward), bool(terminated), bool(truncated)
    if method == "replay":  # reset with a seed and re-apply an episode's actions
        seed, actions = args
        obs = env.reset(seed=seed)[0]
        for action in actions:
            obs = env.step(action)[0]
        return obs
    raise ValueError(method)


class _Local:
    """An environment in this process, behind the same call/result protocol as a worker."""

    def __init__(self, make: Callable[[], gym.Env]):
        self.env = make()

    def call(self, method: str, *args: Any) -> None:
        self._result = _serve(self.env, method, args)

    def result(self) -> Any:
        return self._result

    def close(self) -> None:
        self.env.close()


def _worker(make: Callable[[], gym.Env], conn) -> None:
    ignore_interrupts()
    try:
        env = make()
    except Exception as err:  # reported to the parent on its first call
        env, failure = None, err
    while True:
        method, args = conn.recv()
        if method == "close":
            if env is not None:
                env.close()
            conn.close()
            return
        try:
            if env is None:
                raise failure
            conn.send((True, _serve(env, method, args)))
        except Exception as err:
            conn.send((False, err if isinstance(err, WMError) else RuntimeError(f"{type(err).__name__}: {err}")))


class _Remote:
    """An environment in a worker process."""

    def __init__(self, make: Callable[[], gym.Env]):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(make, child), daemon=True)
        self.process.start()
        child.close()

    def call(self, method: str, *args: Any) -> None:
        self.conn.send((method, args))

    def result(self) -> Any:
        ok, value = self.conn.recv()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(("close", ()))
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()


@dataclass
class Step:
    """What one pool step produced.

    `records` go to replay, one row per entry, `streams` naming the env of each row (a finished env
    contributes its last observation and then the first of its next episode). `obs` / `is_first` are
    what the policy acts on next; `finished` lists (env index, return, length) of episodes that ended.
    """

    records: dict[str, Obs]
    streams: np.ndarray
    obs: Obs
    is_first: np.ndarray
    finished: list[tuple[int, float, int]]


class EnvPool:
    """`num_envs` environments stepped with one batch of model actions `[N, A]`."""

    def __init__(self, cfg: EnvConfig, seed: int, num_envs: int | None = None):
        self.cfg = cfg
        self.seed = seed
        self.num_envs = n = num_envs or cfg.num_envs
        handle = _Remote if cfg.vectorization == "async" and n > 1 else _Local
        self.envs = [handle(partial(make_env, cfg)) for _ in range(n)]
        try:
            obs_space, act_space = self._all("spaces", [()])[0]
            self.obs_spec = obs_spec_of(obs_space, cfg.id)
            self.act_spec = act_spec_of(act_space, cfg.id)
            self.episodes = np.zeros(n, np.int64)  # episodes started per env
            self.ep_return = np.zeros(n, np.float64)
            self.ep_length = np.zeros(n, np.int64)
            self.ep_actions: list[list[np.ndarray]] = [[] for _ in range(n)]
            self.obs = _stack(self._reset(list(range(n))))
        except BaseException:
            self.close()
            raise

    def _all(self, method: str, args: Sequence[tuple], which: Sequence[int] | None = None) -> list[Any]:
        """Send `method(*args[j])` to env `which[j]` (all envs by default), then gather the results."""
        which = range(len(args)) if which is None else which
        for i, a in zip(which, args):
            self.envs[i].call(method, *a)
        return [self.envs[i].result() for i in which]

    def _reset(self, which: list[int]) -> list[Obs]:
        seeds = [(episode_seed(self.seed, i, int(self.episodes[i])),) for i in which]
        obs = self._all("reset", seeds, which)
        for i in which:
            self.episodes[i] += 1
            self.ep_return[i], self.ep_length[i] = 0.0, 0
            self.ep_actions[i] = []
        self._check_finite(_stack(obs), np.zeros(len(which)), list(which))
        return obs

    def _check_finite(self, obs: Obs, reward: np.ndarray, which: Sequence[int]) -> None:
        """Stop at an observation or reward that is NaN or infinite (one `isfinite` per array of the batch)
        with one line naming the environment, the field and the step, before it reaches a model."""
        fields = {"reward": reward}
        fields |= {f"observation {k}": v for k, v in obs.items()} if isinstance(obs, dict) else {"observation": obs}
        for name, value in fields.items():
            if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
                row = int(np.flatnonzero(~np.isfinite(value.reshape(len(value), -1)).all(1))[0])
                i = which[row]
                bad = value[row][~np.isfinite(value[row])].flat[0] if value.ndim > 1 else value[row]
                raise EnvError(
                    f"environment '{self.cfg.id}' returned a non-finite {name} ({bad}) in env {i} at step "
                    f"{self.ep_length[i]} of its episode {self.episodes[i]}; fix or wrap the environment"
                )

    @staticmethod
    def _records(obs, action, reward, is_first, is_terminal) -> dict[str, Obs]:
        return {
            "obs": obs,
            "action": np.asarray(action, np.float32),
            "reward": np.asarray(reward, np.float32),
            "is_first": np.asarray(is_first, bool),
            "is_terminal": np.asarray(is_terminal, bool),
        }

    def first_records(self) -> Step:
        """The records of the current first observations (call once, before the first `step`)."""
        n, zeros = self.num_envs, np.zeros(self.num_envs)
        action = np.zeros((n, self.act_spec.dim), np.float32)
        records = self._records(self.obs, action, zeros, np.ones(n, bool), np.zeros(n, bool))
        return Step(records, np.arange(n), self.obs, np.ones(n, bool), [])

    def step(self, action: np.ndarray) -> Step:
        """Apply model actions `[N, A]`; finished episodes are reset with their next seed."""
        env_action = self.act_spec.to_env(action)
        n = self.num_envs
        results = self._all("step", [(a,) for a in env_action])
        obs = _stack([r[0] for r in results])
        reward = np.array([r[1] for r in results])
        terminated = np.array([r[2] for r in results])
        truncated = np.array([r[3] for r in results])
        self.ep_length += 1
        self._check_finite(obs, reward, range(n))
        for i in range(n):
            self.ep_actions[i].append(action[i])
        self.ep_return += reward
        records = self._records(obs, action, reward, np.zeros(n, bool), terminated)
        streams = np.arange(n)
        done = np.flatnonzero(terminated | truncated)
        finished = [(int(i), float(self.ep_return[i]), int(self.ep_length[i])) for i in done]
        next_obs, is_first = obs_map(np.copy, obs), np.zeros(n, bool)
        if len(done):
            obs_set(next_obs, done, _stack(self._reset(list(done))))
            is_first[done] = True
            k = len(done)
            first = self._records(
                obs_map(lambda x: x[done], next_obs),
                np.zeros((k, self.act_spec.dim)),
                np.zeros(k),
                np.ones(k, bool),
                np.zeros(k, bool),
            )
            records = {key: obs_map(lambda a, b: np.concatenate([a, b]), records[key], first[key]) for key in records}
            streams = np.concatenate([streams, done])
        self.obs = next_obs
        return Step(records, streams, next_obs, is_first, finished)

    # ------------------------------------------------------------------ exact save / restore

    def state_dict(self) -> dict[str, np.ndarray]:
        """Episode counters and the actions of the current episodes: enough to rebuild every env."""
        state = {
            "episodes": self.episodes.copy(),
            "ep_return": self.ep_return.copy(),
            "ep_length": self.ep_length.copy(),
        }
        for i, acts in enumerate(self.ep_actions):
            state[f"actions_{i}"] = np.asarray(acts, np.float32).reshape(-1, self.act_spec.dim)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Reset each env with its current episode's seed and replay that episode's actions."""
        if len(state["episodes"]) != self.num_envs:
            raise ConfigError(f"saved pool had {len(state['episodes'])} envs, this one has {self.num_envs}")
        args = [
            (
                episode_seed(self.seed, i, int(state["episodes"][i]) - 1),
                list(self.act_spec.to_env(state[f"actions_{i}"])),
            )
            for i in range(self.num_envs)
        ]
        self.obs = _stack(self._all("replay", args))
        self.ep_actions = [list(state[f"actions_{i}"]) for i in range(self.num_envs)]
        self.episodes = state["episodes"].copy()
        self.ep_return = state["ep_return"].copy()
        self.ep_length = state["ep_length"].copy()

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _stack(rows: list[Obs]) -> Obs:
    return obs_map(lambda *xs: np.stack(xs), *rows)
