"""Where training batches come from: one interface over online replay and offline recorded episodes.

A source answers `sample(spec)` with arrays `[B, T, ...]` in replay's layout (`obs`, `action`, `reward`,
`is_first`, `is_terminal`, and whatever else it stores), the batch size, sequence length and keys of each
request set by the `SampleSpec` of the phase asking, not by the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from worldmodels.data.episodes import episode_file, load_episode, read_index
from worldmodels.data.replay import Replay, flatten, unflatten
from worldmodels.errors import ConfigError


@dataclass(frozen=True)
class SampleSpec:
    """What one phase samples: `batch_size` windows of `seq_len` consecutive steps, only `keys` (None: all)."""

    batch_size: int
    seq_len: int
    keys: tuple[str, ...] | None = None

    def select(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch if self.keys is None else {k: batch[k] for k in self.keys}


class Source(Protocol):
    def can_sample(self, spec: SampleSpec) -> bool: ...

    def sample(self, spec: SampleSpec) -> dict[str, Any]: ...


class OnlineSource:
    """The replay an `EnvPool` fills while the agent acts."""

    def __init__(self, replay: Replay):
        self.replay = replay

    def can_sample(self, spec: SampleSpec) -> bool:
        return self.replay.can_sample(spec.seq_len)

    def sample(self, spec: SampleSpec) -> dict[str, Any]:
        return spec.select(self.replay.sample(spec.batch_size, spec.seq_len))


class OfflineSource:
    """A recorded dataset (`wm record`), held in memory: windows start uniformly at random among every
    place of every episode a whole window fits in, so they never cross from one episode into the next."""

    def __init__(self, folder: Path, seed: int):
        self.folder = Path(folder)
        self.index = read_index(self.folder)
        episodes = [load_episode(episode_file(self.folder, i)) for i in range(len(self.index["lengths"]))]
        if not episodes:
            raise ConfigError(f"dataset '{self.folder}' holds no episodes; record some with `wm record`")
        flat = [flatten(e) for e in episodes]
        self.data = {k: np.concatenate([f[k] for f in flat]) for k in flat[0]}
        self.lengths = np.array([len(f["reward"]) for f in flat])  # rows: steps + 1
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        first = np.zeros(len(self.data["reward"]), bool)
        first[self.starts] = True
        self.data["is_first"] = first
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.data["reward"])

    def can_sample(self, spec: SampleSpec) -> bool:
        return bool((self.lengths >= spec.seq_len).any())

    def sample(self, spec: SampleSpec) -> dict[str, Any]:
        room = np.maximum(self.lengths - spec.seq_len + 1, 0)  # window starts per episode
        if not room.any():
            raise ConfigError(
                f"no episode of dataset '{self.folder}' is {spec.seq_len} steps long (the longest has "
                f"{self.lengths.max()}); lower train.seq_len"
            )
        flat = self.rng.integers(room.sum(), size=spec.batch_size)
        episode = np.searchsorted(np.cumsum(room), flat, side="right")
        offset = flat - (np.cumsum(room) - room)[episode]
        rows = (self.starts[episode] + offset)[:, None] + np.arange(spec.seq_len)  # [B, T]
        return spec.select(unflatten({k: v[rows] for k, v in self.data.items()}))

    def state_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
