"""Checkpoints: everything needed to continue a run exactly, written atomically, loaded without pickle.

A checkpoint is a folder `checkpoints/step_<N>/` holding
    weights.safetensors   module weights and buffers
    optim.pt              optimiser states (tensors and numbers only; loaded with weights_only=True)
    <name>.npz            numpy arrays (replay, env pool), loaded with allow_pickle=False
    state.json            counters, RNG states, metadata (with the list of replay chunks it needs)
    manifest.json         format tag and the sha256 of every file above, written last
Replay rows live outside, in immutable chunk files under the run's `replay/` that checkpoints share;
each is verified against the sha256 listed in the checkpoint's state.json when loaded.
It is written into a temporary folder and renamed into place, so a run killed mid-write leaves the
previous checkpoint as the latest complete one. A file that does not match its manifest is refused.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from worldmodels.errors import CheckpointError

FORMAT = "worldmodels-checkpoint-v1"
PREFIX = "step_"


def torch_rng_state() -> dict[str, Any]:
    """torch's CPU (and CUDA) generator states as JSON-ready base64 strings, for a checkpoint's state.json."""
    rng: dict[str, Any] = {"torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()}
    if torch.cuda.is_available():
        rng["cuda"] = [base64.b64encode(s.numpy().tobytes()).decode() for s in torch.cuda.get_rng_state_all()]
    return rng


def set_torch_rng_state(rng: dict[str, Any]) -> None:
    """Restore what `torch_rng_state` recorded (the CUDA states only where CUDA is present)."""

    def decode(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(decode(rng["torch"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([decode(x) for x in rng["cuda"]])


@contextlib.contextmanager
def fitting(path: Path, fix: str) -> Iterator[None]:
    """Load a checkpoint's contents into the run's objects inside this block: a mismatch with the run's
    config (missing keys, shapes) becomes one CheckpointError naming the checkpoint, the error and `fix`."""
    try:
        yield
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint '{path}' does not fit this run's config ({type(err).__name__}: {str(err)[:200]}); {fix}"
        ) from None


@dataclass
class Payload:
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    torch_state: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(root: Path, step: int, payload: Payload, keep: int = 2) -> Path:
    """Write `payload` as checkpoint `root/step_<step>` atomically; keep the newest `keep` checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:012d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in payload.weights.items()}, tmp / "weights.safetensors")
        torch.save(payload.torch_state, tmp / "optim.pt")
        for name, arrays in payload.arrays.items():
            with (tmp / f"{name}.npz").open("wb") as f:
                np.savez(f, **arrays)
        (tmp / "state.json").write_text(json.dumps(payload.state))
        files = sorted(p.name for p in tmp.iterdir())
        manifest = {"format": FORMAT, "step": step, "files": {name: _sha256(tmp / name) for name in files}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for path in tmp.iterdir():  # data reaches the disk before the rename makes it visible
            with path.open("rb") as f:
                os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first (temporary folders of interrupted writes are skipped)."""
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "manifest.json").exists()]
    return sorted(done, key=lambda p: p.name)


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path) -> Payload:
    """Read and verify a checkpoint folder; any mismatch raises `CheckpointError` naming the file."""
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"'{path}' is not a worldmodels checkpoint (no manifest.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint '{path}' is corrupt: manifest.json is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a {FORMAT} checkpoint")
    for name, digest in manifest["files"].items():
        file = path / name
        if not file.exists():
            raise CheckpointError(f"checkpoint '{path}' is incomplete: {name} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(
                f"checkpoint '{path}' is corrupt or was modified: {name} does not match its sha256 in "
                "manifest.json; resume from an earlier checkpoint by deleting this one"
            )
    try:
        payload = Payload(
            weights=load_file(path / "weights.safetensors"),
            torch_state=torch.load(path / "optim.pt", weights_only=True, map_location="cpu"),
            state=json.loads((path / "state.json").read_text()),
        )
        for name in manifest["files"]:
            if name.endswith(".npz"):
                with np.load(path / name, allow_pickle=False) as npz:
                    payload.arrays[name[:-4]] = {k: npz[k] for k in npz.files}
    except Exception as err:  # a file that hashes right but cannot be read was written by something else
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {type(err).__name__}: {err}") from None
    return payload


def replay_chunks(path: Path) -> set[str]:
    """Names of the replay chunk files (in the run's `replay/`) that checkpoint `path` needs."""
    try:
        state = json.loads((path / "state.json").read_text())
        return {chunk["name"] for stream in state["replay"]["chunks"] for chunk in stream}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
