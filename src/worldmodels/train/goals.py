"""Goal-conditioned evaluation, `goal_success`: from a start state, reach the state an exploring policy
reached k steps later, judged by the environment's own state, not by the model.

The environment's side (`contracts.Positioned`, met by `wm/TwoRoom-v0` and `maze:PointMaze_*`): it reports
its position as `info["position"]` (x, y) after every reset and step, starts at rest where told by
`reset(options={"position": (x, y)})`, and states its `step_size`, the farthest the position moves along an
axis in one step, in its own units. The task's distances are counted in steps (`step_size` x the action
repeat), so one `GoalTask` means the same on a unit square and in a maze measured in metres.

Pairs are drawn once, from seeds of the evaluator's own (held out from any training data): a start at the
environment's own reset, and the goal where k steps of the `held` random policy took it (each uniform
action kept 4 steps; `envs/record.py`). A uniform random walk barely moves in 4-8 steps, so its goals would
sit next to the start; held actions go somewhere. A pair whose goal lies within `min_distance` of its start
is drawn again, so standing still never succeeds. The agent then starts at each pair's start position,
is shown the goal's observation, and acts for k steps (the steps the exploring policy took); success is the
environment's position ending within `tolerance` of the goal's. Uniformly random actions from the same
starts, judged the same way, are reported beside it: the floor (about 3-4 % on wm/TwoRoom-v0).

The task's settings (`GoalTask`) are fixed here and printed with every result, in steps and in the
environment's units, together with the agent's planning settings: published success rates move from 14 % to
84 % with such settings alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from worldmodels import contracts
from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import EnvConfig
from worldmodels.envs import make_env
from worldmodels.envs.record import Policy, random_actions
from worldmodels.envs.spaces import act_spec_of
from worldmodels.errors import ConfigError
from worldmodels.spaces import Obs, obs_map


@dataclass(frozen=True)
class GoalTask:
    """What `goal_success` measures (the step budget of offset k is k)."""

    offsets: tuple[int, ...] = (4, 8)
    """k: goals are where the exploring policy was k steps after the start."""
    tolerance: float = 1.0
    """Success: the final position within this many steps of the goal's (one step's farthest move along an
    axis: TwoRoom 0.05, PointMaze 0.25 m)."""
    min_distance: float = 2.0
    """Goals nearer than this many steps to their start are drawn again (2 x the tolerance: standing still
    fails)."""
    policy: Policy = "held"
    """The exploring policy the goals come from."""


@dataclass(frozen=True)
class Pairs:
    """Start positions `[n, 2]`, goal positions `[n, 2]` and the goals' observations `[n, *obs]`."""

    starts: np.ndarray
    goals: np.ndarray
    goal_obs: Obs


def stack(observations: list[Obs]) -> Obs:
    return obs_map(lambda *xs: np.stack(xs), *observations)


def unpositioned(env_id: str, lacks: str) -> ConfigError:
    return ConfigError(
        f"train.evaluate=goal_success needs an environment that reports its state as info['position'], starts "
        f"where told (reset options {{'position': ...}}) and states its step_size, such as wm/TwoRoom-v0 or "
        f"maze:PointMaze_UMaze-v3; '{env_id}' {lacks}: use train.evaluate=returns"
    )


def position(info: dict, env_id: str) -> np.ndarray:
    if "position" not in info:
        raise unpositioned(env_id, "reports no info['position']")
    return np.asarray(info["position"], np.float64)


def step_unit(env: gym.Env, env_cfg: EnvConfig) -> float:
    """The unit of `GoalTask`'s distances: the farthest the position moves along an axis in one agent step."""
    size = getattr(env.unwrapped, "step_size", None)
    if size is None:
        raise unpositioned(env_cfg.id, "states no step_size")
    return float(size) * env_cfg.action_repeat


def draw_pairs(env: gym.Env, env_id: str, task: GoalTask, offset: int, n: int, seed: int, unit: float) -> Pairs:
    """`n` (start, goal) pairs `offset` steps apart along the exploring policy, goals at least `min_distance`
    steps of `unit` from their start."""
    act_spec = act_spec_of(env.action_space, env_id)
    min_distance = task.min_distance * unit
    rng = np.random.default_rng(seed)
    starts, goals, goal_obs = [], [], []
    for _ in range(100 * n):
        _, info = env.reset(seed=int(rng.integers(2**31)))
        start = position(info, env_id)
        actions = random_actions(task.policy, act_spec, rng)
        for _ in range(offset):
            obs, _, _, _, info = env.step(act_spec.to_env(next(actions)[None])[0])
        goal = position(info, env_id)
        if np.linalg.norm(goal - start) >= min_distance:
            starts.append(start)
            goals.append(goal)
            goal_obs.append(obs)
        if len(starts) == n:
            return Pairs(np.stack(starts), np.stack(goals), stack(goal_obs))
    raise ConfigError(
        f"the {task.policy} policy of '{env_id}' seldom moves {min_distance:g} in {offset} steps: "
        f"found {len(starts)} of {n} goal pairs in {100 * n} tries"
    )


class GoalSuccess:
    """`eval/goal_success_k{k}`: the fraction of `pairs` held-out (start, goal) pairs per offset k that the
    agent reaches, beside `eval/random_success_k{k}` of uniformly random actions and the mean final distance
    `eval/goal_distance_k{k}` (see the module docstring)."""

    def __init__(self, agent: Agent, env_cfg: EnvConfig, pairs: int, seed: int, task: GoalTask = GoalTask()):
        lacks = contracts.unfit(type(agent), contracts.GoalConditioned)
        if lacks:
            raise ConfigError(
                f"{type(agent).__name__} does not act toward goals ({lacks[0]}); use train.evaluate=returns"
            )
        self.agent, self.env_cfg, self.task = agent, env_cfg, task
        self.envs = [make_env(env_cfg) for _ in range(pairs)]
        self.act_spec = act_spec_of(self.envs[0].action_space, env_cfg.id)
        self.unit = step_unit(self.envs[0], env_cfg)
        self.tolerance = task.tolerance * self.unit
        self.pairs = {
            k: draw_pairs(self.envs[0], env_cfg.id, task, k, pairs, seed + k, self.unit) for k in task.offsets
        }

    def play(self, pairs: Pairs, steps: int, choose) -> np.ndarray:
        """Final positions `[n, 2]` after `steps` actions `choose(obs [n, *obs], t)` → `[n, A]` from the starts."""
        obs, infos = zip(*(env.reset(options={"position": s}) for env, s in zip(self.envs, pairs.starts)))
        if not np.allclose([position(i, self.env_cfg.id) for i in infos], pairs.starts, atol=1e-5):
            raise unpositioned(self.env_cfg.id, "does not start where told")
        obs = stack(list(obs))
        for t in range(steps):
            actions = self.act_spec.to_env(choose(obs, t))
            stepped = [env.step(a) for env, a in zip(self.envs, actions)]
            obs = stack([s[0] for s in stepped])
        return np.stack([position(s[4], self.env_cfg.id) for s in stepped])

    def reach(self, pairs: Pairs, steps: int) -> np.ndarray:
        """Final positions `[n, 2]` of the agent acting toward the goals."""
        device = self.agent.device
        state = self.agent.goal_state(to_tensor(pairs.goal_obs, device))
        first = torch.ones(len(pairs.starts), dtype=torch.bool, device=device)

        def choose(obs: Obs, t: int) -> np.ndarray:
            nonlocal state
            action, state, _ = self.agent.act(to_tensor(obs, device), first if t == 0 else ~first, state, False)
            return action.cpu().numpy()

        return self.play(pairs, steps, choose)

    def __call__(self, seed: int) -> dict[str, float]:
        metrics = {}
        rng = np.random.default_rng(seed)
        with torch.random.fork_rng(devices=[self.agent.device] if self.agent.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for k, pairs in self.pairs.items():
                reached = np.linalg.norm(self.reach(pairs, k) - pairs.goals, axis=1)
                wandered = self.play(pairs, k, lambda obs, t: self.act_spec.random(len(self.envs), rng))
                wandered = np.linalg.norm(wandered - pairs.goals, axis=1)
                metrics[f"eval/goal_success_k{k}"] = float((reached <= self.tolerance).mean())
                metrics[f"eval/random_success_k{k}"] = float((wandered <= self.tolerance).mean())
                metrics[f"eval/goal_distance_k{k}"] = float(reached.mean())
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        task = self.task
        found = ", ".join(
            f"k={k} {100 * metrics[f'eval/goal_success_k{k}']:.1f}% "
            f"(random {100 * metrics[f'eval/random_success_k{k}']:.1f}%)"
            for k in task.offsets
        )
        return (
            f"eval goal success {found}  ({len(self.envs)} held-out pairs per k, goals k steps of {task.policy} "
            f"actions ahead and >= {task.min_distance * self.unit:g} away, success within {self.tolerance:g} "
            f"after k steps: {task.min_distance:g} and {task.tolerance:g} steps of {self.unit:g}, the farthest "
            f"move of a step; {self.agent.describe_planning()})"
        )
