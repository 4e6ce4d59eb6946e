"""What the benchmark scripts that drive the CLI share: `wm ARGS` run in a process of its own, as a user
would type it (`from commands import wm`: the scripts run from this folder)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time


def wm(*args: str) -> tuple[str, float, str]:
    """Run `wm ARGS`: its command line, wall-clock seconds and standard output (its errors pass through)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "worldmodels.cli", *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return shlex.join(["wm", *args]), time.perf_counter() - start, done.stdout
