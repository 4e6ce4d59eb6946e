"""The Exp(1) draws behind `sample_index` (argmax p / q, q ~ Exp(1)): `Tensor.exponential_` against
`exponential_noise` (`nn/dists.py`) on one thread. It prints the milliseconds of each for the 131k draws of
one imagined step of the size1m DreamerV3 (`[1024 · 32, 4]`, median of 50) and whether the numbers and the
generator's state agree over 12M draws; then seconds per DreamerV3 update (`dreamer_speed.py`'s batch,
vector inputs) with either draw, alternated in one process so that both share the machine's load (median
of `--updates` each), eager and with `agent.compile=true`.
Run with `python benchmarks/exponential_speed.py [--updates 6] [--presets dreamerv3 dreamerv3_size12m]`
(`--presets` alone: the draws only).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from dreamer_speed import batch

import worldmodels.nn.dists as dists
from worldmodels.config import load_config
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent

FAST = dists.exponential_noise


def scalar(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The draw as it was: torch's own `exponential_`."""
    return torch.empty_like(like).exponential_(1, generator=generator)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[repeats // 2]


def same_numbers(draws: int = 12_000_000, chunk: int = 600_000) -> bool:
    ours, theirs = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for _ in range(draws // chunk):
        like = torch.empty(chunk // 4, 4)
        if not torch.equal(FAST(like, ours), scalar(like, theirs)):
            return False
    return torch.equal(ours.get_state(), theirs.get_state())


def update_seconds(preset: str, overrides: list[str], updates: int) -> dict[str, float]:
    obs = ObsSpec((4,), "float32")
    agent = build_agent(load_config(preset, ["device=cpu", "agent.report_every=0", *overrides]), obs, ActSpec(True, 2))
    data = batch(obs)
    for _ in range(2):  # warm up (and compile)
        agent.update(data)
    times: dict[str, list[float]] = {"exponential_": [], "exponential_noise": []}
    try:
        for _ in range(updates):
            for name, draw in (("exponential_", scalar), ("exponential_noise", FAST)):
                dists.exponential_noise = draw
                start = time.perf_counter()
                agent.update(data)
                times[name].append(time.perf_counter() - start)
    finally:
        dists.exponential_noise = FAST
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=6)
    parser.add_argument("--presets", nargs="*", default=["dreamerv3", "dreamerv3_size12m"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    like = torch.empty(1024 * 32, 4)
    print(f"131k draws: exponential_ {median_ms(lambda: scalar(like), 50):.2f} ms, "
          f"exponential_noise {median_ms(lambda: FAST(like), 50):.2f} ms; "
          f"same numbers and generator state over 12M draws: {same_numbers()}", flush=True)  # fmt: skip
    for preset in args.presets:
        for overrides in ([], ["agent.compile=true"]) if preset == "dreamerv3" else ([],):
            s = update_seconds(preset, overrides, args.updates)
            label = " ".join([preset, *overrides])
            print(f"{label}: {s['exponential_']:.3f} s → {s['exponential_noise']:.3f} s per update", flush=True)


if __name__ == "__main__":
    main()
