"""What a short same-seed training run does, as one hash: `python -m worldmodels.train.probe PRESET [KEY=VALUE ...]`.

A suite cell (`suite.py`) stays valid while the code it ran still behaves the same on it. The hash covers
every tensor of the agent's state at the end of the run and the return of the evaluation that ends it:
a change anywhere in the code (agent, trainer, environment wrappers, replay) that alters what this run
learns or how it acts changes the hash; a change the run never reaches (another agent, a new kind in the
registry, a report) leaves it. The run is one process on one torch thread with a fixed seed, so the same
code gives the same hash bit for bit; it is short (the overrides given, typically a hundred env steps after
a hundred of prefill with small networks), so it can be taken for every cell whose source has changed.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import torch

from worldmodels.config import load_config
from worldmodels.train.loop import Trainer


def probe(preset: str, overrides: list[str]) -> str:
    """The hash of a run of `preset` with `overrides` (module docstring)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(load_config(preset, [*overrides, "train.threads=1"]), Path(folder) / "run")
        try:
            summary = trainer.run()
        finally:
            trainer.close()
    digest = hashlib.sha256()
    for name, tensor in trainer.agent.state_dict().items():  # in the order the modules were built
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr((summary["step"], summary["updates"], summary.get("eval/return"))).encode())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    print(probe(sys.argv[1], sys.argv[2:]))
