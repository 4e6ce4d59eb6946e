"""Reading the files a run writes (checkpoints, replay chunks) so that any failure names the file.

Every file is checked against the sha256 its checkpoint recorded before it is read; one that hashes
right and still cannot be read was written by something else, and is reported as one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from worldmodels.errors import CheckpointError, WMError, one_line


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def readable(file: Path) -> Iterator[None]:
    """Any failure to read `file` inside this block becomes one CheckpointError naming the file (errors
    that already say what is wrong, `WMError`s, pass as they are)."""
    try:
        yield
    except WMError:
        raise
    except Exception as err:
        if isinstance(err, pickle.UnpicklingError):  # torch's text advises weights_only=False: never do that
            reason = "it holds objects other than tensors and numbers, which are never unpickled"
        else:
            reason = f"{type(err).__name__}: {one_line(err)}"
        raise CheckpointError(f"'{file}' cannot be read ({reason}); it was not written by worldmodels") from None


def load_npz(file: Path) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` file, loaded without pickle; failures name the file."""
    with readable(file), np.load(file, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
