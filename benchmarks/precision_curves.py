"""DreamerV3's learning curves in bfloat16 beside float32 (issue 25): `dreamerv3-cartpole`'s setting
(size1m, CartPole-v1, train ratio 64, one torch thread) trained with `agent.precision=float32` and
`=bfloat16` on the same seeds, and each logged curve compared two ways, averaged over its log lines:
- the precision gap: |bfloat16 − float32| of the same seed, averaged over seeds;
- the seed gap: |seed a − seed b| of the same precision, averaged over pairs and precisions.
bfloat16 follows float32 within noise where its gap is no larger than the seed gap (two seeds of one
precision differ by chance alone).

    python benchmarks/precision_curves.py --out result.json [--steps 10000] [--seeds 0,1] [--jobs 2]
        [--runs bench_runs/precision_curves] [--compile]

`--compile`: the bfloat16 runs also compile (`agent.compile=true`: the RSSM's steps, the two-hot losses, the
frame encoder and decoder), the setting `wm bench dreamer_speed` timed at 2.5 × SheepRL on vectors; the float32
runs stay eager.

Each run trains in `--runs/PRECISION-seedN` and resumes from its checkpoint when interrupted (as `wm bench`
tasks do), so the study can span sittings. Writes the table to --out and the curves beside it (`NAME.png`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from worldmodels.figures import read_metrics  # noqa: E402
from worldmodels.train.suite import behaviour, train_run  # noqa: E402

PRESET = "dreamerv3"
SETTING = ["env.id=CartPole-v1", "train.ratio=64", "train.eval_every=2500", "train.threads=1"]
PRECISIONS = ("float32", "bfloat16")
CURVES = {
    "loss/world_model": "world-model loss",
    "world_model/recon": "reconstruction",
    "world_model/reward": "reward",
    "world_model/kl": "KL",
    "loss/critic": "critic loss",
    "behaviour/entropy": "actor entropy",
    "eval/return": "eval return",
}


def arm(precision: str, compiled: bool) -> str:
    """The name of a precision's runs: `bfloat16-compiled` where `--compile` compiles the bfloat16 runs."""
    return f"{precision}-compiled" if compiled and precision == "bfloat16" else precision


def run(precision: str, seed: int, steps: int, runs: Path, compiled: bool) -> list[dict]:
    """One run's metrics rows (trained, or resumed from its checkpoint, or read when already done);
    `compiled`: a bfloat16 run also compiles."""
    overrides = [*SETTING, f"agent.precision={precision}", f"train.steps={steps}", f"train.seed={seed}"]
    name = arm(precision, compiled)
    if name != precision:
        overrides.append("agent.compile=true")
    folder = runs / f"{name}-seed{seed}"
    done = folder / "done"
    if not done.exists():
        train_run(PRESET, overrides, folder, f"{precision} seed {seed}", behaviour(PRESET, overrides))
        done.write_text("")
    return read_metrics(folder)


def curve(rows: list[dict], key: str) -> dict[int, float]:
    return {r["step"]: r[key] for r in rows if key in r}


def gap(a: dict[int, float], b: dict[int, float]) -> float:
    """Mean |a − b| over the steps both logged."""
    steps = sorted(set(a) & set(b))
    return float(np.mean([abs(a[s] - b[s]) for s in steps])) if steps else float("nan")


def plot(metrics: dict[tuple[str, int], list[dict]], path: Path, compiled: bool) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5), dpi=100)
    for ax, (key, title) in zip(axes.flat, CURVES.items()):
        for (precision, seed), rows in metrics.items():
            points = sorted(curve(rows, key).items())
            if points:
                colour = "tab:blue" if precision == "float32" else "tab:orange"
                ax.plot(
                    *zip(*points),
                    color=colour,
                    ls=("-", "--", ":")[seed % 3],
                    lw=1.1,
                    marker=".",
                    ms=3,
                    label=f"{arm(precision, compiled)} {seed}",
                )
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("environment steps")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", default="bench_runs/precision_curves")
    parser.add_argument("--compile", action="store_true", help="the bfloat16 runs also compile")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = Path(args.runs)
    start = time.perf_counter()
    plans = list(itertools.product(PRECISIONS, seeds))
    with ThreadPoolExecutor(args.jobs) as pool:
        metrics = dict(zip(plans, pool.map(lambda p: run(*p, args.steps, runs, args.compile), plans)))
    rows = []
    for key, title in CURVES.items():
        curves = {plan: curve(m, key) for plan, m in metrics.items()}
        precision_gap = np.mean([gap(curves["float32", s], curves["bfloat16", s]) for s in seeds])
        seed_gap = np.mean(
            [gap(curves[p, a], curves[p, b]) for p in PRECISIONS for a, b in itertools.combinations(seeds, 2)]
        )
        means = [np.mean([np.mean(list(curves[p, s].values())) for s in seeds]) for p in PRECISIONS]
        rows.append([title, f"{means[0]:.3f}", f"{means[1]:.3f}", f"{precision_gap:.3f}", f"{seed_gap:.3f}"])
        print(rows[-1], flush=True)
    out = Path(args.out)
    plot(metrics, out.with_suffix(".png"), args.compile)
    result = {
        "description": f"{PRESET} on CartPole-v1 at train ratio 64, {args.steps} env steps, seeds {seeds}, "
        f"float32 and bfloat16 (agent.precision{'; the bfloat16 runs compiled' if args.compile else ''}); "
        "per curve the mean over its log lines, "
        "the mean |bfloat16 − float32| of a seed, and the mean |seed a − seed b| of a precision.",
        "columns": ["curve", "float32 mean", "bfloat16 mean", "precision gap", "seed gap"],
        "rows": rows,
        "notes": f"torch {torch.__version__}, one torch thread per run, {args.jobs} runs at a time; "
        f"{(time.perf_counter() - start) / 60:.0f} min (the last part, where runs resumed or were read). Speed "
        "is not compared here: the runs shared the machine with other work (`wm bench dreamer_speed` times it).",
    }
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
