"""MCTS speed: simulations per second of `planners.mcts.search` for B = 1, 16, 256, 1024 trees at 50
simulations, with a small MLP model (state 32, hidden 64, 4 actions), on CPU (and CUDA when present).
Each batch runs the eager loop (`compile: false`) and, up to `compile_max_batch` trees, the compiled
fixed-shape simulation (`compile: true`); model calls are part of every simulation timed.

    python benchmarks/mcts_speed.py --out result.json [--batches 1 16 256 1024] [--repeats 20] [--threads 1]

One intra-op thread by default: every op here is small, and a second thread only adds synchronisation
(on this 2-core machine, 2 threads measured 4x slower at B = 256 while other work shared the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace

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


def measure(model: SmallModel, B: int, device: torch.device, repeats: int, cfg: MCTSConfig) -> tuple[float, float]:
    """Simulations/s (best of `repeats` searches) and the seconds of the first search (compiling, if any)."""
    obs = torch.randn(B, OBS, device=device)

    def once() -> None:
        search(obs, model.root, model.recurrent, cfg, explore=True)

    start = time.perf_counter()
    once()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return B * cfg.num_simulations / min(times), first


def same_search(model: SmallModel, B: int, device: torch.device, cfg: MCTSConfig) -> bool:
    """Whether the compiled and the eager search build the same trees (deterministic search, same visits)."""
    obs = torch.randn(B, OBS, device=device)
    loop, fixed = (replace(cfg, compile=c) for c in (False, True))
    runs = [search(obs, model.root, model.recurrent, c, explore=False) for c in (loop, fixed)]
    return torch.equal(runs[0].visit_counts, runs[1].visit_counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (ops here are tiny)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = MCTSConfig(num_simulations=args.simulations)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows, same = [], []
    load = os.getloadavg()[0]
    for device in devices:
        model = SmallModel().to(device).eval()
        for batch in args.batches:
            for compiled in (False, True) if batch <= cfg.compile_max_batch else (False,):
                with torch.inference_mode():
                    rate, first = measure(model, batch, device, args.repeats, replace(cfg, compile=compiled))
                    if compiled:
                        same.append(same_search(model, batch, device, cfg))
                path = "compiled graph" if compiled else "eager loop"
                ms = round(batch / rate * args.simulations * 1e3, 2)
                rows.append([device.type, batch, path, args.simulations, round(rate), ms, round(first, 1)])
                print(f"{device.type:5s} B={batch:5d} {path:14s} {rate:12,.0f} simulations/s", flush=True)
    result = {
        "description": (
            f"MCTS simulations/s, {args.simulations} simulations, MLP model (state {STATE}, hidden {HIDDEN}, "
            f"{ACTIONS} actions), pUCT with Dirichlet noise; best of {args.repeats}"
        ),
        "columns": ["device", "trees B", "path", "simulations", "simulations/s", "ms per search", "first search s"],
        "rows": rows,
        "notes": (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads available, "
            f"torch {torch.__version__} with {torch.get_num_threads()} intra-op threads. `compile: true` runs the "
            f"compiled graph up to compile_max_batch = {cfg.compile_max_batch} trees and the eager loop above; "
            f"the first search compiles (its seconds include the compiler's cache, warm or cold). Compiled and "
            f"eager searches built the same trees: {all(same)}. 1-minute load average {load:.1f} before and "
            f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPU threads"
            + (": other work shared the machine, so an idle one measures faster." if load > 1 else ".")
        ),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
