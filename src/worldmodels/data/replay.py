"""Sequence replay: one FIFO ring buffer per environment stream, sampled as `[B, T, ...]` windows.

Each row is one time step of one environment: the observation, the action that led to it (zeros at
an episode's first step), the reward received on arriving, `is_first` and `is_terminal`, and any
per-step data the agent stores. A window may span an episode boundary; the `is_first` flag marks
where the new episode begins, so models never mix episodes unknowingly. Observations may be dicts
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
from worldmodels.errors import CheckpointError

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

    def can_sample(self, length: int) -> bool:
        return bool((self.count >= length).any())

    def sample(self, batch: int, length: int) -> dict[str, Any]:
        """`batch` windows of `length` consecutive steps of one stream each: arrays `[B, T, ...]`.

        Prioritised replay adds `index` `[B]` (the start rows, for `update_priorities`) and `weight` `[B]`.
        """
        starts = np.maximum(self.count - length + 1, 0)  # valid window starts per stream
        total = int(starts.sum())
        if total == 0:
            raise ValueError(f"replay holds no sequence of length {length} yet ({len(self)} steps stored)")
        oldest = (self.written - self.count) % self.stream_capacity
        before = np.cumsum(starts) - starts
        extra = {}
        if self.priorities is None:
            flat = self.rng.integers(total, size=batch)
            stream = np.searchsorted(np.cumsum(starts), flat, side="right")
            offset = flat - before[stream]
        else:
            alpha, beta = self.priority
            stream_all = np.repeat(np.arange(self.num_streams), starts)
            offset_all = np.arange(total) - np.repeat(before, starts)
            rows_all = (oldest[stream_all] + offset_all) % self.stream_capacity
            p = self.priorities[stream_all, rows_all] ** alpha
            p = p / p.sum()
            pick = self.rng.choice(total, size=batch, p=p)
            stream, offset = stream_all[pick], offset_all[pick]
            weight = (total * p[pick]) ** -beta
            extra = {
                "index": stream * self.stream_capacity + rows_all[pick],
                "weight": (weight / weight.max()).astype(np.float32),
            }
        start = (oldest[stream] + offset) % self.stream_capacity
        rows = {key: self._windows(store, stream, start, length) for key, store in self.data.items()}
        return {**unflatten(rows), **extra}

    def _windows(self, store: np.ndarray, stream: np.ndarray, start: np.ndarray, length: int) -> np.ndarray:
        """`store[stream[i], start[i] : start[i] + length]` for every i (wrapping around the ring)."""
        out = np.empty((len(stream), length, *store.shape[2:]), store.dtype)
        for i, (s, r) in enumerate(zip(stream, start)):
            if r + length <= self.stream_capacity:
                out[i] = store[s, r : r + length]  # one contiguous copy: faster than fancy indexing
            else:
                out[i] = store[s, (r + np.arange(length)) % self.stream_capacity]
        return out

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
