"""Recorded episodes on disk: what `wm record` writes (`envs/record.py`) and offline training (and World
Models) reads.

A dataset is a folder of `episode_NNNNNN.npz` files and a `dataset.json` index. One file holds one episode
in the layout replay stores steps in: `obs` `[T+1, ...]` (a dict observation as `obs/KEY` arrays),
`action` `[T+1, A]` model actions (row t: the action that led to frame t; zeros first), `reward` `[T+1]`
(row t: the reward of that step) and `is_terminal` `[T+1]` (termination, not a time limit). The index
names the environment (its whole `env` config, so the run that learns from it evaluates in the same one),
the action space, each episode's length and return, and `keys`, the arrays its episodes hold (all four
when absent; `obs` alone from `wm record --no-actions`). A folder of video clips (`data/videos.py`) is read
as a dataset of frames alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.data.files import load_npz, readable
from worldmodels.data.replay import unflatten
from worldmodels.data.videos import load_videos, read_clip, video_files
from worldmodels.errors import ConfigError
from worldmodels.spaces import ActSpec, ObsSpec

INDEX = "dataset.json"
KEYS = ("obs", "action", "reward", "is_terminal")
"""The arrays of a recorded episode with actions."""


def episode_file(folder: Path, i: int) -> Path:
    return Path(folder) / f"episode_{i:06d}.npz"


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays to `path` through a temporary file and a rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_index(
    folder: Path,
    env: dict[str, Any],
    act_spec: ActSpec,
    results: list[tuple[float, int]],
    keys: tuple[str, ...] = KEYS,
    **extra,
) -> None:
    """The dataset's index: `env` (the recording's whole env config, as a dict), the action space (the
    environment's, also when the episodes hold no actions), each episode's (return, length) in `results`
    and the `keys` its episodes hold."""
    index = {
        "env": env,
        "action": {"discrete": act_spec.discrete, "dim": act_spec.dim},
        "keys": list(keys),
        "lengths": [n for _, n in results],
        "returns": [r for r, _ in results],
        **extra,
    }
    tmp = Path(folder) / f".tmp-{INDEX}"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, Path(folder) / INDEX)


def episode_seed(seed: int, i: int) -> int:
    """The seed episode i of a recording from `seed` is played with."""
    return int(np.random.SeedSequence([seed, 10, i]).generate_state(1)[0])


def read_index(folder: Path) -> dict[str, Any]:
    """A dataset's `dataset.json`; a folder without one is a ConfigError naming `wm record`."""
    path = Path(folder) / INDEX
    if not path.exists():
        raise ConfigError(
            f"'{folder}' is not a recorded dataset (it has no {INDEX}) nor a folder of clips (.gif, .mp4, .npz); "
            f"write one with `wm record ENV --episodes N --out {folder}`"
        )
    with readable(path):
        index = json.loads(path.read_text())
        missing = sorted({"env", "action", "lengths", "returns"} - set(index))
        if missing:
            raise ValueError(f"the index lacks {', '.join(missing)}")
    return index


def load_episode(path: Path) -> dict[str, Any]:
    """One episode file as `obs` (array or dict), `action`, `reward` and `is_terminal` arrays."""
    return unflatten(load_npz(path))


def load_dataset(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A recorded dataset or a folder of clips: (index, episodes), every episode a dict of arrays `[T+1, ...]`."""
    folder = Path(folder)
    if not (folder / INDEX).exists() and video_files(folder):
        return load_videos(folder)
    index = read_index(folder)
    index.setdefault("keys", list(KEYS))
    return index, [load_episode(episode_file(folder, i)) for i in range(len(index["lengths"]))]


def holds_actions(folder: Path) -> bool:
    """Whether a dataset's episodes hold actions (a folder of clips holds none)."""
    folder = Path(folder)
    if not (folder / INDEX).exists() and video_files(folder):
        return False
    return "action" in read_index(folder).get("keys", KEYS)


def dataset_specs(folder: Path) -> tuple[ObsSpec, ActSpec]:
    """What an agent learning from a dataset of frames alone is built for, with no environment: the frames'
    spec (read off its first episode) and the action space the video came from (clips, from none: no
    actions, `dim` 0)."""
    folder = Path(folder)
    if not (folder / INDEX).exists() and video_files(folder):
        frames = read_clip(video_files(folder)[0])
        return ObsSpec(frames.shape[1:], str(frames.dtype)), ActSpec(discrete=True, dim=0)
    index = read_index(folder)
    obs = load_episode(episode_file(folder, 0))["obs"]
    if isinstance(obs, dict):
        raise ConfigError(f"dataset '{folder}' holds dict observations; a dataset of frames alone holds one array")
    return ObsSpec(obs.shape[1:], str(obs.dtype)), ActSpec(**index["action"])
