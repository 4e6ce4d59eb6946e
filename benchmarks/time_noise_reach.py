"""How often undirected play reaches MountainCarContinuous-v0's flag: actions σ·ε clipped to ±1, with ε white
or coloured in time through `agents/time_noise.py` (β = 0, 0.5, 1, 2; one sequence per episode).
Episodes are seeded 0 … N−1; the noise draws from torch's generator seeded 0.
Run with `python benchmarks/time_noise_reach.py [--episodes 40]`; it prints one line per β and σ.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch

from worldmodels.agents.time_noise import TimeNoiseConfig, time_noise


def reached(episodes: int, colour: float, sigma: float) -> int:
    """Episodes that end at the flag (terminated, not cut by the time limit)."""
    torch.manual_seed(0)
    env, cfg, first = gym.make("MountainCarContinuous-v0"), TimeNoiseConfig(colour), torch.ones(1, dtype=torch.bool)
    count = 0
    for episode in range(episodes):
        env.reset(seed=episode)
        state, is_first = None, first
        while True:
            eps, state = time_noise(torch.zeros(1, 1), is_first, state, cfg)
            _, _, terminated, truncated, _ = env.step((sigma * eps[0]).clamp(-1, 1).numpy())
            is_first = ~first
            if terminated or truncated:
                count += int(terminated)
                break
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    args = parser.parse_args()
    for colour in (0.0, 0.5, 1.0, 2.0):
        for sigma in (1.0, 0.5, 0.3):
            count = reached(args.episodes, colour, sigma)
            print(f"beta {colour} sigma {sigma}: {count} of {args.episodes} episodes reach the flag")


if __name__ == "__main__":
    main()
