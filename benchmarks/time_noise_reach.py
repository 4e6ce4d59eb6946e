"""How often undirected play reaches MountainCarContinuous-v0's flag: actions σ·ε clipped to ±1, with ε white
or coloured in time through `agents/time_noise.py` (β = 0, 0.5, 1, 2; one sequence per episode).
Episodes are seeded 0 … N−1; the noise draws from torch's generator seeded 0.
Run with `python benchmarks/time_noise_reach.py [--episodes 40]`; it prints one line per β and σ.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from holds_reach import goals_reached
from torch import Tensor

from worldmodels.agents.time_noise import TimeNoiseConfig, time_noise


def reached(episodes: int, colour: float, sigma: float) -> int:
    """Episodes that end at the flag under actions σ·ε, ε coloured with β = `colour`."""
    cfg = TimeNoiseConfig(colour)

    def policy(is_first: Tensor, state: Any) -> tuple[np.ndarray, Any]:
        eps, state = time_noise(torch.zeros(1, 1), is_first, state, cfg)
        return (sigma * eps[0]).clamp(-1, 1).numpy(), state

    return goals_reached("MountainCarContinuous-v0", episodes, policy)


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
