"""Sequence replay: one FIFO ring buffer per environment stream, sampled as `[B, T, ...]` windows.

Each row is one time step of one environment: the observation, the action that led to it (zeros at
an episode's first step), the reward received on arriving, `is_first` and `is_terminal`. A window
may span an episode boundary; the `is_first` flag marks where the new episode begins, so models
never mix episodes unknowingly.
"""

from __future__ import annotations

import json

import numpy as np


class Replay:
    """`capacity` steps over `num_streams` streams. With `priority=(α, β)` a window is sampled in
    proportion to its start row's priority^α and carries the importance weight (N·P)^−β / max."""

    def __init__(self, capacity: int, num_streams: int, seed: int, priority: tuple[float, float] | None = None):
        self.num_streams = num_streams
        self.stream_capacity = max(capacity // num_streams, 2)
        self.data: dict[str, np.ndarray] = {}
        self.pos = np.zeros(num_streams, np.int64)  # next row written, per stream
        self.count = np.zeros(num_streams, np.int64)  # rows held, per stream
        self.added = 0
        self.rng = np.random.default_rng(seed)
        self.priority = priority
        if priority is not None:
            self.priorities = np.zeros((num_streams, self.stream_capacity), np.float64)
            self.max_priority = 1.0

    def __len__(self) -> int:
        return int(self.count.sum())

    def add(self, records: dict[str, np.ndarray], streams: np.ndarray) -> None:
        """Append rows `records[k][j]` to stream `streams[j]`, in order."""
        if not self.data:
            for key, value in records.items():
                shape = (self.num_streams, self.stream_capacity, *value.shape[1:])
                self.data[key] = np.zeros(shape, value.dtype)
        for j, s in enumerate(streams):
            p = self.pos[s]
            for key, store in self.data.items():
                store[s, p] = records[key][j]
            if self.priority is not None:
                self.priorities[s, p] = self.max_priority  # new rows are sampled soon
            self.pos[s] = (p + 1) % self.stream_capacity
            self.count[s] = min(self.count[s] + 1, self.stream_capacity)
        self.added += len(streams)

    def can_sample(self, length: int) -> bool:
        return bool((self.count >= length).any())

    def sample(self, batch: int, length: int) -> dict[str, np.ndarray]:
        """`batch` windows of `length` consecutive steps of one stream each: arrays `[B, T, ...]`.

        Prioritised replay adds `index` `[B]` (the start rows, for `update_priorities`) and `weight` `[B]`.
        """
        starts_per_stream = np.maximum(self.count - length + 1, 0)
        total = starts_per_stream.sum()
        if total == 0:
            raise ValueError(f"replay holds no sequence of length {length} yet ({len(self)} steps stored)")
        oldest_all = (self.pos - self.count) % self.stream_capacity
        extra = {}
        if self.priority is None:
            flat = self.rng.integers(total, size=batch)
            stream = np.searchsorted(np.cumsum(starts_per_stream), flat, side="right")
            offset = flat - (np.cumsum(starts_per_stream) - starts_per_stream)[stream]
        else:
            alpha, beta = self.priority
            # valid start rows, as (stream, offset from that stream's oldest row)
            stream_all = np.repeat(np.arange(self.num_streams), starts_per_stream)
            offset_all = np.arange(total) - np.repeat(
                np.cumsum(starts_per_stream) - starts_per_stream, starts_per_stream
            )
            rows_all = (oldest_all[stream_all] + offset_all) % self.stream_capacity
            p = self.priorities[stream_all, rows_all] ** alpha
            p = p / p.sum()
            pick = self.rng.choice(total, size=batch, p=p)
            stream, offset = stream_all[pick], offset_all[pick]
            weight = (total * p[pick]) ** -beta
            extra = {
                "index": stream * self.stream_capacity + rows_all[pick],
                "weight": (weight / weight.max()).astype(np.float32),
            }
        index = (oldest_all[stream][:, None] + offset[:, None] + np.arange(length)) % self.stream_capacity
        return {**{key: store[stream[:, None], index] for key, store in self.data.items()}, **extra}

    def update_priorities(self, index: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priority of the windows starting at `index` (from `sample`) to `priorities` `[B]`."""
        priorities = np.asarray(priorities, np.float64) + 1e-6
        self.priorities.reshape(-1)[index] = priorities
        self.max_priority = max(self.max_priority, float(priorities.max()))

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays (only the filled part of each stream) and JSON-safe metadata."""
        filled = int(self.count.max()) if self.data else 0
        arrays = {f"data.{k}": v[:, :filled] for k, v in self.data.items()}
        arrays.update(pos=self.pos, count=self.count)
        meta = {
            "stream_capacity": self.stream_capacity,
            "added": self.added,
            "rng": json.loads(json.dumps(self.rng.bit_generator.state)),
        }
        if self.priority is not None:
            arrays["priorities"] = self.priorities
            meta["max_priority"] = self.max_priority
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        if meta["stream_capacity"] != self.stream_capacity or len(arrays["pos"]) != self.num_streams:
            raise ValueError("saved replay has a different capacity or number of streams than this run")
        self.data = {}
        for key, value in arrays.items():
            if key.startswith("data."):
                store = np.zeros((self.num_streams, self.stream_capacity, *value.shape[2:]), value.dtype)
                store[:, : value.shape[1]] = value
                self.data[key[5:]] = store
        self.pos = arrays["pos"].copy()
        self.count = arrays["count"].copy()
        self.added = meta["added"]
        self.rng.bit_generator.state = meta["rng"]
        if self.priority is not None:
            self.priorities = arrays["priorities"].copy()
            self.max_priority = meta["max_priority"]
