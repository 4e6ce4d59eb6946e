"""What a training run's code does, as one hash: `python -m worldmodels.train.probe PRESET [KEY=VALUE ...]`.

A stored result (a suite cell, a benchmark seed left to resume) stays valid while the code it ran still
behaves the same on its config. The probe checks that with a short run of that config on one torch thread
and a fixed seed (`PROBE`, and the agent's own `probe_overrides` that shrink its planner or stages): its
hash covers every tensor of the agent's state at the end of the probe and the return of the evaluation that
ends it, and beside it the resolved config of the real run is kept key by key. A change anywhere in the code
(agent, trainer, environment wrappers, replay) that alters what the probe learns or how it acts changes the
hash; a change it never reaches (another agent, a new kind in the registry, a report) leaves it. A config
value that changed (a default of a schedule's later part, which the probe never reaches) tells the run apart
too; a key that is new does not while it is at its default (an option added since, doing what the code did
before it), and the probe gives each key's default beside its value for that check. The same code gives the
same hash bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

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


def probe(preset: str, overrides: list[str]) -> dict[str, Any]:
    """What a run of `preset` with `overrides` does (module docstring): `state`, the hash of the agent's
    state and the evaluation after the probe; `config`, the real run's resolved config as dotted keys;
    `defaults`, each key's value with the same components and nothing else set (`defaults`); and `legacy`,
    the hash of state and config together that results stored before 2026-12-05 carry."""
    torch.set_num_threads(1)
    config = load_config(preset, overrides)
    shorter = AGENTS.get(config.agent.name).probe_overrides
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(load_config(preset, [*overrides, *PROBE, *shorter]), Path(folder) / "run")
        try:
            summary = trainer.run()
        finally:
            trainer.close()
    state = hashlib.sha256()
    legacy = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True, default=str).encode())
    for name, tensor in trainer.agent.state_dict().items():  # in the order the modules were built
        for digest in (state, legacy):
            digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    for digest in (state, legacy):
        digest.update(repr((summary["step"], summary["updates"], summary.get("eval/return"))).encode())
    flat = flat_config(config)
    return {
        "state": state.hexdigest()[:16],
        "config": flat,
        "defaults": defaults(flat),
        "legacy": legacy.hexdigest()[:16],
    }


def defaults(flat: dict[str, Any]) -> dict[str, Any]:
    """The config of the dotted `flat` with only its components chosen (every `.name`, outer ones first) and
    every other key at its schema default: what an option added after a run would have done in it."""
    names = sorted((k for k, v in flat.items() if k.endswith(".name") and v is not None), key=lambda k: k.count("."))
    return flat_config(load_config(None, [f"{k}={flat[k]}" for k in names]))


def flat_config(config: Any) -> dict[str, Any]:
    """A resolved config as dotted keys with JSON values (what a stored result keeps)."""
    return json.loads(json.dumps(dotted(to_dict(config)), default=str))


def dotted(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as `{"agent.search.discount": 0.997, ...}`."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2:]), sort_keys=True))
