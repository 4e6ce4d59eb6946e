"""Goal reaching from 64×64 frames (issue 23's gate), on `wm/TwoRoom-v0` or (`--env pointmaze`) gymnasium-robotics
PointMaze: the JEPA world model (`jepa_wm_tworoom`, `jepa_wm_pointmaze`) beside the same agent with a
reconstruction-based state (`vae`, same encoder and embedding size) at equal updates, both learnt offline from
one dataset of held random actions and planning with CEM (300 samples × 10 iterations, horizon 8, replanning
every 4) to goal frames 4 and 8 steps ahead (`goal_success`, 300 held-out pairs; random actions beside them).
Gate: jepa success >= 85 % at 4 steps and >= 60 % at 8 on TwoRoom; PointMaze's is reported (DINO-WM: 98 %).

    python benchmarks/jepa_wm_goals.py --out result.json [--env tworoom|pointmaze] [--quick] [--device cpu|cuda]

The commands it runs are the gate's, printed and stored with the result (TwoRoom's; PointMaze's name its
env and preset instead):

    wm record wm/TwoRoom-v0 env.obs=pixels --policy held --episodes 200 --seed 0 --out DATA
    wm train jepa_wm_tworoom train.offline=DATA train.steps=5000 --run-dir RUNS/jepa
    wm train jepa_wm_tworoom train.offline=DATA train.steps=5000 agent.representation.name=vae \
        agent.representation.embed_dim=32 agent.representation.encoder.image.depth=16 \
        agent.representation.decoder.image.depth=16 --run-dir RUNS/vae

`--quick` is a smoke run of the same code (a small dataset, 20 updates, 10 pairs).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from commands import wm

from worldmodels.config import EnvConfig
from worldmodels.envs import make_env
from worldmodels.train.goals import GoalTask, step_unit

ENVS = {"tworoom": ("wm/TwoRoom-v0", "jepa_wm_tworoom"), "pointmaze": ("maze:PointMaze_UMaze-v3", "jepa_wm_pointmaze")}
"""--env: the environment id and the preset trained on it."""
MODELS = {
    "jepa (VICReg)": [],
    "vae (reconstruction)": [
        "agent.representation.name=vae",
        "agent.representation.embed_dim=32",
        "agent.representation.encoder.image.depth=16",
        "agent.representation.decoder.image.depth=16",
    ],
}
OFFSETS = (4, 8)


def final_eval(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in reversed(rows) if "eval/goal_success_k4" in r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--env", choices=ENVS, default="tworoom")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--work", help="folder for the dataset and runs (default: a temporary one)")
    args = parser.parse_args()
    env_id, preset = ENVS[args.env]
    work = Path(args.work or tempfile.mkdtemp(prefix=f"jepa_wm_goals_{args.env}_"))
    episodes, updates, pairs = (10, 20, 10) if args.quick else (200, args.updates, 300)
    data = work / "data"
    record = ["record", env_id, "env.obs=pixels", "--policy", "held", "--episodes", str(episodes)]
    command, recorded, _ = wm(*record, "--seed", "0", "--out", str(data))
    commands = [command]
    rows = []
    for label, overrides in MODELS.items():
        run_dir = work / label.split()[0]
        train = [preset, f"train.offline={data}", f"train.steps={updates}", *overrides]
        if args.quick:
            train.append(f"train.eval_episodes={pairs}")
        command, wall, _ = wm("train", *train, f"device={args.device}", "--run-dir", str(run_dir))
        commands.append(command)
        found = final_eval(run_dir)
        rows.append(
            [label, updates]
            + [f"{100 * found[f'eval/{who}_success_k{k}']:.1f}" for k in OFFSETS for who in ("goal", "random")]
            + [round(wall)]
        )
    env_cfg, task = EnvConfig(id=env_id), GoalTask()
    unit = step_unit(make_env(env_cfg), env_cfg)
    result = {
        "description": f"{env_id}: " + __doc__.split("\n\n")[0].replace("\n", " "),
        "columns": ["state", "updates"]
        + [f"{who} success k={k} (%)" for k in OFFSETS for who in ("planned", "random")]
        + ["wall s (train + eval)"],
        "rows": rows,
        "notes": (
            f"{pairs} held-out (start, goal) pairs per k: goals k steps of held random actions ahead (each action "
            f"kept 4 steps), at least {task.min_distance * unit:g} from the start; success: the environment's "
            f"position within {task.tolerance * unit:g} of the goal's after k steps ({task.min_distance:g} and "
            f"{task.tolerance:g} steps of {unit:g}, the farthest move of a step). Recording took {recorded:.0f} s. "
            f"Device {args.device}. Commands: " + " ; ".join(commands)
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
