"""Genie's latent action model trained alone on the gate's frames (issue 22): best-map accuracy of its codes
against the true actions of held-out random-policy episodes every `--every` updates, to see when (and
whether) action codes form without training the tokenizer and dynamics first (0.2 s an update on a core).

    python benchmarks/lam_alone.py --data bench_runs/genie_gate/data --seed 0 [--shift 1] [--lr 1e-3]
        [--motion | --token] --out R.json

`--shift` is `vq_lam.shift` (0: the decoder reconstructs the clip unmoved). `--motion` and `--token` are
trials not in the package: the encoder reads each patch beside its change since the previous frame, or the
code is read from a learnt token added to each frame (as open Genie re-implementations do) rather than
the mean over its patches (no earlier: 2,750 and 3,500 updates on seeds 0 and 2). Sizes and the default
learning rate are `configs/genie_minatar.yaml`'s; 4,000 of its 49,256 recorded steps' episodes are used for training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from worldmodels.config import EnvConfig, load_config
from worldmodels.data.episodes import load_dataset
from worldmodels.latent_actions.vq_lam import VQLatentActions
from worldmodels.nn.st_transformer import to_patches
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.controllability import action_agreement, held_out_episodes, windows


class MotionLatentActions(VQLatentActions):
    """`vq_lam` whose encoder reads each patch and its change since the previous frame (the first: none)."""

    def __init__(self, cfg: VQLatentActions.Config, obs_spec: ObsSpec):
        super().__init__(cfg, obs_spec)
        self.encoder_in = torch.nn.Linear(2 * self.encoder_in.in_features, cfg.dim)

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        x = to_patches(clips, self.cfg.patch)
        change = x - torch.cat([x[:, :1], x[:, :-1]], 1)
        x = self.encoder(self.encoder_in(torch.cat([x, change], -1)) + self.encoder_places)
        return self.to_code(x[:, 1:].mean(2))


class TokenLatentActions(VQLatentActions):
    """`vq_lam` whose action is read from a learnt token added to each frame's places, not their mean."""

    def __init__(self, cfg: VQLatentActions.Config, obs_spec: ObsSpec):
        super().__init__(cfg, obs_spec)
        self.action_token = torch.nn.Parameter(torch.randn(cfg.dim) * 0.02)

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.encoder_in(to_patches(clips, self.cfg.patch)) + self.encoder_places
        x = torch.cat([self.action_token.expand(*x.shape[:2], 1, -1), x], 2)
        return self.to_code(self.encoder(x)[:, 1:, 0])


class _Actions:
    act_spec = ActSpec(True, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--shift", type=int, default=1)
    parser.add_argument("--motion", action="store_true")
    parser.add_argument("--token", action="store_true")
    parser.add_argument("--lr", type=float, default=None, help="default: genie_minatar's latent_actions_lr")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    agent = load_config("genie_minatar").agent.cfg
    cfg = VQLatentActions.Config(**{**vars(agent.latent_actions.cfg), "shift": args.shift})
    spec = ObsSpec((10, 10, 4), "uint8")
    lam = (MotionLatentActions if args.motion else TokenLatentActions if args.token else VQLatentActions)(cfg, spec)
    optimiser = torch.optim.Adam(lam.parameters(), args.lr or agent.latent_actions_lr, eps=1e-8)
    clip = agent.clip
    train = [e["obs"] for e in load_dataset(Path(args.data))[1][:4000] if len(e["obs"]) >= clip]
    held_out = held_out_episodes(_Actions, EnvConfig(id="minatar:Breakout", obs="pixels"), None, 200, 50_000)
    clips = torch.as_tensor(windows(held_out, clip, "obs"))
    true = windows(held_out, clip, "action")[:, 1:].argmax(-1).flatten()
    rng, start, log = np.random.default_rng(args.seed), time.perf_counter(), []
    for update in range(1, args.steps + 1):
        batch = [e[s : s + clip] for e in (train[i] for i in rng.integers(len(train), size=32))
                 for s in [rng.integers(len(e) - clip + 1)]]  # fmt: skip
        loss, metrics = lam.loss(torch.as_tensor(np.stack(batch)))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lam.parameters(), 1.0)
        optimiser.step()
        if update % args.every == 0:
            with torch.no_grad():
                latent = torch.cat([lam.infer(c) for c in clips.split(256)]).flatten().numpy()
            found = action_agreement(latent, true, cfg.actions, 3)
            row = {"update": update, "seconds": round(time.perf_counter() - start),
                   "accuracy": round(found["eval/latent_action_accuracy"], 3),
                   "reconstruction": float(metrics["latent_actions/reconstruction"])}  # fmt: skip
            print(json.dumps(row), flush=True)
            log.append(row)
            Path(args.out).write_text(json.dumps({"args": vars(args), "log": log}, indent=1))


if __name__ == "__main__":
    main()
