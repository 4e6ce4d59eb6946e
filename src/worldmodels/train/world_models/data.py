"""The World Models pipeline's data on disk: frames of random rollouts for V, latent sequences for M.

The rollouts are a recorded dataset (`RUN/rollouts/`, in the layout of `data/episodes.py`). `latents.npz`
holds every frame's posterior (`mean`, `log_std` `[N, Z]`) with the episodes laid end to end (`starts`,
`lengths` in frames).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.world_models import WorldModelsAgent
from worldmodels.data.episodes import write_npz
from worldmodels.data.files import load_npz


def frame_batches(
    files: list[Path], batch_size: int, rng: np.random.Generator, buffer: int = 100_000
) -> Iterator[np.ndarray]:
    """Shuffled batches `[batch_size, H, W, C]` of every frame in `files` (the last one may be smaller),
    read a few files at a time: files in random order, frames shuffled within about `buffer` of them."""
    order = rng.permutation(len(files))
    parts: list[np.ndarray] = []
    held = 0
    for k, i in enumerate(order):
        parts.append(load_npz(files[i])["obs"])
        held += len(parts[-1])
        if held < buffer and k < len(order) - 1:
            continue
        frames = np.concatenate(parts)
        frames = frames[rng.permutation(len(frames))]
        full = len(frames) // batch_size * batch_size
        yield from (frames[j : j + batch_size] for j in range(0, full, batch_size))
        parts, held = [frames[full:]], len(frames) - full
    if held:
        yield parts[0]


@torch.no_grad()
def encode_rollouts(agent: WorldModelsAgent, files: list[Path], out: Path, batch: int = 256) -> None:
    """V's posterior of every frame of every rollout, with actions, rewards and terminations, to `out`."""
    keys = ("mean", "log_std", "action", "reward", "done")
    columns: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    lengths = []
    for path in files:
        episode = load_npz(path)
        for j in range(0, len(episode["obs"]), batch):
            q = agent.vae(torch.as_tensor(episode["obs"][j : j + batch], device=agent.device))
            columns["mean"].append(q.mean.cpu().numpy())
            columns["log_std"].append(q.stddev.log().cpu().numpy())
        for k in ("action", "reward"):
            columns[k].append(episode[k])
        columns["done"].append(episode["is_terminal"])
        lengths.append(len(episode["obs"]))
    arrays = {k: np.concatenate(v) for k, v in columns.items()}
    arrays["lengths"] = np.asarray(lengths, np.int64)
    arrays["starts"] = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    write_npz(out, arrays)


def load_latents(path: Path) -> dict[str, np.ndarray]:
    return load_npz(path)


def _windows(
    data: dict[str, np.ndarray], episodes: np.ndarray, offsets: np.ndarray, width: int
) -> dict[str, np.ndarray]:
    """Windows of `width` frames from `episodes[i]` at `offsets[i]`, padded past the episode's end (mask 0)."""
    steps = offsets[:, None] + np.arange(width)  # [B, W]
    lengths = data["lengths"][episodes][:, None]
    mask = steps < lengths
    index = data["starts"][episodes][:, None] + np.minimum(steps, lengths - 1)
    out = {k: data[k][index] for k in ("mean", "log_std", "action", "reward", "done")}
    out["mask"] = mask
    return out


def _tensors(w: dict[str, np.ndarray], z: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    batch = {"z": z, "action": w["action"], "reward": w["reward"], "done": w["done"], "mask": w["mask"]}
    return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}


def sample_windows(
    data: dict[str, np.ndarray],
    episodes: np.ndarray,
    batch_size: int,
    seq_len: int,
    rng: np.random.Generator,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """`batch_size` windows of `seq_len` transitions (`seq_len + 1` frames) at random places of random
    episodes (chosen in proportion to their length), z sampled from V's posterior: tensors `[B, W, ...]`."""
    lengths = data["lengths"][episodes]
    chosen = rng.choice(episodes, batch_size, p=lengths / lengths.sum())
    room = np.maximum(data["lengths"][chosen] - seq_len - 1, 0)
    w = _windows(data, chosen, rng.integers(0, room + 1), seq_len + 1)
    z = w["mean"] + np.exp(w["log_std"]) * rng.standard_normal(w["mean"].shape).astype(np.float32)
    return _tensors(w, z.astype(np.float32), device)


def split_windows(data: dict[str, np.ndarray], episodes: np.ndarray, seq_len: int) -> dict[str, torch.Tensor]:
    """Every transition of `episodes` exactly once, in consecutive windows of `seq_len`, z = V's mean."""
    pairs = [(e, o) for e in episodes for o in range(0, max(int(data["lengths"][e]) - 1, 1), seq_len)]
    chosen, offsets = (np.asarray(x, np.int64) for x in zip(*pairs))
    w = _windows(data, chosen, offsets, seq_len + 1)
    return _tensors(w, w["mean"], torch.device("cpu"))
