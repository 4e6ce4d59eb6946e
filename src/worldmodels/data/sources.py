"""Where training batches come from: one interface over online replay and offline recorded episodes.

A source answers `sample(spec)` with arrays `[B, T, ...]` in replay's layout (`obs`, `action`, `reward`,
`is_first`, `is_terminal`, and whatever else it stores), the batch size, sequence length, keys, episode
boundaries and recency of each request set by the `SampleSpec` of the phase asking, not by the source;
both draw their windows with `data/windows.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from worldmodels.data.episodes import load_dataset
from worldmodels.data.replay import Replay, flatten, unflatten
from worldmodels.data.windows import Boundary, Ends, Recent, Windows, check_boundary
from worldmodels.errors import ConfigError


@dataclass(frozen=True)
class SampleSpec:
    """What one phase samples: `batch_size` windows of `seq_len` consecutive steps, only `keys` (None: all;
    a padded batch's `mask` is always kept), drawn as `data/windows.py` describes."""

    batch_size: int
    seq_len: int
    keys: tuple[str, ...] | None = None
    boundary: Boundary | None = None
    """How windows meet episodes: `cross`, `within`, `pad_end` or `pad_start`; None: the source's own
    (replay: `cross`, its `is_first` marking seams; a recorded dataset: `within`)."""
    recent: Recent | None = None
    """Draw this share of each batch among the newest data; None: every window alike."""
    ends: Ends | None = None
    """Draw this share of each batch among the windows ending at a termination; None: every window alike."""

    def __post_init__(self):
        if self.boundary is not None:
            check_boundary(self.boundary)

    def select(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.keys is None:
            return batch
        return {k: batch[k] for k in self.keys} | ({"mask": batch["mask"]} if "mask" in batch else {})


class Source(Protocol):
    def can_sample(self, spec: SampleSpec) -> bool: ...

    def sample(self, spec: SampleSpec) -> dict[str, Any]: ...


class OnlineSource:
    """The replay an `EnvPool` fills while the agent acts."""

    def __init__(self, replay: Replay):
        self.replay = replay

    def can_sample(self, spec: SampleSpec) -> bool:
        return self.replay.can_sample(spec.seq_len, spec.boundary or "cross")

    def sample(self, spec: SampleSpec) -> dict[str, Any]:
        return spec.select(
            self.replay.sample(spec.batch_size, spec.seq_len, spec.boundary or "cross", spec.recent, spec.ends)
        )


class OfflineSource:
    """A recorded dataset (`wm record`) or a folder of clips (`data/videos.py`), held in memory, its episodes
    end to end; by default windows start uniformly at random among every place of every episode a whole
    window fits in, so they never cross from one episode into the next."""

    def __init__(self, folder: Path, seed: int):
        self.folder = Path(folder)
        self.index, episodes = load_dataset(self.folder)
        if not episodes:
            raise ConfigError(f"dataset '{self.folder}' holds no episodes; record some with `wm record`")
        flat = [flatten(e) for e in episodes]
        self.data = {k: np.concatenate([f[k] for f in flat]) for k in flat[0]}
        self.lengths = np.array([len(next(iter(f.values()))) for f in flat])  # rows: steps + 1
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        first = np.zeros(self.lengths.sum(), bool)
        first[self.starts] = True
        self.data["is_first"] = first
        terminal = self.data.get("is_terminal")
        self.terminations = None if terminal is None else np.flatnonzero(terminal)  # for windows ending at one
        self.rng = np.random.default_rng(seed)

    @property
    def has_actions(self) -> bool:
        return "action" in self.index["keys"]

    def refuse_missing(self, specs: list[SampleSpec], agent: str) -> None:
        """ConfigError naming the first array a batch of `specs` asks for (all of them: keys None) that the
        dataset does not hold, such as `action` in video without actions."""
        held = [*self.index["keys"], "is_first"]
        for spec in specs:
            missing = [k for k in spec.keys or ("obs", "action", "reward", "is_terminal") if k not in held]
            if missing:
                raise ConfigError(
                    f"agent '{agent}' learns from '{missing[0]}', which dataset '{self.folder}' does not hold "
                    f"(it has {', '.join(self.index['keys'])}); record it with actions (wm record without "
                    "--no-actions) or train an agent that learns from frames alone (genie)"
                )

    def __len__(self) -> int:
        return len(self.data["is_first"])

    def windows(self, spec: SampleSpec) -> Windows:
        """The episodes lie end to end in one track; windows stay within them unless `spec` says otherwise."""
        return Windows.of([len(self)], spec.seq_len, spec.boundary or "within", [self.starts])

    def can_sample(self, spec: SampleSpec) -> bool:
        return self.windows(spec).total > 0

    def sample(self, spec: SampleSpec) -> dict[str, Any]:
        windows = self.windows(spec)
        if windows.total == 0:
            longest = len(self) if windows.boundary == "cross" else self.lengths.max()
            raise ConfigError(
                f"no {'' if windows.boundary == 'cross' else 'episode of '}dataset '{self.folder}' is "
                f"{spec.seq_len} steps long (the longest has {longest}); lower train.seq_len"
            )
        ends = None if spec.ends is None or self.terminations is None else (spec.ends, [self.terminations])
        drawn = windows.draw(spec.batch_size, self.rng, spec.recent, ends=ends)
        return spec.select(unflatten(windows.take(self.data, drawn)))

    def state_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
