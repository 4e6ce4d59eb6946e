"""Seconds per DreamerV3 update (world model + actor + critic) at batch 16×64, for the official size1m
and size12m models, on vector (CartPole-like, 4 dims) and 64×64×3 pixel inputs, and for size1m with
the RSSM's steps compiled (`agent.compile=true`; the compile itself happens in the warm-up) or with
imagined rollouts from 256 of the 1,024 posterior states (`agent.imagination_starts=256`).
Run with `wm bench dreamer_speed` or `python benchmarks/dreamer_speed.py --out result.json`.
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

CASES = [  # preset, inputs, overrides
    ("dreamerv3", "vector", ()),
    ("dreamerv3", "vector", ("agent.compile=true",)),
    ("dreamerv3", "vector", ("agent.imagination_starts=256",)),
    ("dreamerv3", "pixels", ()),
    ("dreamerv3", "pixels", ("agent.compile=true",)),
    ("dreamerv3", "pixels", ("agent.imagination_starts=256",)),
    ("dreamerv3_size12m", "vector", ()),
    ("dreamerv3_size12m", "pixels", ()),
]


def batch(obs: ObsSpec, B: int = 16, T: int = 64) -> dict[str, torch.Tensor]:
    if obs.is_image:
        frames = torch.randint(0, 256, (B, T, *obs.shape), dtype=torch.uint8)
    else:
        frames = torch.randn(B, T, *obs.shape)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": frames,
        "action": torch.nn.functional.one_hot(torch.randint(2, (B, T)), 2).float(),
        "reward": torch.randn(B, T),
        "is_first": is_first,
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }


def measure(preset: str, inputs: str, overrides: tuple[str, ...], repeats: int, device: str) -> float:
    obs = ObsSpec((64, 64, 3), "uint8") if inputs == "pixels" else ObsSpec((4,), "float32")
    cfg = load_config(preset, [f"device={device}", "agent.report_every=0", *overrides])
    agent = build_agent(cfg, obs, ActSpec(True, 2))
    data = {k: v.to(agent.device) for k, v in batch(obs).items()}
    for _ in range(2):  # warm up (and compile)
        agent.update(data)
    times = []
    for _ in range(repeats):
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        agent.update(data)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    for preset, inputs, overrides in CASES:
        seconds = measure(preset, inputs, overrides, args.repeats, args.device)
        rows.append([preset, inputs, " ".join(overrides) or "–", args.device, f"{seconds:.2f}"])
        print(rows[-1], flush=True)
    result = {
        "description": "Median seconds per DreamerV3 update (world model + actor + critic), batch 16×64, "
        "imagination horizon 15 from all 1024 posterior states.",
        "columns": ["preset", "inputs", "overrides", "device", "seconds per update"],
        "rows": rows,
        "notes": f"torch {torch.__version__}, {torch.get_num_threads()} threads.",
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
