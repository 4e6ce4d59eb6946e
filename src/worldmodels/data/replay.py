"""Sequence replay: one FIFO ring buffer per environment stream, sampled as `[B, T, ...]` windows.

Each row is one time step of one environment: the observation, the action that led to it (zeros at
an episode's first step), the reward received on arriving, `is_first` and `is_terminal`, and any
per-step data the agent stores. By default a window may span an episode boundary; the `is_first` flag
marks where the new episode begins, so models never mix episodes unknowingly (`data/windows.py` draws
the windows, and can keep them within episodes, padded or not). Observations may be dicts
(`{"image": ..., "state": ...}`); they are stored flat as `obs/image`, `obs/state`.

On disk (`save`/`load`) the rows live in immutable chunk files of `CHUNK` rows per stream, written
once and shared by every checkpoint that still needs them; a checkpoint itself holds only the
unfinished tail of each stream and the list of chunks (with their sha256), so saving a replay of a
million frames writes only what is new since the last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.data.files import load_npz, sha256
from worldmodels.data.windows import PADDED, Boundary, Ends, Recent, Windows
from worldmodels.errors import CheckpointError, ConfigError

CHUNK = 1024


def flatten(records: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in records.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, sep, rest = key.partition("/")
        if sep:
            out.setdefault(head, {})[rest] = value
        else:
            out[key] = value
    return out


class Replay:
    """`capacity` steps over `num_streams` streams. With `priority=(α, β)` a window is sampled in
    proportion to its start row's priority^α and carries the importance weight (N·P)^−β / max."""

    def __init__(self, capacity: int, num_streams: int, seed: int, priority: tuple[float, float] | None = None):
        self.num_streams = num_streams
        self.stream_capacity = max(capacity // num_streams, 2)
        self.data: dict[str, np.ndarray] = {}  # flat key → [S, capacity, ...]
        self.written = np.zeros(num_streams, np.int64)  # rows ever written, per stream
        self.count = np.zeros(num_streams, np.int64)  # rows held, per stream
        self.rng = np.random.default_rng(seed)
        self.priority = priority
        self.priorities = np.zeros((num_streams, self.stream_capacity), np.float64) if priority else None
        self.max_priority = 1.0
        self.chunks: list[list[dict[str, Any]]] = [[] for _ in range(num_streams)]  # saved chunks per stream

    def __len__(self) -> int:
        return int(self.count.sum())

    @property
    def added(self) -> int:
        return int(self.written.sum())

    @property
    def pos(self) -> np.ndarray:
        """Ring position of the next row written, per stream."""
        return self.written % self.stream_capacity

    def add(self, records: dict[str, Any], streams: np.ndarray) -> None:
        """Append rows `records[k][j]` to stream `streams[j]`, in order."""
        flat = flatten(records)
        if not self.data:
            for key, value in flat.items():
                self.data[key] = np.zeros((self.num_streams, self.stream_capacity, *value.shape[1:]), value.dtype)
        streams = np.asarray(streams)
        for s in np.unique(streams):
            rows = np.flatnonzero(streams == s)[-self.stream_capacity :]  # in order; more than fit: the newest
            ring = (self.written[s] + np.arange(len(rows))) % self.stream_capacity
            for key, store in self.data.items():
                store[s, ring] = flat[key][rows]
            if self.priorities is not None:
                self.priorities[s, ring] = self.max_priority  # new rows are sampled soon
            self.written[s] += len(rows)
            self.count[s] = min(self.count[s] + len(rows), self.stream_capacity)

    def extend(self, other: Replay) -> None:
        """Append every row `other` holds, its stream s after this one's stream s; the first row of each is
        marked an episode's first (with no action), so that no window joins the two."""
        for s in range(other.num_streams):
            if not other.count[s]:
                continue
            rows = other._rows(s, int(other.written[s] - other.count[s]), int(other.written[s]))
            rows["is_first"], rows["action"] = rows["is_first"].copy(), rows["action"].copy()
            rows["is_first"][0], rows["action"][0] = True, 0
            self.add(rows, np.full(int(other.count[s]), s))

    def windows(self, length: int, boundary: Boundary = "cross") -> Windows:
        """The windows of `length` steps `boundary` allows in what the streams hold (`data/windows.py`)."""
        firsts = None if boundary == "cross" else self._flagged("is_first")  # where episodes begin
        return Windows.of(self.count, length, boundary, firsts)

    def can_sample(self, length: int, boundary: Boundary = "cross") -> bool:
        return self.windows(length, boundary).total > 0

    def sample(
        self,
        batch: int,
        length: int,
        boundary: Boundary = "cross",
        recent: Recent | None = None,
        ends: Ends | None = None,
    ) -> dict[str, Any]:
        """`batch` windows of `length` consecutive steps of one stream each: arrays `[B, T, ...]`, drawn
        as `boundary`, `recent` and `ends` say (`data/windows.py`; padded windows add `mask` `[B, T]`).

        Prioritised replay adds `index` `[B]` (the start rows, for `update_priorities`) and `weight` `[B]`.
        """
        windows = self.windows(length, boundary)
        if windows.total == 0:
            within = "" if boundary == "cross" else " inside one episode"
            raise ValueError(f"replay holds no sequence of length {length}{within} yet ({len(self)} steps stored)")
        oldest = (self.written - self.count) % self.stream_capacity
        extra, terminal = {}, None if ends is None else (ends, self._flagged("is_terminal"))
        if self.priorities is None:
            drawn = windows.draw(batch, self.rng, recent, ends=terminal)
        elif boundary in PADDED:
            raise ConfigError(f"prioritised replay draws whole windows: boundary 'cross' or 'within', not '{boundary}'")
        else:
            alpha, beta = self.priority
            seg, start = windows.every()
            stream = windows.track[seg]
            rows = (oldest[stream] + start) % self.stream_capacity
            p = self.priorities[stream, rows] ** alpha
            p = p / p.sum()
            drawn = windows.draw(batch, self.rng, recent, p, terminal)
            weight = (windows.total * p[drawn.pick]) ** -beta
            extra = {
                "index": drawn.track * self.stream_capacity + rows[drawn.pick],
                "weight": (weight / weight.max()).astype(np.float32),
            }
        return {**unflatten(windows.take(self.data, drawn, oldest)), **extra}

    def _flagged(self, key: str) -> list[np.ndarray]:
        """Per stream, the rows (counted from its oldest held) where the flag `key` is set (none if not stored)."""
        flags = self.data.get(key)
        return [
            np.flatnonzero(flags[s, np.arange(self.written[s] - self.count[s], self.written[s]) % self.stream_capacity])
            if self.count[s] and flags is not None
            else np.zeros(0, np.int64)
            for s in range(self.num_streams)
        ]

    def update_priorities(self, index: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priority of the windows starting at `index` (from `sample`) to `priorities` `[B]`."""
        priorities = np.asarray(priorities, np.float64) + 1e-6
        self.priorities.reshape(-1)[index] = priorities
        self.max_priority = max(self.max_priority, float(priorities.max()))

    # ------------------------------------------------------------------ persistence

    def _rows(self, s: int, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows with logical indices [start, stop) of stream `s` (all still held)."""
        ring = np.arange(start, stop) % self.stream_capacity
        return {key: store[s, ring] for key, store in self.data.items()}

    def unsaved_bytes(self) -> int:
        """Bytes of the rows held that no chunk file has yet (what the next `save` writes, about)."""
        row = sum(store[0, 0].nbytes for store in self.data.values())
        saved = [c[-1]["start"] + c[-1]["rows"] if c else 0 for c in self.chunks]
        first = self.written - self.count
        return int(row * (self.written - np.maximum(saved, first)).clip(0).sum())

    def save(self, directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Write the chunks completed since the last save to `directory`; return the tail arrays and
        the JSON metadata a checkpoint must keep to `load` this exact replay."""
        directory.mkdir(parents=True, exist_ok=True)
        tail: dict[str, np.ndarray] = {}
        for s in range(self.num_streams):
            first = int(self.written[s] - self.count[s])  # oldest logical row held
            self.chunks[s] = [c for c in self.chunks[s] if c["start"] + c["rows"] > first]
            start = self.chunks[s][-1]["start"] + self.chunks[s][-1]["rows"] if self.chunks[s] else 0
            start = max(start, first)
            # chunks end on multiples of CHUNK; the first may begin later when older rows were evicted unsaved
            while (start // CHUNK + 1) * CHUNK <= self.written[s]:
                stop = (start // CHUNK + 1) * CHUNK
                name = f"s{s:03d}_{start:012d}.npz"
                with (directory / name).open("wb") as f:
                    np.savez(f, **self._rows(s, start, stop))
                self.chunks[s].append(
                    {"name": name, "start": start, "rows": stop - start, "sha256": sha256(directory / name)}
                )
                start = stop
            for key, value in self._rows(s, start, int(self.written[s])).items():
                tail[f"{s}/{key}"] = value
        if self.priorities is not None:
            tail["priorities"] = self.priorities
        meta = {
            "stream_capacity": self.stream_capacity,
            "written": self.written.tolist(),
            "count": self.count.tolist(),
            "chunks": self.chunks,
            "max_priority": self.max_priority,
            "rng": json.loads(json.dumps(self.rng.bit_generator.state)),
        }
        return tail, meta

    def load(self, directory: Path, tail: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore the replay saved by `save`; every chunk is checked against its sha256."""
        if meta["stream_capacity"] != self.stream_capacity or len(meta["written"]) != self.num_streams:
            raise ValueError("saved replay has a different capacity or number of streams than this run")
        self.written = np.asarray(meta["written"], np.int64)
        self.count = np.asarray(meta["count"], np.int64)
        self.chunks = meta["chunks"]
        self.data = {}
        for s in range(self.num_streams):
            first = int(self.written[s] - self.count[s])
            pieces = []
            for chunk in self.chunks[s]:
                path = directory / chunk["name"]
                if not path.exists():
                    raise CheckpointError(f"replay chunk '{path}' is missing; the replay cannot be restored")
                if sha256(path) != chunk["sha256"]:
                    raise CheckpointError(
                        f"replay chunk '{path}' is corrupt or was modified: it does not match its sha256 in the "
                        "checkpoint's state.json; the replay cannot be restored"
                    )
                pieces.append((chunk["start"], load_npz(path)))
            tail_rows = {k.split("/", 1)[1]: v for k, v in tail.items() if k.startswith(f"{s}/")}
            tail_start = int(self.written[s]) - len(next(iter(tail_rows.values()), []))
            pieces.append((tail_start, tail_rows))
            for start, rows in pieces:
                for key, value in rows.items():
                    if key not in self.data:
                        shape = (self.num_streams, self.stream_capacity, *value.shape[1:])
                        self.data[key] = np.zeros(shape, value.dtype)
                    logical = np.arange(start, start + len(value))
                    keep = logical >= first
                    self.data[key][s, logical[keep] % self.stream_capacity] = value[keep]
        if self.priorities is not None:
            self.priorities = tail["priorities"].copy()
        self.max_priority = meta["max_priority"]
        self.rng.bit_generator.state = meta["rng"]

    def referenced_chunks(self) -> set[str]:
        return {c["name"] for stream in self.chunks for c in stream}
