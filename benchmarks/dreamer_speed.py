"""Seconds per DreamerV3 update (world model + actor + critic) at batch 16×64, for the official size1m
and size12m models, on vector (CartPole-like, 4 dims) and 64×64×3 pixel inputs, and for size1m with
the RSSM's steps, the two-hot losses and the frame encoder and decoder compiled (`agent.compile=true`; the
compile itself happens in the warm-up), with that and every forward pass in bfloat16 together, or with
imagined rollouts from 256 of the 1,024 posterior states (`agent.imagination_starts=256`), or with the pixel
encoder's and decoder's convolutions in bfloat16 (`precision: bfloat16`, float32 weights and outputs), or
with every forward pass of the update in bfloat16 (`agent.precision=bfloat16`).
Run with `wm bench dreamer_speed` or `python benchmarks/dreamer_speed.py --out result.json`; with
`--peer PYTHON SCRIPT` (`wm bench dreamer_speed --peer-venv DIR`), SheepRL's update of the same sizes
(`../shared/peers/peer_sheeprl_dv3.py`, its `size1m_like` configurations) is timed right after ours, and each
row of the same work gets its seconds and the speed ratio peer / ours (higher is better for ours): the size1m
vector update, and on pixels the conv stacks of depth 4 (4, 8, 16, 32 channels, the official size1m's depth;
the `dreamerv3` preset's image depth is 16, four times the channels).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

from worldmodels.config import load_config
from worldmodels.nn.precision import cpu_has_bfloat16
from worldmodels.spaces import ActSpec, ObsSpec
from worldmodels.train.loop import build_agent

BF16 = ("agent.encoder.image.precision=bfloat16", "agent.decoder.image.precision=bfloat16")
ALL_BF16 = ("agent.precision=bfloat16",)  # every forward pass of the update under autocast
COMPILE = ("agent.compile=true",)  # the RSSM's steps, the two-hot losses, the frame encoder and decoder
DEPTH4 = ("agent.encoder.image.depth=4", "agent.decoder.image.depth=4")  # 4, 8, 16, 32 channels, as the peer's
CASES = [  # preset, inputs, overrides, whether the peer's size1m-like update does the same work
    ("dreamerv3", "vector", (), True),
    ("dreamerv3", "vector", COMPILE, True),
    ("dreamerv3", "vector", ("agent.imagination_starts=256",), False),
    ("dreamerv3", "vector", ALL_BF16, True),
    ("dreamerv3", "vector", (*COMPILE, *ALL_BF16), True),
    ("dreamerv3", "pixels", (), False),
    ("dreamerv3", "pixels", COMPILE, False),
    ("dreamerv3", "pixels", ("agent.imagination_starts=256",), False),
    ("dreamerv3", "pixels", BF16, False),
    ("dreamerv3", "pixels", DEPTH4, True),
    ("dreamerv3", "pixels", (*DEPTH4, *BF16), True),
    ("dreamerv3", "pixels", (*DEPTH4, *ALL_BF16), True),
    ("dreamerv3", "pixels", (*DEPTH4, *COMPILE), True),
    ("dreamerv3", "pixels", (*DEPTH4, *COMPILE, *ALL_BF16), True),
    ("dreamerv3_size12m", "vector", (), False),
    ("dreamerv3_size12m", "pixels", (), False),
]


def batch(obs: ObsSpec, B: int = 16, T: int = 64) -> dict[str, torch.Tensor]:
    if obs.is_image:
        frames = torch.randint(0, 256, (B, T, *obs.shape), dtype=torch.uint8)
    else:
        frames = torch.randn(B, T, *obs.shape)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": frames,
        "action": torch.nn.functional.one_hot(torch.randint(2, (B, T)), 2).float(),
        "reward": torch.randn(B, T),
        "is_first": is_first,
        "is_terminal": torch.zeros(B, T, dtype=torch.bool),
    }


def measure(preset: str, inputs: str, overrides: tuple[str, ...], repeats: int, device: str) -> float:
    obs = ObsSpec((64, 64, 3), "uint8") if inputs == "pixels" else ObsSpec((4,), "float32")
    cfg = load_config(preset, [f"device={device}", "agent.report_every=0", *overrides])
    agent = build_agent(cfg, obs, ActSpec(True, 2))
    data = {k: v.to(agent.device) for k, v in batch(obs).items()}
    for _ in range(2):  # warm up (and compile)
        agent.update(data)
    times = []
    for _ in range(repeats):
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        agent.update(data)
        if agent.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peer_seconds(python: str, script: str, threads: int) -> dict[str, float]:
    """SheepRL's median seconds per update of its size1m-like model, per input kind."""
    cmd = [python, script, "--only", "size1m_like", "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {row["obs"]: row["s_per_update_median"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the peer's too)")
    parser.add_argument("--peer", nargs=2, metavar=("PYTHON", "SCRIPT"), help="a peer's python and timing script")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    native_bf16 = cpu_has_bfloat16()
    slow_bf16 = args.device == "cpu" and not native_bf16
    for preset, inputs, overrides, _ in CASES:
        if slow_bf16 and any("precision=bfloat16" in o for o in overrides):  # fallback kernels, tens of times
            # slower: not timed
            seconds = "not run: this CPU has no native bfloat16"
        else:
            seconds = f"{measure(preset, inputs, overrides, args.repeats, args.device):.2f}"
        rows.append([preset, inputs, " ".join(overrides) or "–", args.device, seconds])
        print(rows[-1], flush=True)
    columns = ["preset", "inputs", "overrides", "device", "seconds per update"]
    bf16 = "with" if native_bf16 else "without"
    cpu = f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {bf16} native bfloat16"
    notes = f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}."
    if args.peer:
        peer = peer_seconds(*args.peer, args.threads)
        columns += ["SheepRL seconds", "SheepRL / ours"]
        for row, (_, inputs, _, same_work) in zip(rows, CASES):
            theirs = peer.get(inputs) if same_work and args.device == "cpu" else None
            timed = theirs and not row[4].startswith("not run")
            row += [f"{theirs:.2f}", f"{theirs / float(row[4]):.2f}"] if timed else ["", ""]
        notes += " SheepRL 0.8.4 (`peer_sheeprl_dv3.py`, size1m_like, float32) ran right after ours, same threads."
    result = {
        "description": "Median seconds per DreamerV3 update (world model + actor + critic), batch 16×64, "
        "imagination horizon 15 from all 1024 posterior states.",
        "columns": columns,
        "rows": rows,
        "notes": notes,
    }
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
