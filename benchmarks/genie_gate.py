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
from pathlib import Path

import numpy as np
import torch
from commands import wm

from worldmodels.api import load_agent
from worldmodels.data.episodes import INDEX
from worldmodels.train.controllability import action_agreement, held_out_episodes, psnr, windows

SCRIPTS = ("0,0,0,0,0,0", "1,1,1,1,1,1", "2,2,2,2,2,2")
PROMPTS = 50
"""Held-out first frames each script is played from, for the play check."""
EVAL_SEED = 12345
"""`wm eval`'s default `--seed`: its held-out episodes are played from seeds EVAL_SEED + i."""
QUICK = ["agent.tokenizer_steps=3", "agent.latent_actions_steps=3", "agent.dynamics_steps=3", "train.eval_every=0"]


def wrong(a: torch.Tensor, b: torch.Tensor) -> float:
    """The fraction of pixels with a channel off by more than half its range between frames `a` and `b`."""
    return float(((a.float() - b.float()).abs() > 127.5).any(-1).float().mean())


@torch.no_grad()
def play_check(run: Path, seed: int) -> dict[str, float]:
    """`wm play`'s scripts from the first frames of `PROMPTS` held-out episodes, twice each: how far apart
    different scripts' frames end up (`between`) beside two plays of the same script (`within`: MaskGIT
    samples), and the tokenizer's reconstruction PSNR of the generated frames beside that of real ones (a
    generated frame off the data's distribution reconstructs worse)."""
    loaded = load_agent(run)
    agent = loaded.agent
    held_out = held_out_episodes(agent, loaded.cfg.env, None, PROMPTS, seed)
    prompt = torch.as_tensor(np.stack([e["obs"][:1] for e in held_out]))  # [P, 1, H, W, C]
    torch.manual_seed(seed)
    plays = {}
    for script in SCRIPTS:
        chosen = torch.as_tensor([[int(a) for a in script.split(",")]] * len(prompt))
        plays[script] = [agent.generate(prompt, chosen).round().to(torch.uint8)[:, 1:] for _ in range(2)]
    between = [wrong(plays[a][0], plays[b][0]) for i, a in enumerate(SCRIPTS) for b in SCRIPTS[i + 1 :]]
    within = [wrong(*plays[script]) for script in SCRIPTS]
    generated = torch.cat([plays[script][0] for script in SCRIPTS])
    real = torch.as_tensor(windows(held_out, generated.shape[1], "obs"))

    def psnr_of(clips: torch.Tensor) -> float:
        recon = agent.render(agent.tokenizer.encode(clips))
        return float(psnr(clips.flatten(0, 1), recon.flatten(0, 1)).mean())

    return {
        "between_scripts_wrong": float(np.mean(between)),
        "within_script_wrong": float(np.mean(within)),
        "tokenizer_psnr_generated": psnr_of(generated),
        "tokenizer_psnr_real": psnr_of(real),
    }


def ceiling(run: Path, episodes: int) -> float:
    """The best-map accuracy that the paddle's own movement (left, none, right: what a latent action can see)
    reaches against the true actions on `wm eval`'s held-out transitions: below 1 as MinAtar's sticky actions
    repeat the last action one step in ten and a move into a wall is none."""
    loaded = load_agent(run)
    held_out = held_out_episodes(loaded.agent, loaded.cfg.env, None, episodes, EVAL_SEED)
    clip = loaded.agent.cfg.clip
    paddle = windows(held_out, clip, "obs")[..., -1, :, 0].argmax(-1)  # [N, T]: its column in the bottom row
    moved = np.sign(np.diff(paddle, axis=1)) + 1  # [N, T - 1]: 0 left, 1 none, 2 right
    true = windows(held_out, clip, "action")[:, 1:].argmax(-1)
    return action_agreement(moved.flatten(), true.flatten(), 3, 3)["eval/latent_action_accuracy"]


def one_seed(seed: int, data: Path, run: Path, episodes: int, quick: bool) -> dict:
    """Train (or resume) seed `seed`, evaluate it and play the scripts; the result is cached in the run folder."""
    cached = run / "gate.json"
    if cached.exists():
        result = json.loads(cached.read_text())
        if "play" not in result:  # a seed cached before the play check was measured
            result["play"] = play_check(run, seed)
            cached.write_text(json.dumps(result, indent=1))
        return result
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
    result["play"] = play_check(run, seed)
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
    rows, commands, best = [], [record_line], None
    for seed in args.seeds:
        found = one_seed(seed, data, work / f"seed{seed}", episodes, args.quick)
        best = best if best is not None else ceiling(work / f"seed{seed}", episodes)
        m, play = found["metrics"], found["play"]
        rows.append(
            [
                seed,
                f"{m['eval/tokenizer_psnr']:.1f}",
                f"{m['eval/latent_action_accuracy']:.2f} ({m['eval/majority_accuracy']:.2f})",
                f"{m['eval/latent_action_nmi']:.2f}",
                f"{m['eval/delta_psnr']:.2f}",
                f"{m['eval/psnr_inferred_actions']:.1f} / {m['eval/psnr_random_actions']:.1f}",
                f"{100 * play['between_scripts_wrong']:.1f} / {100 * play['within_script_wrong']:.1f}",
                f"{play['tokenizer_psnr_generated']:.1f} / {play['tokenizer_psnr_real']:.1f}",
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
                "play: % cells apart, between scripts / within one",
                "play: tokenizer PSNR generated / real",
                "train wall s",
            ],
            "rows": rows,
            "notes": f"{episodes} held-out random-policy episodes per seed; the latent→true accuracy's ceiling on "
            f"them (the paddle's own movement as the latent action: sticky actions and the walls) is {best:.2f}; "
            f"play GIFs in each run folder "
            f"({', '.join(SCRIPTS)}); the play check plays each script twice from {PROMPTS} held-out first "
            "frames: cells apart between scripts' frames beside two plays of one script, and the tokenizer's "
            "reconstruction PSNR of the generated frames beside real ones. Commands: " + " ; ".join(commands),
        }
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
