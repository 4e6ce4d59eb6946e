"""MCTS speed: simulations per second of `planners.mcts.search` for B = 1, 16, 256, 1024 trees at 50
simulations, pUCT and Gumbel root selection, with the model of `../shared/peers/peer_mcts_mctx.py` (MLPs,
state 32, hidden 64, 4 actions, tanh outputs) on CPU (and CUDA when present). Each batch runs the search
as `compile: true` configures it: one compiled call for the search after the root up to `compile_max_batch`
trees (and the eager loop beside it), the eager loop above; the root's and every simulation's model calls are
timed.

    python benchmarks/mcts_speed.py --out result.json [--batches 1 16 256 1024] [--repeats 20] [--threads 1]
        [--peer PYTHON SCRIPT]

`--peer` runs a peer's timing script (e.g. `--peer $VENV/bin/python ../shared/peers/peer_mcts_mctx.py`) on the
same batches right after ours and adds its simulations/s and the ratio ours / peer. Both sides report the
median of their searches (the peer script times 5, ours `--repeats`), after one warm-up search, on the same
threads (`--threads 1`: both on one; more: the peer with its default threading).

One intra-op thread by default: every op here is small. On this 2-core machine a second thread slowed the
Gumbel search at B = 16 (163k against 231k simulations/s, machine otherwise idle) and sped it at B = 256 only
while the other core was free (489k against 307k; 4x slower when other work shared the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import replace

import torch
from torch import nn

from worldmodels.planners.mcts import MCTSConfig, search

STATE, HIDDEN, ACTIONS = 32, 64, 4
POLICIES = {"puct": "muzero", "gumbel": "gumbel_muzero"}  # ours → the peer script's name


class SmallModel(nn.Module):
    """The peer scripts' model. h: obs → tanh(64) → tanh(state); g: [state, one-hot action] → relu(64) →
    (tanh next state, tanh reward); f: state → relu(64) → (policy logits, tanh value)."""

    def __init__(self):
        super().__init__()
        self.h = nn.Sequential(nn.Linear(STATE, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, STATE), nn.Tanh())
        self.g = nn.Sequential(nn.Linear(STATE + ACTIONS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, STATE + 1))
        self.f = nn.Sequential(nn.Linear(STATE, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, ACTIONS + 1))
        self.eye = nn.Buffer(torch.eye(ACTIONS))

    def predict(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.f(state)
        return out[:, :ACTIONS], torch.tanh(out[:, ACTIONS])

    def root(self, obs: torch.Tensor):
        state = self.h(obs)
        return state, *self.predict(state)

    def recurrent(self, state: torch.Tensor, action: torch.Tensor):
        out = torch.tanh(self.g(torch.cat([state, self.eye[action]], 1)))
        return out[:, :STATE], out[:, STATE], *self.predict(out[:, :STATE])


def measure(model: SmallModel, B: int, device: torch.device, repeats: int, cfg: MCTSConfig) -> tuple[float, float]:
    """Simulations/s (median of `repeats` searches) and the seconds of the first search (compiling, if any)."""
    obs = torch.randn(B, STATE, device=device)

    def once() -> float:
        start = time.perf_counter()
        search(obs, model.root, model.recurrent, cfg, explore=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = once()  # warm-up (compiles)
    return B * cfg.num_simulations / statistics.median(once() for _ in range(repeats)), first


def same_search(model: SmallModel, B: int, device: torch.device, cfg: MCTSConfig) -> bool:
    """Whether `cfg` and the eager loop build the same trees (deterministic search, same visits)."""
    obs = torch.randn(B, STATE, device=device)
    runs = [search(obs, model.root, model.recurrent, c, explore=False) for c in (replace(cfg, compile=False), cfg)]
    return torch.equal(runs[0].visit_counts, runs[1].visit_counts)


def peer_rates(
    python: str, script: str, batches: list[int], simulations: int, threads: int
) -> dict[tuple[str, int], float]:
    """The peer's simulations/s per (policy, B), from the JSON lines its script prints. On one thread when ours
    runs on one (the peer's `--threads 1`), else with its default threading (every core)."""
    cmd = [python, script, "--sims", str(simulations), "--batches", ",".join(map(str, batches))]
    cmd += ["--threads", "1"] if threads == 1 else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rates = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            ours = next(k for k, v in POLICIES.items() if v == row["policy"])
            rates[ours, row["B"]] = row["sims_per_s"]
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (ops here are tiny)")
    parser.add_argument("--peer", nargs=2, metavar=("PYTHON", "SCRIPT"), help="a peer's python and timing script")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows, same = [], []
    load = os.getloadavg()[0]
    for device in devices:
        model = SmallModel().to(device).eval()
        for policy in POLICIES:
            cfg = MCTSConfig(num_simulations=args.simulations, root_selection=policy, compile=True)
            for batch in args.batches:
                compiled = batch <= cfg.compile_max_batch  # above it, `compile: true` keeps the eager loop
                for path_cfg in (cfg, replace(cfg, compile=False)) if compiled else (cfg,):
                    with torch.inference_mode():
                        rate, first = measure(model, batch, device, args.repeats, path_cfg)
                        if path_cfg.compile and compiled:
                            same.append(same_search(model, batch, device, path_cfg))
                    path = "compiled search" if path_cfg.compile and compiled else "eager loop"
                    rows.append([device.type, policy, batch, path, round(rate), round(first, 1)])
                    print(f"{device.type:5s} {policy:6s} B={batch:5d} {path:14s} {rate:12,.0f} sims/s", flush=True)
    columns = ["device", "root", "trees B", "path", "simulations/s", "first search s"]
    peer_note = ""
    if args.peer:
        rates = peer_rates(*args.peer, args.batches, args.simulations, args.threads)
        columns += ["peer simulations/s", "ours / peer"]
        for row in rows:
            peer = rates.get((row[1], row[2])) if row[0] == "cpu" else None
            row += [round(peer), round(row[4] / peer, 2)] if peer else ["", ""]
        peer_note = f" The peer ({os.path.basename(args.peer[1])}) ran right after ours, on the same machine, " + (
            "also on one thread." if args.threads == 1 else "with its default threading."
        )
    result = {
        "description": (
            f"MCTS simulations/s, {args.simulations} simulations, the peer scripts' MLP model (state {STATE}, "
            f"hidden {HIDDEN}, {ACTIONS} actions), pUCT with Dirichlet noise or Gumbel root; median of {args.repeats}"
        ),
        "columns": columns,
        "rows": rows,
        "notes": (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads available, "
            f"torch {torch.__version__} with {torch.get_num_threads()} intra-op threads. `compile: true` runs the "
            f"search after the root as one compiled call (its simulations a while_loop) up to compile_max_batch = "
            f"{cfg.compile_max_batch} trees and the eager loop above; the first search compiles (its seconds "
            f"include the compiler's cache, warm or cold). Compiled and eager searches built the same trees: "
            f"{all(same)}. 1-minute load average {load:.1f} before and {os.getloadavg()[0]:.1f} after, on "
            f"{os.cpu_count()} CPU threads"
            + (": other work shared the machine, so an idle one measures faster." if load > 1 else ".")
            + peer_note
        ),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
