"""DIAMOND's stability study at small scale (Alonso et al. 2024, §5.2): how far do autoregressive rollouts
of each denoiser drift from the real frames, at 1, 3 and 10 sampler steps?

Same data and equal updates for every denoiser: MinAtar Breakout episodes of a policy that keeps the paddle
under the ball with 5% random actions (uniform play loses the ball within ~10 steps; these last 63 on
average, 38% of them 54 or more), the `diamond_minatar` EDM U-Net, the same U-Net trained and sampled as
DDPM (DDIM and ancestral), and a DiT of the same conditioning (2 layers x 64, patch 2), each trained for
`--updates` updates of 32 windows of 4 context frames and the next frame (AdamW at `--lr`, default `LR`,
100 warm-up updates). Then from 200 starts in held-out episodes, 4 real frames and the real actions, each
generates 50 frames, each from the 4 before it, its own included. Errors per generated step: the share of
cells with a channel wrong (MinAtar's channels are 0 or 255), and the mean squared error in [0, 1]; beside
them copying the last real frame. And how the rollouts go wrong: the share of frames a one-step prediction from
real frames gets wrong, the share of starts whose rollout has a wrong frame by step 10 and by step 50, and how
many of those are right again at step 50. The data is played without MinAtar's sticky actions
(`env.sticky_actions=0`), so the real frames follow the recorded actions and a rollout's error is the
model's drift alone.

    python benchmarks/diamond_stability.py --out result.json [--updates 12000] [--lr 1e-3] [--quick]
        [--denoisers edm_unet,dit] [--dit LAYERS,DIM,PATCH] [--seed N] [--ema DECAY]

`--denoisers` studies only those networks; `--dit` sets the DiT's size (default 2,64,2); `--seed` the
networks' initialisation and batch order (default 0: the data and the held-out starts never change), so a
comparison between networks can be repeated over training seeds; `--ema` also rolls out each network with
its weights averaged over training (an exponential moving average with that decay per update, as EDM and
DiT sample from), beside its last weights.

Writes the table to --out (`NAME.json`) and, beside it, the curves (`NAME.png`) and a strip of generated
frames (`NAME_frames.png`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from denoiser_speed import denoiser_config  # noqa: E402
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn  # noqa: E402

from worldmodels.config import load_config  # noqa: E402
from worldmodels.denoisers.conditioning import to_model, to_pixels  # noqa: E402
from worldmodels.envs import make_env  # noqa: E402
from worldmodels.registry import DENOISERS  # noqa: E402
from worldmodels.spaces import ObsSpec  # noqa: E402

PRESET = "diamond_minatar"
FRAMES = ObsSpec((10, 10, 4), "uint8")
PADDLE, BALL = 0, 1  # MinAtar Breakout's channels: paddle, ball, trail, brick
NOOP, LEFT, RIGHT = 0, 1, 2  # its minimal action set
ACTIONS = 3
STEPS = (1, 3, 10)
HORIZON = 50
LR = 1e-3
"""Every network's learning rate (`--lr`). At 3,000 updates (`--updates 3000`; cells wrong at generated step
1 / 10, 1 sampler step) 1e-3 beat the preset's 3e-4 for the U-Net (1.20 / 4.13 % vs 2.62 / 4.45 %) and for
the DiT (1.59 / 3.89 % vs 2.61 / 6.27 %): at 3e-4 the study compared an under-trained DiT."""
DENOISERS_STUDIED = [  # label, denoiser, its overrides of the preset's denoiser, sampler
    ("EDM U-Net", "edm_unet", {}, "euler"),
    ("DDPM U-Net (DDIM)", "ddpm_unet", {}, "ddim"),
    ("DDPM U-Net (ancestral)", "ddpm_unet", {}, "ancestral"),
    ("DiT", "dit", {}, "euler"),  # sized by --dit
]


def tracking_policy(frame: np.ndarray, rng: np.random.Generator, explore: float) -> int:
    """Move the paddle under the ball (with probability `explore` a uniformly random action)."""
    ball, paddle = np.argwhere(frame[..., BALL]), np.argwhere(frame[..., PADDLE])
    if rng.random() < explore or not len(ball) or not len(paddle):
        return int(rng.integers(ACTIONS))
    gap = ball[0, 1] - paddle[0, 1]
    return RIGHT if gap > 0 else LEFT if gap < 0 else NOOP


def collect(frames: int, seed: int, explore: float = 0.05) -> list[tuple[np.ndarray, np.ndarray]]:
    """Episodes `(frames [T + 1, 10, 10, 4] uint8, actions [T])` of the tracking policy, `frames` frames in all."""
    env_cfg = load_config(PRESET, ["env.sticky_actions=0"]).env
    env, rng, episodes, total = make_env(env_cfg), np.random.default_rng(seed), [], 0
    while total < frames:
        obs, _ = env.reset(seed=seed + len(episodes))
        seen, taken, done = [obs], [], False
        while not done:
            taken.append(tracking_policy(obs, rng, explore))
            obs, _, terminated, truncated, _ = env.step(taken[-1])
            seen.append(obs)
            done = terminated or truncated
        episodes.append((np.stack(seen), np.asarray(taken)))
        total += len(seen)
    env.close()
    return episodes


def windows(episodes: list[tuple[np.ndarray, np.ndarray]], context: int, ahead: int) -> list[tuple[int, int]]:
    """Every (episode, t) with `context` frames before t and `ahead` − 1 frames after it."""
    return [(e, t) for e, (f, _) in enumerate(episodes) for t in range(context, len(f) - ahead + 1)]


def batch_at(episodes, picks, context: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames `[N, context + length, C, H, W]` in [−1, 1] from each pick's t − context on, and one-hot
    actions `[N, context + length − 1, A]` taken in all but the last of them."""
    frames = np.stack([episodes[e][0][t - context : t + length] for e, t in picks])
    actions = np.stack([episodes[e][1][t - context : t + length - 1] for e, t in picks])
    return to_model(torch.as_tensor(frames)), torch.eye(ACTIONS)[torch.as_tensor(actions)]


def train(
    denoiser, episodes, updates: int, lr: float, seed: int, ema: float = 0.0
) -> tuple[list[float], torch.nn.Module | None]:
    """`updates` AdamW steps on batches of 32 windows: the loss of every 100th update, and with `ema` > 0 an
    exponential moving average of the weights (decay `ema` per update; None without)."""
    K, rng = denoiser.context, np.random.default_rng(seed)
    picks = windows(episodes, K, 1)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=lr, eps=1e-8, weight_decay=0.01)
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 100))
    average = None
    if ema > 0:
        average = AveragedModel(denoiser, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    losses = []
    for i in range(updates):
        frames, actions = batch_at(episodes, [picks[j] for j in rng.integers(len(picks), size=32)], K, 1)
        loss, _ = denoiser.loss(frames[:, :K], actions, frames[:, K])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        opt.step()
        warmup.step()
        if average is not None:
            average.update_parameters(denoiser)
        if i % 100 == 0:
            losses.append(loss.item())
    return losses, None if average is None else average.module


@torch.no_grad()
def rollout(denoiser, frames: torch.Tensor, actions: torch.Tensor, steps: int, sampler: str) -> torch.Tensor:
    """`HORIZON` frames generated after the first K real ones, each from the K before it and the real actions."""
    K = denoiser.context
    dreamed = frames[:, :K]
    for h in range(HORIZON):
        nxt = denoiser.sample(dreamed[:, -K:], actions[:, h : h + K], steps, sampler)
        dreamed = torch.cat([dreamed, nxt[:, None]], 1)
    return dreamed[:, K:]


@torch.no_grad()
def one_step(denoiser, frames: torch.Tensor, actions: torch.Tensor, steps: int, sampler: str) -> torch.Tensor:
    """Each of the `HORIZON` frames after the first K generated from the K real frames before it (teacher
    forcing): what the model gets wrong in one step, with no error of its own fed back."""
    K = denoiser.context
    return torch.stack(
        [denoiser.sample(frames[:, h : h + K], actions[:, h : h + K], steps, sampler) for h in range(HORIZON)], 1
    )


def wrong_frames(real: torch.Tensor, guess: torch.Tensor) -> torch.Tensor:
    """`[N, T]` bool: the generated frames with at least one cell wrong."""
    return ((to_pixels(real).float() - to_pixels(guess).float()).abs() > 127.5).flatten(2).any(-1)


def divergence(real: torch.Tensor, dreamed: torch.Tensor, forced: torch.Tensor) -> dict[str, float]:
    """How rollouts go wrong: the share of frames a one-step prediction from real frames gets wrong (a
    hazard per step), the share of starts whose rollout has a wrong frame by step 10 and by step 50, and of
    the rollouts wrong at some step, the share right again at step 50 (an error that heals)."""
    rollout_wrong = wrong_frames(real, dreamed)
    ever = rollout_wrong.any(1)
    return {
        "one_step": wrong_frames(real, forced).float().mean().item(),
        "by_10": rollout_wrong[:, :10].any(1).float().mean().item(),
        "by_50": ever.float().mean().item(),
        "healed": (ever & ~rollout_wrong[:, -1]).float().sum().item() / max(1, int(ever.sum())),
    }


def errors(real: torch.Tensor, guess: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the share of cells with a channel wrong, and the squared error in [0, 1] (frames in [−1, 1])."""
    real_px, guess_px = to_pixels(real).float(), to_pixels(guess).float()
    wrong = ((real_px - guess_px).abs() > 127.5).any(-1).float().mean((0, 2, 3))
    mse = ((real_px - guess_px) / 255).pow(2).mean((0, 2, 3, 4))
    return wrong.numpy(), mse.numpy()


def plot(curves: dict[str, dict[int, np.ndarray]], copy_last: np.ndarray, path: Path) -> None:
    fig, axes = plt.subplots(1, len(STEPS), figsize=(4.2 * len(STEPS), 3.4), dpi=100, sharey=True)
    h = np.arange(1, HORIZON + 1)
    for ax, steps in zip(axes, STEPS):
        for label, by_steps in curves.items():
            ax.plot(h, 100 * by_steps[steps], lw=1.4, label=label)
        ax.plot(h, 100 * copy_last, "k--", lw=1, label="copy last real frame")
        ax.set_title(f"{steps} sampler step{'s' if steps > 1 else ''}")
        ax.set_xlabel("generated step")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")  # shared: 0.1 % (a cell in 10 frames) to 100 %
    axes[0].set_ylabel("cells wrong (%)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Autoregressive rollouts on held-out MinAtar Breakout (200 starts)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def strip(real: torch.Tensor, dreams: dict[str, torch.Tensor], path: Path) -> None:
    """One start: the real frames and each rollout at a few steps, cells coloured by channel."""
    shown = (1, 5, 10, 20, 35, 50)
    palette = np.array([[230, 230, 230], [250, 80, 80], [250, 170, 80], [80, 160, 250]], np.float32) / 255
    rows = {"real": real, **dreams}
    fig, axes = plt.subplots(len(rows), len(shown), figsize=(1.3 * len(shown), 1.35 * len(rows)), dpi=100)
    for r, (label, frames) in enumerate(rows.items()):
        for c, h in enumerate(shown):
            cells = to_pixels(frames[h - 1]).numpy() > 127
            image = np.zeros((*cells.shape[:2], 3), np.float32)
            for ch in range(cells.shape[-1]):
                image[cells[..., ch]] = palette[ch]
            axes[r, c].imshow(image, interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"step {h}", fontsize=8)
            if c == 0:
                axes[r, c].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--updates", type=int, default=12000)
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--lr", type=float, default=LR, help="every network's learning rate")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 updates, 8 starts")
    parser.add_argument("--denoisers", default="edm_unet,ddpm_unet,dit", help="which networks to study")
    parser.add_argument("--dit", default="2,64,2", help="the DiT's layers, width and patch side")
    parser.add_argument("--seed", type=int, default=0, help="the networks' initialisation and batch order")
    parser.add_argument(
        "--ema", type=float, default=0.0, help="also roll out each network's weights averaged with this decay"
    )
    args = parser.parse_args()
    layers, dim, patch = (int(v) for v in args.dit.split(","))
    dit = {"layers": layers, "heads": 4, "dim": dim, "patch": patch}
    studied = [
        (f"DiT {layers} x {dim}, patch {patch}", name, dit, sampler) if name == "dit" else (label, name, over, sampler)
        for label, name, over, sampler in DENOISERS_STUDIED
        if name in args.denoisers.split(",")
    ]
    updates, starts = (50, 8) if args.quick else (args.updates, args.starts)
    torch.set_num_threads(1)
    begin = time.perf_counter()
    train_episodes, held_out = collect(20_000 if not args.quick else 2_000, seed=0), collect(10_000, seed=10_000)
    K = load_config(PRESET).agent.cfg.denoiser.cfg.context
    picks = windows(held_out, K, HORIZON)
    chosen = np.random.default_rng(1).choice(len(picks), size=min(starts, len(picks)), replace=False)
    real_frames, real_actions = batch_at(held_out, [picks[i] for i in sorted(chosen)], K, HORIZON)
    real = real_frames[:, K:]
    copied = real_frames[:, K - 1 : K].expand_as(real)
    copy_last = errors(real, copied)
    curves: dict[str, dict[int, np.ndarray]] = {}
    mse_curves: dict[str, dict[int, np.ndarray]] = {}
    dreams, rows, trained = {}, [], {}
    for label, name, overrides, sampler in studied:
        key = (name, json.dumps(overrides))
        if key not in trained:  # one training per network: the DDPM U-Net is sampled both ways
            torch.manual_seed(args.seed)
            denoiser = DENOISERS.build(
                name, denoiser_config(PRESET, name, overrides), obs_spec=FRAMES, action_dim=ACTIONS
            )
            start = time.perf_counter()
            losses, averaged = train(denoiser, train_episodes, updates, args.lr, seed=args.seed, ema=args.ema)
            trained[key] = (denoiser.eval(), averaged, time.perf_counter() - start)
            took = trained[key][2]
            print(f"[stability] {name}: {updates} updates in {took:.0f} s, loss {losses[-1]:.4f}", flush=True)
        network, averaged, train_s = trained[key]
        versions = [(label, network)] + ([(f"{label}, EMA {args.ema:g}", averaged.eval())] if averaged else [])
        for label, denoiser in versions:
            curves[label], mse_curves[label] = {}, {}
            for steps in STEPS:
                torch.manual_seed(1)
                dreamed = rollout(denoiser, real_frames, real_actions, steps, sampler)
                curves[label][steps], mse_curves[label][steps] = errors(real, dreamed)
                if steps in (1, 3):
                    dreams[f"{label}, {steps} step{'s' if steps > 1 else ''}"] = dreamed[0]
                wrong = curves[label][steps]
                torch.manual_seed(1)
                went = divergence(real, dreamed, one_step(denoiser, real_frames, real_actions, steps, sampler))
                rows.append([
                    label, sampler, steps, f"{100 * wrong[0]:.2f}", f"{100 * wrong[9]:.2f}", f"{100 * wrong[49]:.2f}",
                    f"{wrong[49] / max(wrong[9], 1e-9):.2f}", f"{mse_curves[label][steps][9]:.4f}",
                    f"{100 * went['one_step']:.2f}", f"{100 * went['by_10']:.0f}", f"{100 * went['by_50']:.0f}",
                    f"{100 * went['healed']:.0f}", f"{train_s:.0f}",
                ])  # fmt: skip
                print(f"[stability] {rows[-1]}", flush=True)
    went = divergence(real, copied, real_frames[:, K - 1 : -1])
    rows.append([
        "copy last real frame", "", "", f"{100 * copy_last[0][0]:.2f}", f"{100 * copy_last[0][9]:.2f}",
        f"{100 * copy_last[0][49]:.2f}", f"{copy_last[0][49] / copy_last[0][9]:.2f}", f"{copy_last[1][9]:.4f}",
        f"{100 * went['one_step']:.2f}", f"{100 * went['by_10']:.0f}", f"{100 * went['by_50']:.0f}",
        f"{100 * went['healed']:.0f}", "",
    ])  # fmt: skip
    out = Path(args.out)
    plot(curves, copy_last[0], out.with_suffix(".png"))
    strip(real[0], dreams, out.with_name(f"{out.stem}_frames.png"))
    result = {
        "description": "DIAMOND's stability study at small scale: autoregressive rollouts per denoiser.",
        "columns": [
            "denoiser",
            "sampler",
            "sampler steps",
            "% cells wrong, step 1",
            "step 10",
            "step 50",
            "step 50 / step 10",
            "MSE step 10",
            "% frames wrong, one step from real frames",
            "% starts wrong by step 10",
            "by step 50",
            "% of those right at step 50",
            "training s",
        ],  # fmt: skip
        "rows": rows,
        "curves": {label: {s: [round(float(v), 5) for v in c] for s, c in by.items()} for label, by in curves.items()},
        "copy_last": [round(float(v), 5) for v in copy_last[0]],
        "notes": (
            f"{updates} updates of 32 windows per network at lr {args.lr:g} (training seed {args.seed}), on "
            f"{sum(len(f) for f, _ in train_episodes)} training frames ({len(train_episodes)} episodes); "
            f"{len(real)} starts in {len(held_out)} held-out episodes; "
            f"torch {torch.__version__}, 1 thread; {(time.perf_counter() - begin) / 60:.0f} min in all; "
            f"1-minute load average {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPU threads."
        ),
    }
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
