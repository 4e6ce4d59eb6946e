"""Denoiser speed: frames generated per second by each denoiser of the `denoiser` kind at 1, 3 and 10
sampler steps, for a batch of next frames from 4 context frames and actions, on one thread, random weights,
median of a few repeats after a warm-up. Sizes: the `diamond_minatar` U-Net on MinAtar frames, the same
settings as a `dit` (patch 2) and as a `ddpm_unet` (DDIM), and the `diamond_atari` U-Net on 64×64 RGB.

    python benchmarks/denoiser_speed.py --out result.json [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from worldmodels.config import load_config
from worldmodels.registry import DENOISERS
from worldmodels.spaces import ObsSpec

MINATAR, ATARI = ObsSpec((10, 10, 4), "uint8"), ObsSpec((64, 64, 3), "uint8")
ACTIONS = 4
STEPS = (1, 3, 10)
CASES = [  # label, preset whose denoiser config is the base, denoiser name, overrides of it, frames, sampler, batch
    ("edm_unet, diamond_minatar", "diamond_minatar", "edm_unet", {}, MINATAR, "euler", 32),
    (
        "dit (2 x 64, patch 2), minatar",
        "diamond_minatar",
        "dit",
        {"layers": 2, "heads": 4, "dim": 64},
        MINATAR,
        "euler",
        32,
    ),
    ("ddpm_unet, diamond_minatar's U-Net", "diamond_minatar", "ddpm_unet", {}, MINATAR, "ddim", 32),
    ("edm_unet, diamond_atari", "diamond_atari", "edm_unet", {}, ATARI, "euler", 8),
]


def denoiser_config(preset: str, name: str, overrides: dict) -> dict:
    """The preset's denoiser options that `name` takes, with `overrides`."""
    cfg = load_config(preset).agent.cfg.denoiser.cfg
    known = set(DENOISERS.get(name).Config.__dataclass_fields__)
    return {k: v for k, v in vars(cfg).items() if k in known} | overrides


def frames_per_second(denoiser, frames: ObsSpec, sampler: str, batch: int, steps: int, repeats: int) -> float:
    H, W, C = frames.shape
    K = denoiser.cfg.context
    context = torch.rand(batch, K, C, H, W) * 2 - 1
    actions = torch.eye(ACTIONS)[torch.randint(0, ACTIONS, (batch, K))]
    with torch.no_grad():
        denoiser.sample(context, actions, steps, sampler)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            denoiser.sample(context, actions, steps, sampler)
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows = []
    for label, preset, name, overrides, frames, sampler, batch in CASES:
        cfg = denoiser_config(preset, name, overrides)
        denoiser = DENOISERS.build(name, cfg, obs_spec=frames, action_dim=ACTIONS).eval()
        params = sum(p.numel() for p in denoiser.parameters())
        fps = [frames_per_second(denoiser, frames, sampler, batch, s, args.repeats) for s in STEPS]
        rows.append([label, f"{params / 1e6:.2f}M", sampler, batch, *(f"{f:.0f}" for f in fps)])
        print(rows[-1], flush=True)
    result = {
        "description": "Frames generated per second by each denoiser at 1, 3 and 10 sampler steps.",
        "columns": ["denoiser", "parameters", "sampler", "batch", *(f"frames/s at {s} steps" for s in STEPS)],
        "rows": rows,
        "notes": (
            f"torch {torch.__version__}, 1 intra-op thread, torch.no_grad, random weights, context of 4 frames; "
            f"1-minute load average {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPU threads."
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
