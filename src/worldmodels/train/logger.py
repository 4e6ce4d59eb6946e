"""Metrics to the console, `metrics.jsonl` and TensorBoard; `curve.png` from the JSON lines."""

from __future__ import annotations

import json
import math
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from worldmodels.figures import plt, read_metrics


class Logger:
    """Appends `{"step": ..., name: value}` lines. On resume from step S, lines after S are dropped first,
    so the log matches the run that continues from the checkpoint; a run whose steps do not order its lines
    (a staged pipeline) gives the count of lines to keep instead, `keep_lines`. A new run (neither given)
    starts afresh: the log of an earlier start that was killed before its first checkpoint is moved aside
    to `metrics.before-restart.jsonl`, and TensorBoard is told to drop that start's events."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, keep_lines: int | None = None):
        self.path = run_dir / "metrics.jsonl"
        fresh = resume_step is None and keep_lines is None
        if fresh and self.path.exists():
            self.path.replace(run_dir / "metrics.before-restart.jsonl")
        elif self.path.exists():
            lines = self.path.read_text().splitlines()
            if resume_step is not None:
                lines = [line for line in lines if json.loads(line)["step"] <= resume_step]
            if keep_lines is not None:
                lines = lines[:keep_lines]
            self.path.write_text("".join(line + "\n" for line in lines))
        self.file = self.path.open("a")
        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=0 if fresh else resume_step)

    def log(self, step: int, metrics: dict[str, float], tb_step: int | None = None) -> None:
        """One line at env step `step`; TensorBoard plots it at `tb_step` when given (a stage's own counter)."""
        clean = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        self.file.write(json.dumps({"step": step, **clean}) + "\n")
        self.file.flush()
        for key, value in clean.items():
            self.tb.add_scalar(key, value, step if tb_step is None else tb_step)

    def flush(self) -> None:
        self.file.flush()
        self.tb.flush()

    def close(self) -> None:
        self.file.close()
        self.tb.close()


class NoLogger:
    """What every rank but rank 0 logs to under torchrun: nothing."""

    def log(self, step: int, metrics: dict[str, float], tb_step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def plot_curve(run_dir: Path, title: str = "") -> Path:
    """Plot episode returns (thin) and evaluation returns ± std (bold) against env steps."""
    rows = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    train = [(r["step"], r["episode/return"]) for r in rows if "episode/return" in r]
    evals = [(r["step"], r["eval/return"], r.get("eval/return_std", 0.0)) for r in rows if "eval/return" in r]
    if train:
        ax.plot(*zip(*train), color="tab:blue", alpha=0.35, lw=1, label="training episodes")
    if evals:
        steps, mean, std = (list(x) for x in zip(*evals))
        ax.plot(steps, mean, color="tab:red", lw=2, marker="o", ms=3, label="evaluation (mean ± std)")
        ax.fill_between(
            steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], color="tab:red", alpha=0.15
        )
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title or run_dir.name)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend(loc="best")
    fig.tight_layout()
    out = run_dir / "curve.png"
    fig.savefig(out)
    plt.close(fig)
    return out
