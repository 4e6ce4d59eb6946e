"""Milliseconds per TD-MPC2 update (model + policy prior, batch 256 sub-trajectories of H + 1 = 4 steps) and
per planned action (MPPI with the policy prior, one environment), for the CPU preset `tdmpc2` and the paper's
1M model `tdmpc2_size1m`, on cartpole-sized inputs (5 state dims, 1 action dim) and, for `tdmpc2_pixels`,
64×64×3 frames. Run with `wm bench tdmpc2_speed` or `python benchmarks/tdmpc2_speed.py --out result.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from worldmodels.config import load_config
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent

CASES = [("tdmpc2", "vector"), ("tdmpc2_size1m", "vector"), ("tdmpc2_pixels", "pixels")]


def median_ms(fn, repeats: int, device: torch.device) -> float:
    for _ in range(2):  # warm up
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def measure(preset: str, inputs: str, repeats: int, device: str) -> tuple[int, float, float]:
    obs = ObsSpec((64, 64, 3), "uint8") if inputs == "pixels" else ObsSpec((5,), "float32")
    cfg = load_config(preset, [f"device={device}"])
    agent = build_agent(cfg, obs, ActSpec(False, 1))
    dev = agent.device
    B, T = cfg.train.batch_size, cfg.train.seq_len

    def frames(*shape: int) -> torch.Tensor:
        if obs.is_image:
            return torch.randint(0, 256, (*shape, *obs.shape), dtype=torch.uint8, device=dev)
        return torch.randn(*shape, *obs.shape, device=dev)

    batch = {
        "obs": frames(B, T),
        "action": torch.rand(B, T, 1, device=dev) * 2 - 1,
        "reward": torch.rand(B, T, device=dev),
        "is_first": torch.zeros(B, T, dtype=torch.bool, device=dev),
        "is_terminal": torch.zeros(B, T, dtype=torch.bool, device=dev),
    }
    update = median_ms(lambda: agent.update(batch), repeats, dev)
    state = {"centre": torch.zeros(1, cfg.agent.cfg.horizon, 1, device=dev)}
    one, first = frames(1), torch.zeros(1, dtype=torch.bool, device=dev)
    act = median_ms(lambda: agent.act(one, first, state, explore=True), repeats, dev)
    return sum(p.numel() for p in agent.parameters() if p.requires_grad), update, act


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the training presets use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for preset, inputs in CASES:
        params, update, act = measure(preset, inputs, args.repeats, args.device)
        rows.append([preset, inputs, f"{params / 1e6:.2f}M", args.device, f"{update:.0f}", f"{act:.0f}"])
        print(rows[-1], flush=True)
    result = {
        "description": "Median milliseconds per TD-MPC2 update (batch 256 × 4 steps) and per planned action "
        "(MPPI with policy prior, 1 environment) at each preset's own planner settings.",
        "columns": ["preset", "inputs", "parameters", "device", "ms per update", "ms per action"],
        "rows": rows,
        "notes": f"torch {torch.__version__}, {torch.get_num_threads()} threads.",
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
