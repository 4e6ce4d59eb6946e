"""How often undirected play reaches MountainCarContinuous-v0's flag: actions σ·ε clipped to ±1, with ε white
or coloured in time through `agents/time_noise.py` (β = 0, 0.5, 1, 2; one sequence per episode).
Episodes are seeded 0 … N−1; the noise draws from torch's generator seeded 0.
Run with `python benchmarks/time_noise_reach.py [--episodes 40]`; it prints one line per β and σ. With
`--dmc` (needs dm_control) it prints instead the returns of 10 episodes of σ = 1 white and pink noise on
dm_control's pendulum-swingup and cartpole-swingup (action repeat 2, 500-step sequences).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from holds_reach import goals_reached
from torch import Tensor

from worldmodels.agents.time_noise import TimeNoiseConfig, time_noise
from worldmodels.envs.config import EnvConfig
from worldmodels.envs.make import make_env


def reached(episodes: int, colour: float, sigma: float) -> int:
    """Episodes that end at the flag under actions σ·ε, ε coloured with β = `colour`."""
    cfg = TimeNoiseConfig(colour)

    def policy(is_first: Tensor, state: Any) -> tuple[np.ndarray, Any]:
        eps, state = time_noise(torch.zeros(1, 1), is_first, state, cfg)
        return (sigma * eps[0]).clamp(-1, 1).numpy(), state

    return goals_reached("MountainCarContinuous-v0", episodes, policy)


def returns(task: str, colour: float, episodes: int = 10) -> list[float]:
    """Returns of `episodes` episodes (seeded 0 … N−1) of dm_control `task` under σ = 1 noise of colour β."""
    torch.manual_seed(0)
    env, cfg = make_env(EnvConfig(id=task, action_repeat=2)), TimeNoiseConfig(colour, 500)
    first = torch.ones(1, dtype=torch.bool)
    totals = []
    for episode in range(episodes):
        env.reset(seed=episode)
        state, is_first, total = None, first, 0.0
        while True:
            eps, state = time_noise(torch.zeros(1, env.action_space.shape[0]), is_first, state, cfg)
            _, reward, terminated, truncated, _ = env.step(eps[0].clamp(-1, 1).numpy())
            is_first, total = ~first, total + float(reward)
            if terminated or truncated:
                break
        totals.append(round(total, 1))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--dmc", action="store_true", help="dm_control swing-ups' returns instead")
    args = parser.parse_args()
    if args.dmc:
        for task in ("dmc:pendulum-swingup", "dmc:cartpole-swingup"):
            for colour in (0.0, 1.0):
                totals = returns(task, colour)
                print(f"{task} beta {colour}: mean {np.mean(totals):.1f}, episodes {totals}")
        return
    for colour in (0.0, 0.5, 1.0, 2.0):
        for sigma in (1.0, 0.5, 0.3):
            count = reached(args.episodes, colour, sigma)
            print(f"beta {colour} sigma {sigma}: {count} of {args.episodes} episodes reach the flag")


if __name__ == "__main__":
    main()
