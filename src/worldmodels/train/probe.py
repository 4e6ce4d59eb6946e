"""What a training run's code does, as one hash: `python -m worldmodels.train.probe PRESET [KEY=VALUE ...]`.

A stored result (a suite cell, a benchmark seed left to resume) stays valid while the code it ran still
behaves the same on its config. The probe checks that with a short run of that config on one torch thread
and a fixed seed (`PROBE`, and the agent's own `probe_overrides` that shrink its planner or stages): its
hash covers the resolved config of the real run, every tensor of the agent's state at the end of the probe
and the return of the evaluation that ends it. A change anywhere in the code (agent, trainer, environment
wrappers, replay) that alters what the probe learns or how it acts changes the hash; a change it never
reaches (another agent, a new kind in the registry, a report) leaves it. The same code gives the same hash
bit for bit. What the probe cannot see is code that only a long run reaches (a schedule's later part).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

from worldmodels.config import load_config
from worldmodels.registry import AGENTS
from worldmodels.schema import to_dict
from worldmodels.train.loop import Trainer

PROBE = [
    "train.prefill=100",
    "train.steps=200",
    "train.eval_every=200",
    "train.eval_episodes=1",
    "env.max_episode_steps=50",
    "train.checkpoint_every=0",
    "train.stop_return=null",
    "train.seed=0",
    "train.threads=1",
]
"""A probe run: a hundred env steps of learning after a hundred of prefill, then one evaluation episode."""


def probe(preset: str, overrides: list[str]) -> str:
    """The hash of the code of a run of `preset` with `overrides` (module docstring)."""
    torch.set_num_threads(1)
    config = load_config(preset, overrides)
    shorter = AGENTS.get(config.agent.name).probe_overrides
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(load_config(preset, [*overrides, *PROBE, *shorter]), Path(folder) / "run")
        try:
            summary = trainer.run()
        finally:
            trainer.close()
    digest = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True, default=str).encode())
    for name, tensor in trainer.agent.state_dict().items():  # in the order the modules were built
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr((summary["step"], summary["updates"], summary.get("eval/return"))).encode())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    print(probe(sys.argv[1], sys.argv[2:]))
