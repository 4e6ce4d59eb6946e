"""Environment throughput through the package's own pool (wrappers, seeding and records included).

Env steps count the action repeat (DMC: physics steps × 1, i.e. agent steps × repeat; Atari: frames),
as `train.steps` does. Random actions; one env in-process (`sync`) and two worker processes (`async`).
Run with `wm bench env_speed` or `python benchmarks/env_speed.py --out result.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from worldmodels.config import EnvConfig
from worldmodels.envs import EnvPool

CASES = [
    ("dmc:cartpole-swingup", "pixels", 2),
    ("dmc:cartpole-swingup", "state", 2),
    ("atari:Pong", "pixels", 4),
    ("CartPole-v1", "state", 1),
]


def measure(env_id: str, obs: str, repeat: int, num_envs: int, vectorization: str, seconds: float) -> float:
    cfg = EnvConfig(id=env_id, obs=obs, action_repeat=repeat, num_envs=num_envs, vectorization=vectorization)
    pool = EnvPool(cfg, seed=0)
    rng = np.random.default_rng(0)
    try:
        for _ in range(10):  # warm up
            pool.step(pool.act_spec.random(num_envs, rng))
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            pool.step(pool.act_spec.random(num_envs, rng))
            steps += num_envs * repeat
        return steps / (time.perf_counter() - start)
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rows = []
    for env_id, obs, repeat in CASES:
        sync = measure(env_id, obs, repeat, 1, "sync", args.seconds)
        both = measure(env_id, obs, repeat, 2, "async", args.seconds)
        rows.append([env_id, obs, repeat, f"{sync:,.0f}", f"{both:,.0f}"])
        print(rows[-1], flush=True)
    result = {
        "description": "Env steps per second (action repeat included) with random actions, through `EnvPool`.",
        "columns": ["env", "obs", "action repeat", "1 env, in-process", "2 envs, worker processes"],
        "rows": rows,
        "notes": "dm_control frames are rendered by MuJoCo with MUJOCO_GL=egl on the CPU (64×64).",
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
