"""Several environments stepped together, each episode reset with its own derived seed.

Because every episode starts from a known seed and the pool remembers the actions taken in the
current episodes, its exact state can be saved as a few numbers and rebuilt by replaying them:
this is what lets a resumed run continue the very episodes the killed run was in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.envs.make import make_env
from worldmodels.envs.spaces import ActSpec, ObsSpec


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


@dataclass
class Step:
    """What one pool step produced.

    `records` go to replay, one row per entry, `streams` naming the env of each row (a finished env
    contributes its last observation and then the first of its next episode). `obs` / `is_first` are
    what the policy acts on next; `finished` lists (env index, return, length) of episodes that ended.
    """

    records: dict[str, np.ndarray]
    streams: np.ndarray
    obs: np.ndarray
    is_first: np.ndarray
    finished: list[tuple[int, float, int]]


class EnvPool:
    """`num_envs` environments in this process, stepped with one batch of model actions `[N, A]`."""

    def __init__(self, cfg: EnvConfig, seed: int, num_envs: int | None = None):
        self.cfg = cfg
        self.seed = seed
        self.num_envs = num_envs or cfg.num_envs
        self.envs = [make_env(cfg) for _ in range(self.num_envs)]
        self.obs_spec = ObsSpec.of(self.envs[0].observation_space, cfg.id)
        self.act_spec = ActSpec.of(self.envs[0].action_space, cfg.id)
        n = self.num_envs
        self.episodes = np.zeros(n, np.int64)  # episodes started per env
        self.ep_return = np.zeros(n, np.float64)
        self.ep_length = np.zeros(n, np.int64)
        self.ep_actions: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.obs = np.stack([self._reset(i) for i in range(n)])

    def _reset(self, i: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=episode_seed(self.seed, i, int(self.episodes[i])))
        self.episodes[i] += 1
        self.ep_return[i], self.ep_length[i] = 0.0, 0
        self.ep_actions[i] = []
        return obs

    def first_records(self) -> Step:
        """The records of the current first observations (call once, before the first `step`)."""
        n = self.num_envs
        return Step(
            self._records(
                self.obs, np.zeros((n, self.act_spec.dim), np.float32), np.zeros(n), np.ones(n, bool), np.zeros(n, bool)
            ),
            np.arange(n),
            self.obs,
            np.ones(n, bool),
            [],
        )

    @staticmethod
    def _records(obs, action, reward, is_first, is_terminal) -> dict[str, np.ndarray]:
        return {
            "obs": obs,
            "action": np.asarray(action, np.float32),
            "reward": np.asarray(reward, np.float32),
            "is_first": np.asarray(is_first, bool),
            "is_terminal": np.asarray(is_terminal, bool),
        }

    def step(self, action: np.ndarray) -> Step:
        """Apply model actions `[N, A]`; finished episodes are reset with their next seed."""
        env_action = self.act_spec.to_env(action)
        n = self.num_envs
        obs, reward = [], np.zeros(n)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        for i, env in enumerate(self.envs):
            o, r, te, tr, _ = env.step(env_action[i])
            obs.append(o)
            reward[i], terminated[i], truncated[i] = r, te, tr
            self.ep_actions[i].append(action[i])
        obs = np.stack(obs)
        self.ep_return += reward
        self.ep_length += 1
        records = self._records(obs, action, reward, np.zeros(n, bool), terminated)
        streams = np.arange(n)
        done = np.flatnonzero(terminated | truncated)
        finished = [(int(i), float(self.ep_return[i]), int(self.ep_length[i])) for i in done]
        next_obs, is_first = obs.copy(), np.zeros(n, bool)
        if len(done):
            for i in done:
                next_obs[i] = self._reset(i)
            is_first[done] = True
            first = self._records(
                next_obs[done],
                np.zeros((len(done), self.act_spec.dim)),
                np.zeros(len(done)),
                np.ones(len(done), bool),
                np.zeros(len(done), bool),
            )
            records = {k: np.concatenate([records[k], first[k]]) for k in records}
            streams = np.concatenate([streams, done])
        self.obs = next_obs
        return Step(records, streams, next_obs, is_first, finished)

    # ------------------------------------------------------------------ exact save / restore

    def state_dict(self) -> dict[str, np.ndarray]:
        """Episode counters and the actions of the current episodes: enough to rebuild every env."""
        width = self.act_spec.dim
        state = {
            "episodes": self.episodes.copy(),
            "ep_return": self.ep_return.copy(),
            "ep_length": self.ep_length.copy(),
        }
        for i, acts in enumerate(self.ep_actions):
            state[f"actions_{i}"] = np.asarray(acts, np.float32).reshape(-1, width)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Reset each env with its current episode's seed and replay that episode's actions."""
        if len(state["episodes"]) != self.num_envs:
            raise ValueError(f"saved pool had {len(state['episodes'])} envs, this one has {self.num_envs}")
        for i, env in enumerate(self.envs):
            seed = episode_seed(self.seed, i, int(state["episodes"][i]) - 1)
            obs, _ = env.reset(seed=seed)
            actions = state[f"actions_{i}"]
            for a in actions:
                obs, *_ = env.step(self.act_spec.to_env(a[None])[0])
            self.obs[i] = obs
            self.ep_actions[i] = list(actions)
        self.episodes = state["episodes"].copy()
        self.ep_return = state["ep_return"].copy()
        self.ep_length = state["ep_length"].copy()

    def close(self) -> None:
        for env in self.envs:
            env.close()
