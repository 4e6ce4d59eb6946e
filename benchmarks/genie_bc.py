"""Genie's behavioural-cloning case study (issue 22) on MinAtar Breakout: a Genie model learnt from random-play
video without actions (`wm bench genie_gate`'s seed 0) labels an expert's video with its latent actions, a
policy over latent actions is cloned from them, and 5 labelled expert episodes map latent to real actions;
the policy then plays 100 episodes, beside the same network cloned on those labelled steps' real actions
alone, cloned on the expert video's real actions (the oracle), random actions and the expert itself.

    python benchmarks/genie_bc.py --out result.json [--genie RUN] [--expert RUN] [--work DIR]

The expert is any trained run that acts on MinAtar frames (default: `wm bench diamond-minatar-breakout`'s).
The commands it runs, printed and stored with the result:

    wm record minatar:Breakout env.obs=pixels --policy EXPERT --episodes 500 --out VIDEO
    wm record minatar:Breakout env.obs=pixels --policy EXPERT --episodes 5 --seed 1 --out LABELLED
    wm bc GENIE --video VIDEO --labelled LABELLED --updates 3000 --episodes 100

The video is recorded with its actions so that the oracle can read them; `wm bc` gives the latent policy
its frames alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from commands import wm

from worldmodels.data.episodes import INDEX


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--genie", default="bench_runs/genie_gate/seed0", help="a trained genie run")
    parser.add_argument("--expert", default="bench_runs/diamond-minatar-breakout/seed0", help="the demonstrator")
    parser.add_argument("--work", default="bench_runs/genie_bc", help="the recorded expert data (kept)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--updates", type=int, default=3000)
    args = parser.parse_args()
    for run in (args.genie, args.expert):
        if not (Path(run) / "config.yaml").exists():
            sys.exit(f"genie_bc: '{run}' is not a run folder; train it first (see this script's docstring)")
    work = Path(args.work)
    video, labelled = work / "video", work / "labelled"
    record = ["record", "minatar:Breakout", "env.obs=pixels", "--policy", args.expert]
    commands = []
    for out, more in ((video, ["--episodes", "500"]), (labelled, ["--episodes", "5", "--seed", "1"])):
        if not (out / INDEX).exists():
            wm(*record, *more, "--out", str(out))
        commands.append(shlex.join(["wm", *record, *more, "--out", str(out)]))  # also when recorded before
    line, wall, out = wm(
        "bc", args.genie, "--video", str(video), "--labelled", str(labelled),
        "--updates", str(args.updates), "--episodes", str(args.episodes),
    )  # fmt: skip
    commands.append(line)
    found = json.loads(out.strip().splitlines()[-1])
    rows = [[name, f"{ret:.2f} ± {found['returns_std'][name]:.2f}"] for name, ret in found["returns"].items()]
    rows.append(["the expert (its video's episodes)", f"{found['expert_return']:.2f}"])
    result = {
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "columns": ["policy", f"return over {args.episodes} episodes"],
        "rows": rows,
        "notes": f"expert video {found['video_steps']} steps, labelled {found['labelled_steps']} steps; latent → real "
        f"action map {found['action_map']}; cloning and evaluation {wall:.0f} s. Commands: " + " ; ".join(commands),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
