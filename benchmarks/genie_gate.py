"""Genie's CPU gate (issue 22) on MinAtar Breakout video recorded without actions: per seed, `genie_minatar`
trained on the frames alone, then ΔtPSNR at t = 4, the tokenizer's PSNR and the latent-to-true action measures
on 200 held-out random-policy episodes (their true actions seen by the metrics only), and `wm play` with three
latent-action scripts from one prompt. Gate: tokenizer >= 30 dB, best-map accuracy >= 0.8, ΔtPSNR >= 1.0 dB
and above zero on every seed.

    python benchmarks/genie_gate.py --out result.json [--seeds 0 1 2] [--work DIR] [--quick]

The commands it runs are the gate's (`configs/genie_minatar.yaml`), printed and stored with the result:

    wm record minatar:Breakout env.obs=pixels --no-actions --episodes 5000 --workers 2 --out DATA
    wm train genie_minatar train.offline=DATA train.seed=S --run-dir RUNS/seedS
    wm eval RUNS/seedS --delta-psnr --episodes 200
    wm play RUNS/seedS --actions 0,0,0,0,0,0   (and 1,1,... and 2,2,...)

Each seed's result is kept in its run folder and `--out` is rewritten after every seed, so a run stopped
between seeds continues where it stopped (an unfinished training run resumes from its checkpoint).
`--quick` is a smoke run of the same code (a small dataset, a few updates, 10 held-out episodes).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from worldmodels.data.episodes import INDEX

SCRIPTS = ("0,0,0,0,0,0", "1,1,1,1,1,1", "2,2,2,2,2,2")
QUICK = ["agent.tokenizer_steps=3", "agent.dynamics_steps=3", "train.eval_every=0"]


def wm(*args: str) -> tuple[str, float, str]:
    """Run `wm ARGS` in a process of its own: its command line, wall-clock seconds and standard output."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "worldmodels.cli", *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return shlex.join(["wm", *args]), time.perf_counter() - start, done.stdout


def one_seed(seed: int, data: Path, run: Path, episodes: int, quick: bool) -> dict:
    """Train (or resume) seed `seed`, evaluate it and play the scripts; the result is cached in the run folder."""
    cached = run / "gate.json"
    if cached.exists():
        return json.loads(cached.read_text())
    if (run / "checkpoints").exists():
        train, wall, _ = wm("train", "--resume", str(run))
    else:
        train, wall, _ = wm(
            "train", "genie_minatar", f"train.offline={data}", f"train.seed={seed}", *(QUICK if quick else []),
            "--run-dir", str(run),
        )  # fmt: skip
    evaluate, _, out = wm("eval", str(run), "--delta-psnr", "--episodes", str(episodes))
    metrics = json.loads(out.strip().splitlines()[-1])
    gifs = [wm("play", str(run), "--actions", script)[2].split("play: ")[-1].strip() for script in SCRIPTS]
    result = {"seed": seed, "train_s": round(wall), "metrics": metrics, "gifs": gifs, "commands": [train, evaluate]}
    cached.write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default="bench_runs/genie_gate", help="dataset and runs (kept to continue)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    data = work / "data"
    recorded, episodes = (30, 10) if args.quick else (5000, 200)
    record = ["record", "minatar:Breakout", "env.obs=pixels", "--no-actions", "--episodes", str(recorded)]
    record_line = shlex.join(["wm", *record, "--workers", "2", "--out", "DATA"])
    if not (data / INDEX).exists():
        wm(*record, "--workers", "2", "--out", str(data))
    rows, commands = [], [record_line]
    for seed in args.seeds:
        found = one_seed(seed, data, work / f"seed{seed}", episodes, args.quick)
        m = found["metrics"]
        rows.append(
            [
                seed,
                f"{m['eval/tokenizer_psnr']:.1f}",
                f"{m['eval/latent_action_accuracy']:.2f} ({m['eval/majority_accuracy']:.2f})",
                f"{m['eval/latent_action_nmi']:.2f}",
                f"{m['eval/delta_psnr']:.2f}",
                f"{m['eval/psnr_inferred_actions']:.1f} / {m['eval/psnr_random_actions']:.1f}",
                found["train_s"],
            ]
        )
        commands += found["commands"]
        result = {
            "description": __doc__.split("\n\n")[0].replace("\n", " "),
            "columns": [
                "seed",
                "tokenizer PSNR (dB)",
                "latent→true accuracy (majority)",
                "NMI",
                "ΔtPSNR t=4 (dB)",
                "PSNR inferred / random actions",
                "train wall s",
            ],
            "rows": rows,
            "notes": f"{episodes} held-out random-policy episodes per seed; play GIFs in each run folder "
            f"({', '.join(SCRIPTS)}). Commands: " + " ; ".join(commands),
        }
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
