"""Stream speed: seconds per update of every update stream of the paper-size presets (IRIS, STORM, DIAMOND,
Genie, and DreamerV3's Atari preset for scale), each agent built as `wm train` builds it (`load_config`,
seeded, `build_agent`) for Atari's 64×64×3 uint8 frames and discrete actions, without an environment.

Each stream's batches are drawn by its own `SampleSpec` from a replay filled with random episodes (uint8
noise frames, one-hot random actions, rare unit rewards, episodes ending in a terminal step), moved to the
device as the trainer moves them, and handed to the stream's update method: the batches training sees.
A stream that follows another (DreamerV3's behaviour) runs right after its lead's update, as in training;
streams that train nothing (the open-loop report) are left out. Per stream: the median of up to `--repeats`
updates after two warm-up updates (fewer repeats where one update would take the stream past `--seconds`),
with `torch.cuda.synchronize` around each on a GPU; the time to draw a batch and move it; the parameters of
the modules it trains; on a GPU the peak memory. Last, per preset, the dream as `wm dream` and evaluation
run it (`open_loop`, batch 1): seconds per dreamed frame from 2 real ones.

    python benchmarks/stream_speed.py --out result.json [--device cuda] [--presets iris_atari ...]
    python benchmarks/stream_speed.py --out result.json --quick   # the tiny presets on MinAtar-sized frames

On a machine without gymnasium (which importing the package needs: `envs/continuous_cartpole.py`), its pure-
Python wheels can go on the path without an install (the GPU machine lent to sessions here, from the repo
root): `pip download --no-deps -d wheels gymnasium==1.4.0 farama-notifications==0.0.6 cloudpickle==3.1.3`,
then `PYTHONPATH=src:wheels/gymnasium-1.4.0-py3-none-any.whl:wheels/farama_notifications-0.0.6-py3-none-any.whl:`
`wheels/cloudpickle-3.1.3-py3-none-any.whl python3 benchmarks/stream_speed.py --device cuda --out OUT.json`.

A Genie stream's windows cross episode seams here (replay's default) where its recorded dataset keeps
them within episodes: the same arrays, so the same work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.agents.base import Agent, to_tensor
from worldmodels.config import load_config
from worldmodels.data.replay import Replay
from worldmodels.data.sources import OnlineSource, SampleSpec
from worldmodels.phases import Stream
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent, resolve_device

ATARI, MINATAR = ObsSpec((64, 64, 3), "uint8"), ObsSpec((10, 10, 4), "uint8")
TINY_DREAMER = [  # DreamerV3 in seconds on a CPU, for --quick
    "agent.rssm.deter=32",
    "agent.rssm.hidden=16",
    "agent.rssm.stoch=4",
    "agent.rssm.classes=4",
    "agent.imagination_horizon=4",
    "agent.encoder.image.depth=4",
    "agent.decoder.image.depth=4",
    "agent.reward.hidden=16",
    "agent.cont.hidden=16",
    "agent.discrete_actor.hidden=16",
    "agent.critic.hidden=16",
    "train.batch_size=4",
    "train.seq_len=8",
]
PRESETS = {  # name: the preset and its overrides, then the --quick stand-in
    "iris_atari": (("iris_atari", []), ("iris_tiny", [])),
    "storm_atari": (("storm_atari", []), ("dreamerv3_storm", TINY_DREAMER)),
    "diamond_atari": (("diamond_atari", []), ("diamond_tiny", [])),
    "genie_gpu": (("genie_gpu", []), ("genie_tiny", [])),
    "dreamerv3_atari": (("dreamerv3_atari", []), ("dreamerv3", TINY_DREAMER)),
}
REPLAY_STEPS = 2048
DREAM_CONTEXT, DREAMED = 2, 8
COLUMNS = [
    "preset",
    "stream",
    "batch (B x T x frame)",
    "params (M)",
    "seconds",
    "draw (s)",
    "updates timed",
    "peak GiB",
]


def random_replay(obs: ObsSpec, act: ActSpec, agent: Agent, seed: int) -> Replay:
    """`REPLAY_STEPS` rows of random episodes (20 to 400 steps) in one stream, laid out as an `EnvPool`
    records them: the first step of each with no action, no reward and `is_first`, the last `is_terminal`."""
    rng = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < REPLAY_STEPS:
        lengths.append(int(rng.integers(20, 401)))
    n = sum(lengths)
    starts = np.cumsum([0, *lengths[:-1]])
    ends = np.cumsum(lengths) - 1
    records = {
        "obs": rng.integers(0, 256, (n, *obs.shape), dtype=np.uint8),
        "action": act.random(n, rng),
        "reward": (rng.random(n) < 0.05).astype(np.float32),
        "is_first": np.isin(np.arange(n), starts),
        "is_terminal": np.isin(np.arange(n), ends),
    }
    records["action"][starts], records["reward"][starts] = 0.0, 0.0
    for key, (shape, dtype) in agent.record_spec().items():
        records[key] = np.zeros((n, *shape), dtype)
    replay = Replay(n, 1, seed, agent.priority)
    replay.add(records, np.zeros(n, np.int64))
    return replay


class Clock:
    """Wall time of calls on `device`, the device's queued work included."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], Any]) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start


def repeats_within(first: float, repeats: int, seconds: float) -> int:
    """How many of `repeats` timed calls fit in `seconds` at `first` seconds each (at least one)."""
    return max(1, min(repeats, int(seconds / max(first, 1e-9))))


def parameters(agent: Agent, stream: Stream) -> float:
    """Millions of parameters the stream's optimisers step."""
    opts = [agent.optimizers[name] for name in stream.trains]
    return sum(p.numel() for opt in opts for group in opt.param_groups for p in group["params"]) / 1e6


def time_group(
    agent: Agent, source: OnlineSource, lead: Stream, follow: list[Stream], clock: Clock, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Per stream of a lead and its followers: median seconds per update, draw time and updates timed."""
    streams = [lead, *follow]

    def one() -> tuple[float, list[float]]:
        """Draw a batch and move it; then each stream's update on it, in order (seconds of each)."""
        batch: dict[str, Any] = {}
        drawn = clock(
            lambda: batch.update({k: to_tensor(v, agent.device) for k, v in source.sample(lead.sample).items()})
        )
        return drawn, [clock(lambda s=s: getattr(agent, s.method)(batch)) for s in streams]

    one()
    _, warm = one()  # the second warm-up tells how many repeats fit
    runs = [one() for _ in range(repeats_within(sum(warm), args.repeats, args.seconds))]
    draw = statistics.median(drawn for drawn, _ in runs)
    return {
        s.name: {"seconds": statistics.median(spent[i] for _, spent in runs), "draw": draw, "n": len(runs)}
        for i, s in enumerate(streams)
    }


def time_dream(agent: Agent, source: OnlineSource, clock: Clock, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per dreamed frame of `open_loop` on one episode of `DREAM_CONTEXT` + `DREAMED` frames."""
    episode = source.sample(SampleSpec(1, DREAM_CONTEXT + DREAMED, boundary="within"))
    obs, action = (to_tensor(episode[k][0], agent.device) for k in ("obs", "action"))
    with torch.no_grad():
        first = clock(lambda: agent.open_loop(obs, action, DREAM_CONTEXT))
        n = repeats_within(first, args.repeats, args.seconds)
        times = [clock(lambda: agent.open_loop(obs, action, DREAM_CONTEXT)) for _ in range(n)]
    return {"seconds": statistics.median(times) / DREAMED, "n": n}


def peak(device: torch.device) -> str:
    if device.type != "cuda":
        return "–"
    gib = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return f"{gib:.1f}"


def stream_groups(agent: Agent, train: Any) -> list[tuple[str, Stream, list[Stream]]]:
    """(phase, lead, followers that train something) for every sampling stream the agent declares."""
    groups: list[tuple[str, Stream, list[Stream]]] = []
    for phase in agent.phases(train):
        for stream in phase.streams:
            if stream.sample is not None:
                groups.append((phase.name, stream, []))
            elif stream.trains:
                groups[-1][2].append(stream)
    return groups


def measure(name: str, args: argparse.Namespace, emit: Callable[[list[Any]], None]) -> None:
    """Emit a row per update stream of preset `name`, then one for its dream."""
    preset, overrides = PRESETS[name][1 if args.quick else 0]
    obs = MINATAR if args.quick else ATARI
    act = ActSpec(True, args.actions)
    cfg = load_config(preset, [f"device={args.device}", *overrides])
    torch.manual_seed(cfg.train.seed)  # as the trainer seeds before building
    agent = build_agent(cfg, obs, act)
    device, clock = agent.device, Clock(agent.device)
    source = OnlineSource(random_replay(obs, act, agent, cfg.train.seed))
    label = f"{preset} (tiny)" if overrides else preset
    frame = "x".join(map(str, obs.shape))
    for phase, lead, follow in stream_groups(agent, cfg.train):
        shape = f"{lead.sample.batch_size} x {lead.sample.seq_len} x {frame}"
        try:
            measured = time_group(agent, source, lead, follow, clock, args)
        except torch.cuda.OutOfMemoryError as err:  # the preset's other streams may still fit
            emit([label, f"{phase}/{lead.name}", shape, "", f"failed: {str(err)[:200]}", "", "", peak(device)])
            continue
        memory = peak(device)
        for stream in [lead, *follow]:
            m = measured[stream.name]
            emit(
                [
                    label,
                    f"{phase}/{stream.name}",
                    shape,
                    round(parameters(agent, stream), 2),
                    round(m["seconds"], 4),
                    round(m["draw"], 4),
                    m["n"],
                    memory,
                ]
            )
    dream = time_dream(agent, source, clock, args)
    emit(
        [
            label,
            "open_loop, per dreamed frame",
            f"1 x ({DREAM_CONTEXT} + {DREAMED}) x {frame}",
            round(sum(p.numel() for p in agent.parameters()) / 1e6, 2),
            round(dream["seconds"], 4),
            "–",
            dream["n"],
            peak(device),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=10, help="timed updates per stream, at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per stream, about, at most")
    parser.add_argument("--actions", type=int, default=4, help="discrete actions (Breakout: 4, full Atari set: 18)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--quick", action="store_true", help="tiny stand-ins of each preset on 10x10x4 frames")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.device = resolve_device(args.device).type
    machine = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} thread(s)"
    began, rows = time.perf_counter(), []
    result = {
        "description": (
            "Median seconds per update of each update stream on batches drawn by its own sampler from random "
            "episodes, agents built as `wm train` builds them; the last row of a preset: seconds per frame "
            "dreamed by `open_loop` at batch 1"
        ),
        "columns": COLUMNS,
        "rows": rows,
        "notes": "",
    }

    def emit(row: list[Any]) -> None:
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
        result["notes"] = (
            f"{machine}, torch {torch.__version__}, {args.actions} actions, {'--quick, ' if args.quick else ''}"
            f"float32; {time.perf_counter() - began:.0f} s in all. `params (M)` of the dream row: the whole agent."
        )
        Path(args.out).write_text(json.dumps(result, indent=1))  # after every row: a run stopped early keeps them

    print(" | ".join(COLUMNS), flush=True)
    for preset in args.presets:
        try:
            measure(preset, args, emit)
        except Exception as err:  # one preset that fails (out of memory) leaves the others of a one-shot run
            traceback.print_exc()
            emit([preset, "failed", "", "", f"failed: {type(err).__name__}: {str(err)[:200]}", "", "", ""])
        if args.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
