"""MinAtar's random-policy scores: the return of uniformly random actions over N episodes per game, through
the package's own env (`minatar:GAME`, sticky actions 0.1, difficulty ramping), the floor that a learning
agent's score is read against. Run with `wm bench minatar_random` or
`python benchmarks/minatar_random.py --out result.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.envs import make_env

GAMES = ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"]


def random_returns(game: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    env = make_env(EnvConfig(id=f"minatar:{game}", obs="pixels"))
    rng = np.random.default_rng(seed)
    returns, lengths = [], []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, steps, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            total, steps, done = total + reward, steps + 1, terminated or truncated
        returns.append(total)
        lengths.append(steps)
    return np.asarray(returns), np.asarray(lengths)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    rows = []
    for game in GAMES:
        returns, lengths = random_returns(game, args.episodes, seed=0)
        sem = returns.std() / np.sqrt(len(returns))
        rows.append([f"minatar:{game}", f"{returns.mean():.2f} ± {sem:.2f}", f"{lengths.mean():.0f}"])
        print(rows[-1], flush=True)
    result = {
        "description": f"Random-policy return per MinAtar game, mean ± standard error over {args.episodes} episodes.",
        "columns": ["env", "return", "mean episode length (steps)"],
        "rows": rows,
        "notes": "Uniform actions over each game's minimal action set; episodes seeded 0..N-1.",
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
