"""Data-parallel scaling of one agent: env steps/s and updates/s at N = 1 and 2 ranks (gloo, this CPU),
and at N = 1 on a GPU (NCCL) when there is one, each a short `wm train ... --nproc N` run whose rates are
read from its `metrics.jsonl` after the prefill.

With the same global batch, N ranks make the updates of one rank, each on 1/N of the batch, and collect
N times the env steps per update round; whether that is faster depends on spare cores: on a machine
with 2 cores shared with other work, 2 ranks mostly take turns.
Run with `wm bench scaling` or `python benchmarks/scaling.py --out result.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

PRESET = "dreamerv3"
OVERRIDES = [
    "env.id=CartPole-v1",
    "train.ratio=64",
    "train.batch_size=16",
    "train.seq_len=64",
    "train.prefill=1000",
    "train.log_every=250",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.checkpoint_every=0",
    "train.threads=1",
]


def measure(nproc: int, device: str, steps: int, folder: Path) -> tuple[float, float]:
    """Median env steps/s and updates/s over the log lines after the prefill of one short run."""
    run_dir = folder / f"n{nproc}-{device}"
    command = [sys.executable, "-m", "worldmodels.cli", "train", PRESET, *OVERRIDES, f"train.steps={steps}"]
    command += [f"device={device}", "--run-dir", str(run_dir), "--nproc", str(nproc)]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "perf/updates_per_s" in r and r["step"] > 1000 + 250]  # windows past the prefill

    def median(key: str) -> float:
        values = sorted(r[key] for r in rows)
        return values[len(values) // 2]

    return median("perf/steps_per_s"), median("perf/updates_per_s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=3000, help="env steps of every run (of all ranks)")
    args = parser.parse_args()
    cases = [(1, "cpu", "gloo"), (2, "cpu", "gloo")]
    if torch.cuda.is_available():
        cases.append((1, "cuda", "nccl"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for nproc, device, backend in cases:
            steps_per_s, updates_per_s = measure(nproc, device, args.steps, Path(folder))
            rows.append([nproc, backend, device, f"{steps_per_s:.0f}", f"{updates_per_s:.2f}"])
            print(rows[-1], flush=True)
    result = {
        "description": f"{PRESET} on CartPole-v1, global batch 16×64, train.ratio=64, {args.steps} env steps "
        "per run; medians of the log windows after the prefill.",
        "columns": ["ranks", "backend", "device", "env steps/s", "updates/s"],
        "rows": rows,
        "notes": f"torch {torch.__version__}; {os.cpu_count()} CPU cores seen; one torch thread per rank. "
        "On a machine without spare cores the ranks take turns, so 2 ranks need not be faster.",
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
