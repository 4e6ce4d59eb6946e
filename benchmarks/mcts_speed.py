"""MCTS speed: simulations per second of `planners.mcts.search` for B = 1, 16, 256, 1024 trees at 50
simulations, with a small MLP model (state 32, hidden 64, 4 actions), on CPU (and CUDA when present).

    python benchmarks/mcts_speed.py --out result.json [--batches 1 16 256 1024] [--repeats 5] [--threads 1]

One intra-op thread by default: every op here is small, and a second thread only adds synchronisation
(on this 2-core machine, 2 threads measured 4x slower at B = 256 while other work shared the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from torch import nn

from worldmodels.planners.mcts import MCTSConfig, search

STATE, HIDDEN, ACTIONS, OBS = 32, 64, 4, 8


class SmallModel(nn.Module):
    """h: obs → state, g: (state, action) → (state, reward), f: state → (logits, value); two-layer MLPs."""

    def __init__(self):
        super().__init__()

        def mlp(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(i, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, o))

        self.h, self.g, self.f = mlp(OBS, STATE), mlp(STATE + ACTIONS, STATE + 1), mlp(STATE, ACTIONS + 1)
        self.eye = nn.Buffer(torch.eye(ACTIONS))

    def root(self, obs: torch.Tensor):
        s = self.h(obs)
        out = self.f(s)
        return s, out[:, :ACTIONS], out[:, ACTIONS]

    def recurrent(self, state: torch.Tensor, action: torch.Tensor):
        out = self.g(torch.cat([state, self.eye[action]], 1))
        s, reward = out[:, :STATE], out[:, STATE]
        pred = self.f(s)
        return s, reward, pred[:, :ACTIONS], pred[:, ACTIONS]


def measure(model: SmallModel, B: int, device: torch.device, repeats: int, cfg: MCTSConfig) -> float:
    obs = torch.randn(B, OBS, device=device)

    def once() -> None:
        search(obs, model.root, model.recurrent, cfg, explore=True)

    once()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return B * cfg.num_simulations / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (ops here are tiny)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = MCTSConfig(num_simulations=args.simulations)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        model = SmallModel().to(device).eval()
        for B in args.batches:
            with torch.inference_mode():
                rate = measure(model, B, device, args.repeats, cfg)
            rows.append([device.type, B, args.simulations, round(rate), round(B / rate * args.simulations * 1e3, 2)])
            print(f"{device.type:5s} B={B:5d}  {rate:12,.0f} simulations/s", flush=True)
    result = {
        "description": (
            f"MCTS simulations/s, {args.simulations} simulations, MLP model (state {STATE}, hidden {HIDDEN}, "
            f"{ACTIONS} actions), pUCT with Dirichlet noise; best of {args.repeats}"
        ),
        "columns": ["device", "trees B", "simulations", "simulations/s", "ms per search"],
        "rows": rows,
        "notes": (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads available, "
            f"torch {torch.__version__} with {torch.get_num_threads()} intra-op threads."
        ),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
