"""Worker processes for work spread over CPU cores (recording episodes, scoring controllers)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch


def ignore_interrupts() -> None:
    """For a worker process: Ctrl-C in a terminal reaches every process of the group, but a worker is stopped
    by the process that started it, which may first finish its step with the worker's help (`wm train`
    checkpoints before it stops)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_worker(setup: Any, *args: Any) -> None:
    """One torch thread, deaf to Ctrl-C; exit when the training process is gone, even if it was killed
    without a chance to stop its workers (they would otherwise wait for work forever)."""
    ignore_interrupts()
    torch.set_num_threads(1)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    if setup is not None:
        setup(*args)


def process_pool(workers: int, setup: Any = None, args: tuple = ()) -> ProcessPoolExecutor | None:
    """`workers` spawned processes, each running `setup(*args)` first (None for 1: work runs in this process)."""
    if workers <= 1:
        return None
    ctx = mp.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(setup, *args))
