"""Checkpoints: everything needed to continue a run exactly, written atomically, loaded without pickle.

A checkpoint is a folder `checkpoints/step_<N>/` holding
    weights.safetensors   module weights and buffers
    optim.pt              optimiser states (tensors and numbers only; loaded with weights_only=True)
    <name>.npz            numpy arrays (replay, env pool), loaded with allow_pickle=False
    state.json            counters, RNG states, metadata (with the list of replay chunks it needs)
    manifest.json         format tag and the sha256 of every file above, written last
Replay rows live outside, in immutable chunk files under the run's `replay/` that checkpoints share;
each is verified against the sha256 listed in the checkpoint's state.json when loaded.
It is written into a temporary folder and renamed into place, and a checkpoint folder is never replaced:
saving a step that already has one writes `step_<N>.<k>` beside it, and older checkpoints are deleted
only after the new one is in place. A run killed at any instant of a write therefore leaves the
previous checkpoint as the latest complete one; `clean_interrupted` removes what the write left behind.
A file that does not match its manifest is refused, and every failure to read one is a one-line
`CheckpointError` naming the file.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
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
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from worldmodels.data.files import load_npz, readable, sha256
from worldmodels.errors import CheckpointError, one_line

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
            f"checkpoint '{path}' does not fit this run's config ({type(err).__name__}: {one_line(err)}); {fix}"
        ) from None


@contextlib.contextmanager
def disk_space(run_dir: Path, needed: int) -> Iterator[None]:
    """Writes inside this block that find the disk full become one CheckpointError naming `run_dir`, the
    `needed` bytes (an estimate) and the free space; what was written before stays as it was."""
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        free = shutil.disk_usage(run_dir if run_dir.exists() else run_dir.parent).free
        raise CheckpointError(
            f"no space left on the disk of '{run_dir}': a checkpoint needs about {needed / 2**20:.0f} MiB free, "
            f"{free / 2**20:.0f} MiB are; the previous checkpoint is intact: free space, then continue with "
            f"`wm train --resume {run_dir}`"
        ) from None


@dataclass
class Payload:
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    torch_state: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(root: Path, step: int, payload: Payload, keep: int = 2) -> Path:
    """Write `payload` as checkpoint `root/step_<step>` atomically; keep the newest `keep` checkpoints."""
    root.mkdir(parents=True, exist_ok=True)
    # a step saved again (a resumed finished run, a phase redone at the same step) gets the next re-save
    # number after every folder of that step, never a gap an old one left: the newest must sort last
    saved = [order[1] for path in root.iterdir() if (order := _order(path)) is not None and order[0] == step]
    resave = max(saved) + 1 if saved else 0
    final = root / (f"{PREFIX}{step:012d}" + (f".{resave}" if resave else ""))
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in payload.weights.items()}
        _write(tmp / "weights.safetensors", safetensors_bytes(weights))
        _write(tmp / "optim.pt", _torch_bytes(payload.torch_state))
        for name, arrays in payload.arrays.items():
            with (tmp / f"{name}.npz").open("wb") as f:
                np.savez(f, **arrays)
        (tmp / "state.json").write_text(json.dumps(payload.state))
        files = sorted(p.name for p in tmp.iterdir())
        manifest = {"format": FORMAT, "step": step, "files": {name: sha256(tmp / name) for name in files}}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        for path in tmp.iterdir():  # data reaches the disk before the rename makes it visible
            with path.open("rb") as f:
                os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep]:
        (old / "manifest.json").unlink()  # first, so that a kill midway never leaves it looking complete
        shutil.rmtree(old, ignore_errors=True)
    return final


def _torch_bytes(obj: Any) -> memoryview:
    """`obj` serialised by `torch.save` in memory. The weights and the optimiser states are serialised in memory
    and written by `_write`, so a full disk is the OSError (ENOSPC) it is: torch's own file writer reports it
    as a RuntimeError ("unexpected pos ...")."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer()


def _write(path: Path, data: memoryview | bytes) -> None:
    with path.open("wb") as f:
        f.write(data)


def _order(path: Path) -> tuple[int, int] | None:
    """(step, re-save) of a checkpoint folder `step_<N>[.<k>]`, None for anything else."""
    step, _, resave = path.name[len(PREFIX) :].partition(".")
    if not path.name.startswith(PREFIX) or not step.isdigit() or not (resave or "0").isdigit():
        return None
    return int(step), int(resave or 0)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first (temporary folders of interrupted writes are skipped)."""
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if _order(p) is not None and (p / "manifest.json").exists()]
    return sorted(done, key=_order)


def clean_interrupted(root: Path) -> None:
    """Remove the temporary folders that writes killed midway left under `root`."""
    if root.is_dir():
        for path in root.glob(".tmp-*"):
            shutil.rmtree(path, ignore_errors=True)


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
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CheckpointError(f"checkpoint '{path}' is corrupt: '{manifest_path}' has no table of files and hashes")
    missing = {"weights.safetensors", "optim.pt", "state.json"} - set(files)
    if missing:
        raise CheckpointError(f"checkpoint '{path}' is corrupt: '{manifest_path}' does not list {sorted(missing)[0]}")
    for name, digest in files.items():
        file = path / name
        if not file.exists():
            raise CheckpointError(f"checkpoint '{path}' is incomplete: {name} is missing")
        if sha256(file) != digest:
            raise CheckpointError(
                f"checkpoint '{path}' is corrupt or was modified: {name} does not match its sha256 in "
                "manifest.json; resume from an earlier checkpoint by deleting this one"
            )
    payload = Payload()
    with readable(path / "weights.safetensors"):
        payload.weights = load_file(path / "weights.safetensors")
    with readable(path / "optim.pt"):
        payload.torch_state = torch.load(path / "optim.pt", weights_only=True, map_location="cpu")
    with readable(path / "state.json"):
        payload.state = json.loads((path / "state.json").read_text())
        if not isinstance(payload.state, dict):
            raise ValueError("not a JSON object")
    for name in files:
        if name.endswith(".npz"):
            payload.arrays[name[:-4]] = load_npz(path / name)
    return payload


def world_size(path: Path) -> int:
    """How many ranks wrote checkpoint `path` (1 where state.json cannot say)."""
    try:
        return int(json.loads((path / "state.json").read_text()).get("world_size", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def replay_chunks(path: Path, rank: int = 0) -> set[str]:
    """Names of the replay chunk files (in the run's `replay/`, rank r > 0's in `replay/rank<r>/`) that
    checkpoint `path` needs for rank `rank` (its phases that keep a replay hold its state under `replay`)."""
    try:
        state = json.loads((path / "state.json").read_text())
        phases = (state["shards"][rank - 1] if rank else state)["phases"].values()
        return {
            chunk["name"]
            for part in phases
            if "replay" in part
            for stream in part["replay"]["chunks"]
            for chunk in stream
        }
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return set()
