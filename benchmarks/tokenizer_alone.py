"""IRIS's tokenizer alone (issue 26): the `iris_minatar` VQ-VAE trained on MinAtar Breakout frames, then
its reconstructions of held-out frames read cell by cell, with L1 (IRIS's loss, whose perceptual term is
left out here) and with MSE (the package's default).

The frames are those of `diamond_stability.py`: episodes of a policy that keeps the paddle under the ball
(5 % random actions), 20k frames to train on, 3k held out. Each tokenizer makes `--updates` updates of 64
frames (Adam, lr 3e-4, the preset's). Every `--every` updates, on the held-out frames: the share of cells
with a channel wrong, the share of each channel's lit cells drawn dark (paddle, ball, trail, brick), the
reconstruction error and the codebook's perplexity (e^entropy of the codes used, of `vocab`).

    python benchmarks/tokenizer_alone.py --out result.json [--updates 6000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from diamond_stability import FRAMES, collect

from worldmodels.config import load_config
from worldmodels.nn.dists import perplexity
from worldmodels.registry import TOKENIZERS

PRESET = "iris_minatar"
CHANNELS = ("paddle", "ball", "trail", "brick")  # MinAtar Breakout's
LOSSES = ("l1", "mse")


@torch.no_grad()
def read(tokenizer, frames: torch.Tensor) -> dict[str, float]:
    """Held-out metrics of `tokenizer` on uint8 `frames` [N, H, W, C] (module docstring)."""
    tokens = tokenizer.encode(frames)
    lit, drawn = frames > 0, tokenizer.decode(tokens) > 127.5
    missed = {f"{name} missed %": 100 * (~drawn[..., c])[lit[..., c]].float().mean().item() for c, name in
              enumerate(CHANNELS)}  # fmt: skip
    return {
        "cells wrong %": 100 * (drawn != lit).any(-1).float().mean().item(),
        **missed,
        "perplexity": perplexity(tokens, tokenizer.vocab).item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 updates on 2k frames")
    args = parser.parse_args()
    updates, every = (40, 20) if args.quick else (args.updates, args.every)
    torch.set_num_threads(1)
    begin = time.perf_counter()
    train = np.concatenate([f for f, _ in collect(2_000 if args.quick else 20_000, seed=0)])
    held_out = torch.as_tensor(np.concatenate([f for f, _ in collect(3_000, seed=10_000)]))
    rows, curves = [], {}
    for loss_name in LOSSES:
        cfg = load_config(PRESET, [f"agent.tokenizer.reconstruction={loss_name}"])
        torch.manual_seed(0)
        tokenizer = TOKENIZERS.build("vq", cfg.agent.cfg.tokenizer.cfg, obs_spec=FRAMES)
        opt = torch.optim.Adam(tokenizer.parameters(), lr=cfg.agent.cfg.tokenizer_lr)
        rng, curves[loss_name] = np.random.default_rng(0), []
        for i in range(1, updates + 1):
            loss, _ = tokenizer.loss(torch.as_tensor(train[rng.integers(len(train), size=64)]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i % every == 0:
                metrics = read(tokenizer.eval(), held_out)
                tokenizer.train()
                curves[loss_name].append({"updates": i, **{k: round(v, 3) for k, v in metrics.items()}})
                print(f"[tokenizer] {loss_name} {curves[loss_name][-1]}", flush=True)
        final = curves[loss_name][-1]
        rows.append([loss_name, updates, *(f"{final[k]:.2f}" for k in list(final)[1:-1]), f"{final['perplexity']:.0f}"])
    tok = load_config(PRESET).agent.cfg.tokenizer.cfg
    result = {
        "description": "IRIS's tokenizer alone: held-out MinAtar Breakout frames, cell by cell, L1 vs MSE.",
        "columns": [
            "reconstruction loss",
            "updates",
            "% cells wrong",
            *(f"% {c} cells missed" for c in CHANNELS),
            f"perplexity (of {tok.vocab})",
        ],  # fmt: skip
        "rows": rows,
        "curves": curves,
        "notes": (
            f"`{PRESET}`'s tokenizer ({tok.vocab} codes, {tok.downsample} halvings: 9 tokens per frame), batches "
            f"of 64 frames from {len(train)} training frames, {len(held_out)} held-out frames; torch "
            f"{torch.__version__}, 1 thread; {(time.perf_counter() - begin) / 60:.0f} min in all; 1-minute load "
            f"average {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPU threads."
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
