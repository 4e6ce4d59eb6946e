"""Data-parallel training under `torch.distributed`, as `torchrun` starts it (gloo on CPUs, NCCL on GPUs).

A run on N ranks is N copies of the trainer in lockstep: every rank collects with its own environments
(seeded from the run seed and its rank), keeps its own replay shard and samples `1/N` of each batch;
the ranks meet in `agents.base.step`, which averages the gradients (and the loss) across them before
clipping and stepping, so every rank holds the same weights and a run with the same global batch follows
the learning dynamics of one rank. Statistics taken over a batch (return scales, input normalisers, a VQ
codebook's usage) are computed over the global batch (`gather`, `moments`, `total`). Rank 0 alone
evaluates, logs and writes the run folder and checkpoints (the other ranks hand it their shards, which a
resume on another number of ranks deals out again).

With one process (no torchrun) every function here is the identity: rank 0 of a world of one.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from worldmodels.errors import ConfigError, TrainingError

TIMEOUT = timedelta(minutes=30)
"""How long a rank waits for the others in one collective: a checkpoint or an evaluation on rank 0 may
take minutes while the others wait."""


def launched() -> bool:
    """Whether this process was started by torchrun (or anything that sets its environment)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    """Whether this process is one rank of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the one that evaluates, logs and writes."""
    return rank() == 0


def local_device(name: str) -> torch.device:
    """The device `name` (`cpu` | `cuda`) means on this rank: `cuda` is the GPU of the rank's LOCAL_RANK."""
    if name != "cuda" or not launched():
        return torch.device(name)
    local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local >= count:
        raise ConfigError(
            f"local rank {local} has no GPU: this machine shows {count}; "
            f"start at most {count} processes per node (--nproc {count})"
        )
    return torch.device("cuda", local)


def init(device: torch.device) -> None:
    """Join the process group torchrun describes (NCCL for a CUDA device, else gloo); nothing without torchrun."""
    if not launched() or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, of_rank: int) -> int:
    """The seed of rank `of_rank`'s own random streams (environments, replay, exploration): the run seed on
    rank 0, so that a run of one rank is seeded as before, and a seed derived from both elsewhere."""
    if of_rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, 1_000_003, of_rank]).generate_state(1)[0])


def local_batch(batch_size: int) -> int:
    """This rank's part of a global batch of `batch_size`."""
    n = world_size()
    if batch_size % n:
        raise ConfigError(
            f"batch size {batch_size} does not split over {n} ranks (train.batch_size is the global batch); "
            f"use a multiple of {n}, e.g. train.batch_size={max(n, batch_size // n * n)}"
        )
    return batch_size // n


def average_gradients(params: list[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """Replace every parameter's gradient by its mean over the ranks and return the mean `loss`, in one
    all-reduce. A parameter no rank has a gradient for keeps none; one that only some ranks have counts as
    zero on the others. A non-finite value on any rank makes the mean non-finite on all of them, so every
    rank refuses the same step (`step` masks it and `raise_if_non_finite` stops every rank alike). Costs a
    copy of the gradients and one host read (which parameters get one) per step, only under torchrun."""
    if not active():
        return loss
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=loss.device)
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float() for p in params]
    flat = torch.cat([loss.detach().float().reshape(1), present, *grads])
    dist.all_reduce(flat)
    flat /= world_size()
    held = flat[1 : 1 + len(params)].gt(0).tolist()  # one host read: which parameters get a gradient
    offset = 1 + len(params)
    for p, has in zip(params, held):
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype) if has else None
        offset += n
    return flat[0].to(loss.dtype)


def gather(x: torch.Tensor) -> torch.Tensor:
    """`x` of every rank (the same shape on each), concatenated along the first dimension in rank order."""
    if not active():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def total(x: torch.Tensor) -> torch.Tensor:
    """The sum of `x` over the ranks (a new tensor)."""
    if not active():
        return x
    out = x.clone()
    dist.all_reduce(out)
    return out


def from_main(x: torch.Tensor) -> torch.Tensor:
    """Rank 0's `x` (the same shape on every rank), on every rank (a new tensor)."""
    if not active():
        return x
    out = x.clone()
    dist.broadcast(out, src=0)
    return out


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count, mean `[D]` and (biased) variance `[D]` of the rows `[N, D]` of every rank together."""
    n = torch.tensor(float(x.shape[0]), device=x.device)
    if not active():
        return n, x.mean(0), x.var(0, correction=0)
    total = torch.cat([n.reshape(1), x.sum(0)])
    dist.all_reduce(total)
    count = total[0]
    mean = total[1:] / count
    square = ((x - mean) ** 2).sum(0)
    dist.all_reduce(square)
    return count, mean, square / count


def agree(flag: bool) -> bool:
    """Whether `flag` holds on every rank."""
    if not active():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    failed = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(failed, op=dist.ReduceOp.MAX)
    return failed.item() == 0.0


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (a picklable value made by this run's own code)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_all(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def part(n: int) -> slice:
    """This rank's contiguous share of `n` rows split over the ranks (as even as it goes, rank order)."""
    size, extra = divmod(n, world_size())
    r = rank()
    start = r * size + min(r, extra)
    return slice(start, start + size + (r < extra))


def gather_to_main(obj: Any) -> list[Any] | None:
    """On rank 0, every rank's `obj` in rank order; None on the others."""
    if not active():
        return [obj]
    out: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if active():
        dist.barrier()


LAUNCHER = "WM_NPROC"
"""Set in the environment of ranks that `wm train --nproc` started: it names a rank that dies itself."""


def lost_peer(err: BaseException) -> bool:
    """Whether `err` is a collective failing because another rank has gone (gloo raises a plain RuntimeError)."""
    gone = ("Connection closed by peer", "Connection reset by peer", "NCCL communicator was aborted")
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and any(s in str(err) for s in gone))


def relaunch(nproc: int, argv: list[str], run_dir: str) -> None:
    """Run `python -m worldmodels.cli ARGV` as `nproc` ranks on this machine under torchrun's own launcher
    (as `torchrun --standalone --nproc-per-node nproc` would), and wait for them. When a rank fails, the
    launcher stops the others; a rank killed by a signal is reported here as one `TrainingError` naming it
    (a rank that exited with an error has printed its own line: `RankFailed` carries its exit status), and
    an interrupt (Ctrl-C, SIGTERM) of the launcher as `KeyboardInterrupt`, once the ranks are stopped."""
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    for name in list(logging.root.manager.loggerDict):  # the launcher's own notes: the lines below say it
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # gloo's warnings when a peer goes
    os.environ[LAUNCHER] = str(nproc)
    local = ["--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0", f"--rdzv-id={uuid.uuid4()}"]  # --standalone's
    launch = [*local, f"--nproc-per-node={nproc}", "--module", "worldmodels.cli", *argv]
    config, cmd, cmd_args = config_from_args(parse_args(launch))
    try:
        elastic_launch(config, cmd)(*cmd_args)
    except SignalException:
        raise KeyboardInterrupt from None
    except ChildFailedError as err:
        # the cause first: a rank killed by a signal, then one that failed itself; SIGTERM is how the launcher
        # stops the others
        rank_id, failure = min(
            err.failures.items(),
            key=lambda item: (item[1].exitcode == -signal.SIGTERM, item[1].exitcode > 0, item[1].timestamp, item[0]),
        )
        if failure.exitcode > 0:
            raise RankFailed(failure.exitcode) from None
        raise TrainingError(
            f"rank {rank_id} of {nproc} was killed by {failure.signal_name()}, so the run stopped; its last "
            f"checkpoint is intact: continue with `wm train --resume {run_dir} --nproc {nproc}`"
        ) from None


class RankFailed(Exception):
    """A rank exited with an error it reported itself; `exit_code` is its exit status."""

    def __init__(self, exit_code: int):
        super().__init__(f"a rank exited with status {exit_code}")
        self.exit_code = exit_code
