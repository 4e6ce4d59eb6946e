"""PETS planning speed at the reference settings, and the iCEM population that matches CEM on Pendulum.

Speed: one action of PETS (CEM population 500, 5 iterations, horizon 15, ensemble of 5 × (3 × 200),
20 particles, TS∞, Pendulum's state and known reward) evaluates 500·5·15·20 = 750k model rows. The script
times the planner (median seconds per action) and, in the same run, torch's own batched matmuls
(`bmm`, no bias or activation) at exactly the model's shapes; planner GFLOP/s = model FLOP / planner time, so the ratio
says how much of the time goes to anything but the matrix multiplies. Float32 and bfloat16 (autocast).

iCEM: MPC episodes on Pendulum-v1 planned with the true dynamics (so the planner alone is compared),
CEM at the Pendulum preset's planner settings against iCEM at decreasing populations.

    python benchmarks/planner_speed.py --out RESULT.json [--repeats 5] [--episodes 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from worldmodels.agents.pets import PETSAgent, pendulum_reward
from worldmodels.config import load_config
from worldmodels.planners.protocol import Model, rollout_objective
from worldmodels.registry import PLANNERS
from worldmodels.spaces import ActSpec, ObsSpec

REFERENCE = [
    "agent.planner={name: cem, population: 500, elites: 50, iterations: 5, horizon: 15}",
    "agent.dynamics={name: ensemble, members: 5, hidden: 200, layers: 3}",
    "agent.particles=20",
    "agent.propagation=tsinf",
    "agent.known_task=pendulum",
]
S, A = 3, 1  # Pendulum: (cos θ, sin θ, θ̇), torque


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocations, oneDNN kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_agent(precision: str) -> PETSAgent:
    cfg = load_config("pets", [*REFERENCE, f"agent.precision={precision}"]).agent.cfg
    agent = PETSAgent(cfg, ObsSpec((S,), "float32"), ActSpec(False, A))
    with torch.no_grad():  # a trained-looking model: normalisers of Pendulum's scale
        agent.dynamics.update_normalisers(
            torch.randn(1000, S) * torch.tensor([0.7, 0.7, 3.0]), torch.rand(1000, A) * 2 - 1, torch.randn(1000, S)
        )
    return agent


def speed_rows(repeats: int) -> tuple[list[list], dict]:
    plan_cfg = reference_agent("float32").cfg
    P, I, H = plan_cfg.planner.cfg.population, plan_cfg.planner.cfg.iterations, plan_cfg.planner.cfg.horizon
    K, E, width, depth = plan_cfg.particles, 5, 200, 3
    rows_per_action = P * I * H * K
    sizes = [S + A] + [width] * depth + [2 * S]
    flop_per_row = 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    gflop = rows_per_action * flop_per_row / 1e9
    out, times = [], {}
    obs = torch.tensor([[-1.0, 0.0, 0.0]])  # hanging down
    for precision, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        agent = reference_agent(precision)
        seconds = median_time(lambda a=agent: a.plan(obs, None, None), repeats)
        # the same matrix multiplies, alone: per model step E × [P·K/E, in] @ [in, out] for each layer
        n = P * K // E
        mats = [
            (torch.randn(E, n, a, dtype=dtype), torch.randn(E, a, b, dtype=dtype))
            for a, b in zip(sizes[:-1], sizes[1:])
        ]

        def matmuls(mats=mats):
            for _ in range(I * H):
                for x, w in mats:
                    torch.bmm(x, w)

        mm_seconds = median_time(matmuls, repeats)
        times[precision] = seconds
        out.append(
            [
                precision,
                f"{rows_per_action:,}",
                f"{gflop:.1f}",
                f"{seconds:.2f}",
                f"{gflop / seconds:.1f}",
                f"{gflop / mm_seconds:.1f}",
                f"{100 * mm_seconds / seconds:.0f}%",
            ]
        )
    out.append(["bf16 speed-up", "", "", f"{times['float32'] / times['bfloat16']:.2f}x", "", "", ""])
    return out, times


# ---------------------------------------------------------------------------------------------- iCEM


def pendulum_step(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pendulum-v1's true dynamics, batched: obs `[N, 3]`, model action `[N, 1]` in [-1, 1]."""
    theta, speed = torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]
    torque = 2.0 * action[:, 0].clamp(-1, 1)
    speed = (speed + (15.0 * torch.sin(theta) + 3.0 * torque) * 0.05).clamp(-8, 8)  # 3g/2l = 15, 3/ml² = 3
    theta = theta + speed * 0.05
    nxt = torch.stack([torch.cos(theta), torch.sin(theta), speed], -1)
    return nxt, pendulum_reward(obs, action, nxt)


def mpc_return(planner_name: str, cfg: dict, seed: int) -> float:
    torch.manual_seed(seed)
    planner = PLANNERS.build(planner_name, cfg, action_dim=1)
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=seed)
    total, prev, done = 0.0, None, False
    model = Model(pendulum_step)
    while not done:
        x0, reuse = planner.warm_start(prev, 1, torch.device("cpu"))
        prev = planner.optimize(rollout_objective(model, torch.as_tensor(obs)[None]), x0, reuse)
        obs, reward, terminated, truncated, _ = env.step(2.0 * prev.actions[0, 0].numpy())
        total += float(reward)
        done = terminated or truncated
    return total


def icem_rows(episodes: int) -> list[list]:
    base = {"horizon": 15, "iterations": 3}
    settings = [
        (name, {**base, "population": p, "elites": max(p // 10, 2)})
        for name in ("cem", "icem")
        for p in (200, 50, 25, 12, 6)
    ]
    rows = []
    for name, cfg in settings:
        returns = [mpc_return(name, cfg, seed) for seed in range(episodes)]
        rows.append([name, cfg["population"], cfg["elites"], f"{np.mean(returns):.1f} ± {np.std(returns):.1f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()
    rows, _ = speed_rows(args.repeats)
    icem = icem_rows(args.episodes)
    icem_table = "\n".join(
        ["| planner | population | elites | Pendulum return (true model) |", "|---|---|---|---|"]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in icem]
    )
    result = {
        "description": "PETS planning time per action at the reference settings (CEM 500 × 5 iterations, "
        "horizon 15, 5 members × 3 × 200, 20 particles), against torch's batched matmul at the same shapes.",
        "columns": [
            "precision",
            "model rows / action",
            "GFLOP / action",
            "s / action (median)",
            "planner GFLOP/s",
            "matmul GFLOP/s",
            "planner / matmul",
        ],
        "rows": rows,
        "notes": f"torch threads: {torch.get_num_threads()}. Sensitive to other load: re-run on a quiet machine.\n\n"
        "iCEM population needed to match CEM (MPC on Pendulum-v1 with the true dynamics, horizon 15, "
        f"3 iterations, mean ± std over {args.episodes} episodes):\n\n{icem_table}",
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
