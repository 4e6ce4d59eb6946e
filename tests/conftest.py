"""Shared fixtures: a tiny latent_mlp config that trains in seconds."""

from __future__ import annotations

import pytest
import torch

from worldmodels.config import load_config

TINY = [
    "agent.encoder.mlp.hidden=32",
    "agent.decoder.mlp.hidden=32",
    "agent.encoder.cnn.depth=4",
    "agent.decoder.cnn.depth=4",
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
