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

from worldmodels.agents.world_models.agent import WorldModelsAgent
from worldmodels.data.episodes import write_npz
from worldmodels.data.files import load_npz
from worldmodels.data.sources import SampleSpec
from worldmodels.data.windows import Boundary, Windows


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


KEYS = ("mean", "log_std", "action", "reward", "done")


def _episodes(
    data: dict[str, np.ndarray], first: int, stop: int, seq_len: int, boundary: Boundary
) -> tuple[Windows, dict[str, np.ndarray]]:
    """Episodes first … stop - 1 as one track, and its windows of `seq_len` transitions (`seq_len + 1` frames)."""
    lo = data["starts"][first]
    rows = slice(lo, data["starts"][stop - 1] + data["lengths"][stop - 1])
    track = {k: data[k][rows] for k in KEYS}
    firsts = data["starts"][first:stop] - lo
    return Windows.of([rows.stop - lo], seq_len + 1, boundary, [firsts]), track


def _tensors(w: dict[str, np.ndarray], z: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    mask = w["mask"] if "mask" in w else np.ones(w["reward"].shape, bool)  # unpadded windows are all real
    batch = {"z": z, "action": w["action"], "reward": w["reward"], "done": w["done"], "mask": mask}
    return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}


def sample_windows(
    data: dict[str, np.ndarray], episodes: int, spec: SampleSpec, rng: np.random.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    """`spec.batch_size` windows of `spec.seq_len` transitions from the first `episodes` episodes, drawn
    as `spec` says (by default `pad_end`), z sampled from V's posterior: tensors `[B, W, ...]`."""
    windows, track = _episodes(data, 0, episodes, spec.seq_len, spec.boundary or "pad_end")
    w = windows.take(track, windows.draw(spec.batch_size, rng, spec.recent))
    z = w["mean"] + np.exp(w["log_std"]) * rng.standard_normal(w["mean"].shape).astype(np.float32)
    return _tensors(w, z.astype(np.float32), device)


def split_windows(data: dict[str, np.ndarray], first: int, seq_len: int) -> dict[str, torch.Tensor]:
    """Every transition of the episodes from `first` on exactly once, in consecutive windows of `seq_len`
    (padded at the end), z = V's mean."""
    windows, track = _episodes(data, first, len(data["starts"]), seq_len, "pad_end")
    w = windows.take(track, windows.tiles(seq_len))
    return _tensors(w, w["mean"], torch.device("cpu"))
