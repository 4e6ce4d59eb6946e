"""The one window sampler: `[B, T, ...]` training windows from online replay, recorded datasets and World
Models' latent sequences.

Data lies in tracks of rows in time order: one per environment stream in replay (a ring buffer), one for
a dataset of episodes laid end to end. A window is `length` consecutive rows of one track; `boundary`
says how windows meet the episodes in it:

    cross      anywhere in a track: a window may run from one episode into the next, the new episode's
               `is_first` marking the seam (models reset their memory there)
    within     inside one episode; an episode shorter than a window gives none
    pad_end    inside one episode, like `within`, but an episode shorter than a window still gives one
               window, from its first step, padded after its last
    pad_start  the same, padded before its first step (the window ends on the episode's last step)

Padded batches carry `mask` `[B, T]`: True on real steps; padding rows are zeros. `cross` and `within`
draw every window they allow equally often (one draw among all of them); the padded modes draw an
episode in proportion to its length, then one of its windows uniformly, so that a short episode weighs
as its steps, not as its one window.

`Recent(fraction, steps)` skews the draws to the newest data (IRIS and DIAMOND sample their newest
episodes more often): `round(fraction * B)` windows of each batch (its last rows) are drawn, by the rule
above, among the windows whose last real step is one of the newest `steps` rows of its track (in replay:
of its environment's stream); the rest among all windows. While the newest rows hold no window yet
(episodes too short for `within`), the whole batch is drawn among all windows.

`Ends(fraction)` is DreamerV2's `prioritize_ends` for terminations: `round(fraction * B)` windows of each
batch (after the recent ones), but no more than the tracks hold terminations, are drawn uniformly among those
terminations, each as the latest window the boundary allows that holds it, so the termination is its last row
where it can be and the steps that led to it come before. Terminations are rare rows (one per episode, fewer
where episodes end by a time limit), and a model learns where they happen from them and the steps just
before. The cap keeps a first termination from filling a quarter of every batch with one window, which a
model then generalises over the whole region around it (`benchmarks/NOTES.md`, MountainCarContinuous).
While the tracks hold no termination, the whole batch is drawn as without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from worldmodels.errors import ConfigError

Boundary = Literal["cross", "within", "pad_end", "pad_start"]
PADDED = ("pad_end", "pad_start")


def check_boundary(boundary: str) -> None:
    if boundary not in get_args(Boundary):
        raise ConfigError(f"window boundary '{boundary}' is unknown; known: {', '.join(get_args(Boundary))}")


@dataclass(frozen=True)
class Recent:
    """Draw `fraction` of each batch among the windows ending in the newest `steps` rows of their track."""

    fraction: float
    steps: int

    def __post_init__(self):
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"recent.fraction is {self.fraction}; it is a share of the batch, in (0, 1]")
        if self.steps < 1:
            raise ConfigError(f"recent.steps is {self.steps}; it counts the newest rows, at least 1")


@dataclass(frozen=True)
class Ends:
    """Draw `fraction` of each batch among the windows ending at a termination (module docstring)."""

    fraction: float

    def __post_init__(self):
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"the share of windows ending at a termination is {self.fraction}; it is in (0, 1]")


@dataclass(frozen=True)
class Drawn:
    """Windows drawn, `[B]` each: window i starts at row `start[i]` of track `track[i]` (before the episode's
    first row when padded at the start) and its real steps are the rows in [lo[i], hi[i]), its episode (its
    track, with `cross`). `pick` numbers the windows among `Windows.every()` when they were drawn by weight."""

    track: np.ndarray
    start: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    pick: np.ndarray | None = None

    def mask(self, length: int) -> np.ndarray:
        """`[B, T]`: True on the windows' real steps."""
        rows = self.start[:, None] + np.arange(length)
        return (rows >= self.lo[:, None]) & (rows < self.hi[:, None])


@dataclass(frozen=True)
class Windows:
    """Every window of `length` rows that `boundary` allows in tracks holding `held` `[K]` rows.

    The tracks are cut into segments, `[S]` each: segment i is rows [lo[i], hi[i]) of track `track[i]` (a
    whole track with `cross`, else one episode) and has the windows starting at rows first[i] … last[i]
    (none where last[i] < first[i]).
    """

    length: int
    boundary: Boundary
    held: np.ndarray
    track: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def of(cls, held: np.ndarray, length: int, boundary: Boundary, firsts: list[np.ndarray] | None = None) -> Windows:
        """Windows in tracks of `held` rows; `firsts[k]`: the rows of track k where an episode begins (unused
        with `cross`; row 0 always begins one)."""
        check_boundary(boundary)
        held = np.asarray(held, np.int64)
        if boundary == "cross":
            track, lo, hi = np.arange(len(held)), np.zeros_like(held), held
        else:
            if firsts is None:
                raise ValueError(f"windows with boundary '{boundary}' need the rows where episodes begin")
            cuts = [np.union1d(0, f[f < n]) if n else np.zeros(0, np.int64) for f, n in zip(firsts, held)]
            track = np.concatenate([np.full(len(c), k) for k, c in enumerate(cuts)]).astype(np.int64)
            lo = np.concatenate(cuts).astype(np.int64)
            hi = np.concatenate([np.append(c[1:], n) for c, n in zip(cuts, held)]).astype(np.int64)
        if boundary in ("cross", "within"):
            first, last = lo, hi - length
        elif boundary == "pad_end":
            first, last = lo, np.maximum(hi - length, lo)
        else:
            first, last = np.minimum(lo, hi - length), hi - length
        return cls(length, boundary, held, track, lo, hi, first, last)

    @property
    def count(self) -> np.ndarray:
        """Windows per segment `[S]`."""
        return np.maximum(self.last - self.first + 1, 0)

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def every(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window, segment by segment in order: its segment and start, `[total]` each."""
        count = self.count
        seg = np.repeat(np.arange(len(count)), count)
        return seg, self.first[seg] + np.arange(self.total) - np.repeat(np.cumsum(count) - count, count)

    def draw(
        self,
        batch: int,
        rng: np.random.Generator,
        recent: Recent | None = None,
        p: np.ndarray | None = None,
        ends: tuple[Ends, list[np.ndarray]] | None = None,
    ) -> Drawn:
        """`batch` windows drawn by the boundary's rule, `recent` and `ends` (module docstring; `ends` pairs an
        `Ends` with the rows of each track that end an episode by termination); or, given `p` `[total]`, in
        proportion to it over `every()` (prioritised replay)."""
        if self.total == 0:
            raise ValueError(f"there is no window of {self.length} steps to draw ({self.boundary})")
        if p is not None:
            if recent is not None or ends is not None:
                raise ConfigError(
                    "windows drawn by priority cannot also favour the newest or the terminations: drop "
                    "`recent` and the share of windows ending at a termination"
                )
            pick = rng.choice(self.total, size=batch, p=p)
            return self._drawn(*self._locate(pick, self.first, self.count), pick)
        held = (np.zeros(0, np.int64),) * 2 if ends is None else self.holding(ends[1])
        final = min(round(batch * ends[0].fraction), len(held[0])) if len(held[0]) else 0
        newest = 0 if recent is None else round(batch * recent.fraction)
        newest = min(newest, batch - final)
        seg, start = self._pick(batch - newest - final, rng, self.first)
        if newest:
            more = self._pick(newest, rng, self._newest(recent.steps))
            seg, start = np.concatenate([seg, more[0]]), np.concatenate([start, more[1]])
        if final:
            pick = rng.integers(len(held[0]), size=final)
            seg, start = np.concatenate([seg, held[0][pick]]), np.concatenate([start, held[1][pick]])
        return self._drawn(seg, start)

    def holding(self, rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """For each row of `rows[k]` (rows of track k), the latest window that holds it: (segments, starts),
        `[R]` each; rows that no window holds are left out."""
        track = np.concatenate([np.full(len(r), k, np.int64) for k, r in enumerate(rows)])
        row = np.concatenate([np.asarray(r, np.int64) for r in rows])
        if not len(row):
            return track, row
        stride = int(self.held.max()) + 1  # segments in order of track, then first row
        seg = np.maximum(np.searchsorted(self.track * stride + self.lo, track * stride + row, side="right") - 1, 0)
        start = np.clip(row - self.length + 1, self.first[seg], np.maximum(self.last[seg], self.first[seg]))
        ok = (self.track[seg] == track) & (row < self.hi[seg]) & (self.count[seg] > 0)
        ok &= (start <= row) & (row < start + self.length)
        return seg[ok], start[ok]

    def tiles(self, stride: int) -> Drawn:
        """Every step of every segment once, in windows from the segment's first row `stride` apart (they
        overlap by `length - stride` rows); the last of each padded at its end (pad_end only)."""
        if self.boundary != "pad_end":
            raise ValueError(f"tiles are padded at the end: boundary 'pad_end', not '{self.boundary}'")
        n = self.hi - self.lo
        per = -(-np.maximum(n - (self.length - stride), 1) // stride)  # ceil
        seg = np.repeat(np.arange(len(n)), per)
        offset = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
        return self._drawn(seg, self.lo[seg] + offset * stride)

    def take(self, stores: dict[str, np.ndarray], drawn: Drawn, oldest: np.ndarray | None = None) -> dict:
        """The drawn windows of every store, `[B, T, ...]` each (and `mask` when padded). A store is a ring
        `[K, C, ...]` holding row r of track k at [k, (oldest[k] + r) % C], or, without `oldest`, the
        rows `[N, ...]` of a single track."""
        first = drawn.start if oldest is None else oldest[drawn.track] + drawn.start
        capacity = next(iter(stores.values())).shape[0 if oldest is None else 1]  # the same for every store
        track, start = drawn.track.tolist(), (first % capacity).tolist()  # python ints index fastest
        out = {
            key: _gather(store[None] if oldest is None else store, track, start, self.length)
            for key, store in stores.items()
        }
        if self.boundary in PADDED:
            mask = drawn.mask(self.length)
            for value in out.values():
                value[~mask] = 0
            out["mask"] = mask
        return out

    def _pick(self, size: int, rng: np.random.Generator, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`size` windows among those starting at first[i] … last[i] of each segment: (segments, starts)."""
        count = np.maximum(self.last - first + 1, 0)
        if self.boundary in PADDED:
            # an episode's weight is its length, scaled by the share of its windows still in play
            weight = (self.hi - self.lo) * count / np.maximum(self.count, 1)
            seg = rng.choice(len(count), size, p=weight / weight.sum())
            return seg, rng.integers(first[seg], self.last[seg] + 1)
        return self._locate(rng.integers(count.sum(), size=size), first, count)

    def _newest(self, steps: int) -> np.ndarray:
        """Per segment, the first start of a window whose last real step is among the newest `steps` rows
        of its track (past `last` where none is); every window's start while there is no such window."""
        since = self.held[self.track] - steps  # the oldest of the newest rows
        first = np.where(self.hi > since, np.maximum(self.first, since - self.length + 1), self.last + 1)
        return first if (self.last >= first).any() else self.first

    @staticmethod
    def _locate(flat: np.ndarray, first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window number `flat` among `count` `[S]` per segment, counted from `first`: (segments, starts)."""
        ends = np.cumsum(count)
        seg = np.searchsorted(ends, flat, side="right")
        return seg, first[seg] + flat - (ends - count)[seg]

    def _drawn(self, seg: np.ndarray, start: np.ndarray, pick: np.ndarray | None = None) -> Drawn:
        return Drawn(self.track[seg], start, self.lo[seg], self.hi[seg], pick)


def _gather(ring: np.ndarray, track: list[int], start: list[int], length: int) -> np.ndarray:
    """`ring[track[i], start[i] : start[i] + length]` for every i, wrapping around the ring's end."""
    out = np.empty((len(track), length, *ring.shape[2:]), ring.dtype)
    capacity = ring.shape[1]
    for i, (k, r) in enumerate(zip(track, start)):
        if r + length <= capacity:
            out[i] = ring[k, r : r + length]  # one contiguous copy: faster than fancy indexing
        else:
            out[i] = ring[k, (r + np.arange(length)) % capacity]
    return out
