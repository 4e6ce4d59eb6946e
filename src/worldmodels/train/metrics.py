"""Metrics between log lines: updates report 0-dim device tensors (`agents.base.Metrics`), which stay on the
device until a line is written, and are then read with one host transfer (one sync per log line, not one
per metric per update)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch

from worldmodels.agents.base import Metrics


def to_host(metrics: Mapping[str, torch.Tensor | float | None]) -> dict[str, float | None]:
    """`metrics` with every tensor read as a float: one transfer per device the tensors are on."""
    out: dict[str, float | None] = {k: v for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    by_device: dict[torch.device, list[str]] = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            by_device.setdefault(value.device, []).append(key)
    for keys in by_device.values():
        values = torch.stack([metrics[k].detach().float().reshape(()) for k in keys]).tolist()
        out |= dict(zip(keys, values))
    return {k: out[k] for k in metrics}  # in the order given


class Means:
    """The mean of each named metric over the values added since the last `pop`: tensors are stacked and
    averaged on their device, floats (episode returns) on the host."""

    def __init__(self) -> None:
        self._values: dict[str, list[torch.Tensor | float]] = {}

    def add(self, metrics: Metrics) -> None:
        for key, value in metrics.items():
            self._values.setdefault(key, []).append(value)

    def __bool__(self) -> bool:
        return bool(self._values)

    def pop(self) -> dict[str, float]:
        """The means as floats (one host read), and start afresh."""
        means = {
            k: torch.stack(v).float().mean() if isinstance(v[0], torch.Tensor) else float(np.mean(v))
            for k, v in self._values.items()
        }
        self._values.clear()
        return to_host(means)


class Stopwatch:
    """Where a run's wall time goes between log lines: `with clock.part("env"): …` adds the block's seconds to
    its part, and `pop` gives each part's share of the time since the last pop (`perf/share_<part>`, the
    rest as `perf/share_other`). On a GPU these are host times: the device's queued work counts where the
    host waits for it (a metric read, an action copied back)."""

    PARTS = ("act", "env", "sample", "update", "eval", "checkpoint")

    def __init__(self) -> None:
        self._spent = dict.fromkeys(self.PARTS, 0.0)
        self._since = time.perf_counter()

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._spent[name] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        now = time.perf_counter()
        total = max(now - self._since, 1e-9)
        shares = {f"perf/share_{name}": spent / total for name, spent in self._spent.items()}
        shares["perf/share_other"] = max(0.0, 1.0 - sum(shares.values()))
        self._spent, self._since = dict.fromkeys(self.PARTS, 0.0), now
        return shares
