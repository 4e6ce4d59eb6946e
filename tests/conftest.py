"""Shared fixtures: a tiny latent_mlp config that trains in seconds, and the exact-resume check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from worldmodels.config import load_config
from worldmodels.train import Trainer

TINY = [
    "agent.encoder.vector.hidden=32",
    "agent.decoder.vector.hidden=32",
    "agent.encoder.image.depth=4",
    "agent.decoder.image.depth=4",
    "agent.dynamics.hidden=32",
    "agent.reward.hidden=32",
    "agent.cont.hidden=32",
    "agent.discrete_actor.hidden=32",
    "agent.continuous_actor.hidden=32",
    "agent.critic.hidden=32",
    "agent.representation.latent_dim=8",
    "agent.imagination_horizon=5",
    "train.batch_size=4",
    "train.seq_len=8",
    "train.prefill=100",
    "train.ratio=16",
    "train.eval_episodes=2",
    "train.log_every=100",
    "train.threads=1",
]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny():
    """A function: overrides → a tiny latent_mlp config."""

    def make(*overrides: str, env: str = "CartPole-v1"):
        return load_config("latent_mlp", [*TINY, f"env.id={env}", *overrides])

    return make


def assert_resumes_exactly(
    preset: str, overrides: list[str], root: Path, steps: int, on_resume: Callable[[Trainer], None] | None = None
) -> None:
    """A run checkpointed at `steps / 2`, stopped there and resumed to `steps` ends with the same weights as
    one that ran `steps` straight; `on_resume` may inspect the resumed trainer before it runs."""

    def run(n: int, folder: str, resume: bool = False, check: Callable[[Trainer], None] | None = None) -> Trainer:
        cfg = load_config(preset, [*overrides, f"train.steps={n}", f"train.checkpoint_every={steps // 2}"])
        trainer = Trainer(cfg, root / folder, resume=resume)
        if check is not None:
            check(trainer)
        trainer.run()
        trainer.close()
        return trainer

    straight = run(steps, "straight")
    run(steps // 2, "resumed")
    resumed = run(steps, "resumed", resume=True, check=on_resume)
    a, b = straight.agent.state_dict(), resumed.agent.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
