"""Representation probe on `wm/TwoRoom-v0`: how much of the agent's position each representation learner's
frozen embedding holds, learnt from 64×64 frames alone.

Random-walk episodes (uniform actions, uniform free starts) are recorded; each learner (`vae`,
`contrastive`, `jepa` with VICReg and with SIGReg, and the jepa network untrained: the floor) trains for the
same number of updates on the same kind of windows, with the same CNN encoder and embedding size, on one
thread. A linear probe (least squares, with a bias) from the frozen embedding to the true (x, y) is fitted
on frames of the training episodes and scored on every frame of held-out episodes by the correlation of
predicted with true coordinates (the mean over x and y). For jepa also the predictor's open-loop error over
8 steps from held-out frames, with the true actions and with the actions of other windows, relative to the
variance of the embeddings (1: no better than predicting their mean).

    python benchmarks/representation_probe.py --out result.json [--quick]

The full run takes about 25 minutes of one CPU core; `--quick` is a smoke run of the same code (under a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldmodels.config import EnvConfig, load_all
from worldmodels.envs import make_env
from worldmodels.losses.collapse import effective_rank, embedding_std
from worldmodels.registry import REPRESENTATION_LEARNERS
from worldmodels.spaces import ObsSpec

FRAMES = ObsSpec((64, 64, 3), "uint8")
HORIZON = 8
"""Steps of the predictor's open-loop rollouts that are scored."""


@dataclass(frozen=True)
class Budget:
    train_episodes: int
    test_episodes: int
    updates: int
    batch: int
    """Windows per update."""
    window: int
    """Steps per window (jepa rolls its predictor window − 1 steps open loop)."""
    depth: int
    """Channels of the CNN encoder (and the VAE's decoder) at full resolution."""
    probe_every: int
    """The probe is fitted on every probe_every-th frame of the training episodes."""


FULL = Budget(train_episodes=100, test_episodes=20, updates=5000, batch=16, window=6, depth=16, probe_every=4)
QUICK = Budget(train_episodes=6, test_episodes=3, updates=20, batch=8, window=6, depth=8, probe_every=2)
LEARNERS = {  # row label → (learner, options over the common ones)
    "random init (jepa network, untrained)": ("jepa", {}),
    "vae (beta 1)": ("vae", {}),
    "contrastive": ("contrastive", {}),
    "jepa, vicreg": ("jepa", {"regulariser": "vicreg"}),
    "jepa, sigreg": ("jepa", {"regulariser": "sigreg"}),
}
EMBED_DIM, LR = 32, 3e-4


@dataclass
class Episodes:
    """Recorded episodes: frames uint8 `[E, L, 64, 64, 3]`, actions `[E, L, 2]` (action t led to frame t;
    action 0 is zero), true positions `[E, L, 2]`."""

    frames: torch.Tensor
    actions: torch.Tensor
    positions: torch.Tensor

    def windows(self, batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch` windows of `length` consecutive steps, each inside one episode: frames, actions `[B, T, ...]`."""
        E, L = self.actions.shape[:2]
        episode = torch.randint(0, E, (batch, 1), generator=generator)
        steps = torch.randint(0, L - length + 1, (batch, 1), generator=generator) + torch.arange(length)
        return self.frames[episode, steps], self.actions[episode, steps]


def record(episodes: int, seed: int) -> Episodes:
    """Uniform random-walk episodes of TwoRoom from pixels, seeded from `seed`."""
    env = make_env(EnvConfig(id="wm/TwoRoom-v0", obs="pixels"))
    rng = np.random.default_rng(seed)
    frames, actions, positions = [], [], []
    for episode in range(episodes):
        frame, info = env.reset(seed=seed * 100_000 + episode)
        f, a, p = [frame], [np.zeros(2, np.float32)], [info["position"]]
        truncated = False
        while not truncated:
            a.append(rng.uniform(-1, 1, 2).astype(np.float32))
            frame, _, _, truncated, info = env.step(a[-1])
            f.append(frame)
            p.append(info["position"])
        frames.append(np.stack(f))
        actions.append(np.stack(a))
        positions.append(np.stack(p))
    return Episodes(*(torch.as_tensor(np.stack(x)) for x in (frames, actions, positions)))


def train(learner, data: Episodes, budget: Budget, seed: int) -> float:
    """`budget.updates` Adam updates of `learner` on windows of `data`; the CPU seconds they took."""
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam([p for p in learner.parameters() if p.requires_grad], lr=LR)
    start = time.process_time()
    for _ in range(budget.updates):
        frames, actions = data.windows(budget.batch, budget.window, generator)
        loss, _ = learner.loss(frames, actions)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        learner.update_target()
    return time.process_time() - start


@torch.no_grad()
def embed(learner, frames: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Embeddings `[N, D]` of frames `[N, 64, 64, 3]`."""
    return torch.cat([learner.encode(frames[i : i + chunk]) for i in range(0, len(frames), chunk)])


def probe(train_z: torch.Tensor, train_xy: torch.Tensor, test_z: torch.Tensor, test_xy: torch.Tensor) -> list[float]:
    """Least-squares (x, y) from embeddings with a bias, fitted on the training pairs: the correlation of its
    predictions with the truth on the test pairs, for x and for y."""

    def with_bias(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.double(), torch.ones(len(z), 1, dtype=torch.float64)], 1)

    weights = torch.linalg.lstsq(with_bias(train_z), train_xy.double()).solution
    predicted = with_bias(test_z) @ weights
    return [float(torch.corrcoef(torch.stack([predicted[:, k], test_xy[:, k].double()]))[0, 1]) for k in range(2)]


@torch.no_grad()
def rollout_errors(jepa, data: Episodes, windows: int, seed: int) -> tuple[float, float]:
    """The mean squared error of `HORIZON`-step open-loop predictions from held-out frames against the
    embeddings of the frames reached, over the variance of those embeddings: (true actions, actions of
    other windows)."""
    frames, actions = data.windows(windows, HORIZON + 1, torch.Generator().manual_seed(seed))
    z = jepa.encode(frames)  # [B, H+1, D]
    reached = z[:, 1:]
    variance = (reached - reached.flatten(0, 1).mean(0)).pow(2).mean()
    shuffled = actions[torch.roll(torch.arange(windows), 1)]
    errors = [(jepa.rollout(z[:, 0], a[:, 1:]) - reached).pow(2).mean() / variance for a in (actions, shuffled)]
    return float(errors[0]), float(errors[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    args = parser.parse_args()
    budget = QUICK if args.quick else FULL
    torch.set_num_threads(1)
    load_all()
    started = time.time()
    training, held_out = record(budget.train_episodes, seed=0), record(budget.test_episodes, seed=1)
    probe_frames = training.frames[:, :: budget.probe_every].flatten(0, 1)
    probe_xy = training.positions[:, :: budget.probe_every].flatten(0, 1)
    test_frames, test_xy = held_out.frames.flatten(0, 1), held_out.positions.flatten(0, 1)
    common = {"encoder": {"image": {"depth": budget.depth}}, "embed_dim": EMBED_DIM}
    rows = []
    for label, (name, options) in LEARNERS.items():
        torch.manual_seed(0)
        extra = {"decoder": {"image": {"depth": budget.depth}}} if name == "vae" else {}
        learner = REPRESENTATION_LEARNERS.build(name, common | extra | options, obs_spec=FRAMES, action_dim=2)
        untrained = label.startswith("random init")
        seconds = 0.0 if untrained else train(learner, training, budget, seed=0)
        learner.eval()
        test_z = embed(learner, test_frames)
        corr = probe(embed(learner, probe_frames), probe_xy, test_z, test_xy)
        rollout = ["–", "–", "–"]
        if name == "jepa":
            true, shuffled = rollout_errors(learner, held_out, windows=256, seed=2)
            rollout = [f"{true:.3f}", f"{shuffled:.3f}", f"{true / shuffled:.2f}"]
        updates = 0 if untrained else budget.updates
        rows.append([label, updates, f"{seconds:.0f}", *(f"{c:.3f}" for c in (*corr, np.mean(corr)))])
        rows[-1] += [f"{float(embedding_std(test_z)):.3f}", f"{float(effective_rank(test_z)):.1f}", *rollout]
        print(rows[-1], flush=True)
    result = {
        "description": (
            "Linear probe of the agent's (x, y) from each representation learner's frozen embedding of held-out "
            "wm/TwoRoom-v0 frames (64x64), after equal updates; JEPA's 8-step open-loop prediction error."
        ),
        "columns": [
            "learner",
            "updates",
            "train CPU s",
            "probe corr x",
            "probe corr y",
            "probe corr (mean)",
            "embedding std",
            "effective rank",
            f"rollout error, true actions ({HORIZON} steps)",
            "rollout error, shuffled actions",
            "true / shuffled",
        ],
        "rows": rows,
        "notes": (
            f"{budget.train_episodes} training and {budget.test_episodes} held-out random-walk episodes of 100 "
            f"steps; batches of {budget.batch} windows of {budget.window} steps, Adam lr {LR}, CNN depth "
            f"{budget.depth}, embeddings of {EMBED_DIM}; probe fitted on one training frame in {budget.probe_every}. "
            f"Rollout errors are relative to the embeddings' variance. torch {torch.__version__}, 1 "
            f"thread; {(time.time() - started) / 60:.1f} min wall, 1-minute load average "
            f"{os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPU threads."
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
