"""Seconds per PETS action (one plan) for a preset at a task's shapes, one torch thread, untrained model.

    python benchmarks/pets_act_speed.py [--obs 4] [--actions 2] [--continuous] [--profile] [--repeats 8] [KEY=VALUE ...]

Default: the `pets` preset (learned reward and continue) at CartPole-v1's shapes (4 state dims, 2 actions).
Prints the median over `--repeats` actions (each warm-started from the same plan) after one warm-up, and,
with `--profile`, the operators that took the time in one more action.
"""

from __future__ import annotations

import argparse

import torch
from planner_speed import median_time

from worldmodels.config import load_config
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="pets")
    parser.add_argument("--obs", type=int, default=4, help="state dims")
    parser.add_argument("--actions", type=int, default=2, help="actions (discrete) or action dims")
    parser.add_argument("--continuous", action="store_true")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = load_config(args.preset, args.overrides)
    agent = build_agent(cfg, ObsSpec((args.obs,), "float32"), ActSpec(not args.continuous, args.actions))
    obs, first = torch.randn(1, args.obs), torch.ones(1, dtype=torch.bool)
    state = agent.act(obs, first, None, True).state  # a plan to warm-start from
    seconds = median_time(lambda: agent.act(obs, ~first, state, True), args.repeats)
    overrides = " ".join(args.overrides)
    print(f"{args.preset} {overrides}: {seconds:.3f} s per action (median of {args.repeats}), one thread")
    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            agent.act(obs, ~first, state, True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
