"""How often undirected play reaches the goal of a task with −1 per step: uniformly random actions against
the same actions under `agents/holds.py` (ε = 1, μ = 2, at most 100 steps, the gate open: a uniform policy).
Episodes are seeded 0 … N−1; the holds draw from torch's generator seeded 0.
Run with `python benchmarks/holds_reach.py [--episodes 200]`; it prints one line per task and way of play.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from worldmodels.agents.holds import HoldConfig, hold


def goals_reached(env_id: str, episodes: int, policy: Callable[[Tensor, Any], tuple[Any, Any]]) -> int:
    """Episodes of `env_id` (seeded 0 … N−1) that end at its goal (terminated, not cut by the time limit);
    `policy(is_first [1], state)` gives the action and the state carried to the next step."""
    torch.manual_seed(0)
    env, first, count = gym.make(env_id), torch.ones(1, dtype=torch.bool), 0
    for episode in range(episodes):
        env.reset(seed=episode)
        state, is_first = None, first
        while True:
            action, state = policy(is_first, state)
            _, _, terminated, truncated, _ = env.step(action)
            is_first = ~first
            if terminated or truncated:
                count += int(terminated)
                break
    return count


def reached(env_id: str, episodes: int, probability: float) -> int:
    """Episodes of `env_id` that reach its goal under uniform actions, held with probability ε."""
    n = int(gym.make(env_id).action_space.n)
    uniform = torch.full((1, n), 1 / n)

    def policy(is_first: Tensor, state: Any) -> tuple[int, Any]:
        action = torch.randint(n, (1,))
        if probability > 0:
            action, state = hold(action, uniform, is_first, state, probability, HoldConfig())
        return int(action), state

    return goals_reached(env_id, episodes, policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    for env_id in ("MountainCar-v0", "Acrobot-v1"):
        for name, probability in (("uniform", 0.0), ("holds", 1.0)):
            count = reached(env_id, args.episodes, probability)
            print(f"{env_id} {name}: {count} of {args.episodes} episodes reach the goal")


if __name__ == "__main__":
    main()
