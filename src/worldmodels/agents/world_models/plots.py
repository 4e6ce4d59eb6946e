"""Pictures of a World Models run: V's reconstructions (frames as a grid, states as traces over an episode),
and the pipeline's curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.agents.world_models.agent import WorldModelsAgent
from worldmodels.figures import plt, read_metrics


@torch.no_grad()
def reconstructions(agent: WorldModelsAgent, files: list[Path], out: Path) -> Path:
    """`out` (a PNG): V's reconstructions of collected rollouts, as a grid of frames or traces of states."""
    return (_frame_grid if agent.obs_spec.is_image else _state_traces)(agent, files, out)


def _reconstruct(agent: WorldModelsAgent, obs: np.ndarray) -> np.ndarray:
    return agent.vae.decode(agent.vae(torch.as_tensor(obs, device=agent.device)).mean).mean.cpu().numpy()


def _frame_grid(agent: WorldModelsAgent, files: list[Path], out: Path, columns: int = 8) -> Path:
    """Frames from `columns` rollouts (top row) and V's reconstructions of them (bottom row)."""
    import imageio.v2 as imageio

    picks = np.linspace(0, len(files) - 1, min(columns, len(files))).round().astype(int)
    frames = []
    for i in picks:
        with np.load(files[i], allow_pickle=False) as npz:
            obs = npz["obs"]
        frames.append(obs[len(obs) // 2])
    real = np.stack(frames)
    recon = np.clip(np.round(_reconstruct(agent, real)), 0, 255).astype(np.uint8)
    rows = [np.concatenate(list(row), 1) for row in (real, recon)]
    grid = np.concatenate([rows[0], np.full_like(rows[0][:2], 255), rows[1]], 0)
    if grid.shape[-1] == 1:
        grid = grid.repeat(3, -1)
    imageio.imwrite(out, np.kron(grid, np.ones((2, 2, 1), np.uint8)))
    return out


def _state_traces(agent: WorldModelsAgent, files: list[Path], out: Path, most: int = 8) -> Path:
    """Each state dimension (up to `most`) over the longest rollout, real and as V reconstructs it."""
    episodes = []
    for path in files:
        with np.load(path, allow_pickle=False) as npz:
            episodes.append(npz["obs"])
    real = max(episodes, key=len)
    recon = _reconstruct(agent, real)
    dims = min(most, real.shape[1])
    fig, axes = plt.subplots(1, dims, figsize=(3 * dims, 2.6), dpi=100, squeeze=False)
    for d, ax in enumerate(axes[0]):
        ax.plot(real[:, d], label="real")
        ax.plot(recon[:, d], ls="--", label="V")
        ax.set(title=f"state[{d}]", xlabel="step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_pipeline(run_dir: Path, title: str) -> Path:
    """`curve.png`: V's loss per epoch, M's NLL against the no-memory baseline per update, and the
    controller's fitness per generation with the real-environment evaluations and the random policy."""
    rows = read_metrics(run_dir)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=100)

    def series(counter: str, key: str) -> tuple[list[float], list[float]]:
        pts = [(r[counter], r[key]) for r in rows if counter in r and key in r]
        return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])

    ax = axes[0]
    for key, label in (("vae/loss", "loss"), ("vae/recon", "reconstruction"), ("vae/kl", "KL")):
        ax.plot(*series("vae/epoch", key), marker="o", ms=3, label=label)
    ax.set(title="V: VAE", xlabel="epoch", ylabel="per observation")
    ax = axes[1]
    for key, label, style in (
        ("mdrnn/nll", "MDN-RNN (train)", "-"),
        ("valid/mdrnn_nll", "MDN-RNN (held out)", "-"),
        ("memoryless/nll", "no memory (train)", "--"),
        ("valid/memoryless_nll", "no memory (held out)", "--"),
    ):
        ax.plot(*series("mdrnn/update", key), ls=style, marker="o", ms=3, label=label)
    ax.set(title="M: GMM NLL of the next z", xlabel="update", ylabel="nats per latent dim")
    ax = axes[2]
    ax.plot(*series("controller/generation", "controller/fitness_mean"), label="population mean fitness")
    ax.plot(*series("controller/generation", "controller/fitness_max"), alpha=0.6, label="best candidate")
    gens, evals = series("controller/generation", "eval/return")
    if gens:
        ax.plot(gens, evals, color="tab:red", marker="o", ms=4, lw=2, label="eval (search mean, real env)")
    random_returns = [r["collect/return"] for r in rows if "collect/return" in r]
    if random_returns:
        ax.axhline(random_returns[-1], color="k", ls=":", label="random policy")
    for i, start in enumerate(_round_starts(rows)):
        ax.axvline(start, color="grey", ls="--", lw=0.8, label=None if i else "next round (iterate)")
    ax.set(title="C: CMA-ES", xlabel="generation", ylabel="return")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = run_dir / "curve.png"
    fig.savefig(out)
    plt.close(fig)
    return out


def _round_starts(rows: list[dict]) -> list[float]:
    """Where each later round of `iterate` begins on the generation axis: before the first generation
    logged after that round's episodes were recorded."""
    starts, recorded = [], False
    for r in rows:
        if "collect/controller/rollouts" in r:
            recorded = True
        elif recorded and "controller/generation" in r:
            starts.append(r["controller/generation"] - 0.5)
            recorded = False
    return starts
