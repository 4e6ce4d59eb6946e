"""Video without actions as a dataset: a folder of clips, one episode per file, read by `train.offline=DIR`
when the folder holds no `dataset.json` (what Genie learns from).

A file is a GIF or MP4 video (mp4 needs `pip install imageio[ffmpeg]`) or an `.npz` holding one uint8
array of frames `[T, H, W, C]` (or `[T, H, W]`, grayscale); files are read in name order and every clip
must have the same frame size. Such a dataset has frames alone: its index names no environment and no
action space, and its episodes hold `obs` only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.data.files import load_npz
from worldmodels.errors import ConfigError, one_line

SUFFIXES = (".gif", ".mp4", ".npz")


def video_files(folder: Path) -> list[Path]:
    """The clip files of `folder`, in name order."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES) if Path(folder).is_dir() else []


def read_clip(path: Path) -> np.ndarray:
    """One clip's frames, uint8 `[T, H, W, C]` (a video's alpha channel dropped)."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = load_npz(path)
        if len(arrays) != 1:
            raise ConfigError(f"'{path}' holds {len(arrays)} arrays ({', '.join(arrays)}); a clip file holds one")
        frames = next(iter(arrays.values()))
    else:
        frames = _read_video(path)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ConfigError(f"'{path}' holds {frames.dtype} {frames.shape}, not uint8 frames [T, H, W, C]")
    if path.suffix.lower() != ".npz" and frames.shape[-1] == 4:
        frames = frames[..., :3]
    return np.ascontiguousarray(frames)


def _read_video(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    if path.suffix.lower() == ".mp4" and not any(importlib.util.find_spec(m) for m in ("imageio_ffmpeg", "av")):
        raise ConfigError(f"reading '{path}' needs an mp4 backend: pip install imageio[ffmpeg]")
    try:
        return np.asarray(iio.imread(path, index=None))
    except Exception as err:
        raise ConfigError(f"'{path}' cannot be read as a video ({type(err).__name__}: {one_line(err)})") from None


def load_videos(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A folder of clips as (index, episodes): the index as `dataset.json` would hold it (no environment, no
    action space, each episode's length in steps), the episodes as `{"obs": [T, H, W, C]}`."""
    files = video_files(folder)
    if not files:
        raise ConfigError(
            f"'{folder}' is neither a recorded dataset (no dataset.json) nor a folder of clips "
            f"({', '.join(SUFFIXES)}); write one with `wm record ENV --episodes N --out {folder}`"
        )
    episodes = [{"obs": read_clip(path)} for path in files]
    sizes = {e["obs"].shape[1:] for e in episodes}
    if len(sizes) > 1:
        raise ConfigError(f"the clips of '{folder}' differ in frame size ({', '.join(map(str, sorted(sizes)))})")
    index = {
        "env": None,
        "action": None,
        "keys": ["obs"],
        "lengths": [len(e["obs"]) - 1 for e in episodes],
        "returns": None,
        "files": [p.name for p in files],
    }
    return index, episodes
