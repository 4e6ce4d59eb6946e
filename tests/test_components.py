"""Every registered component builds from its defaults and returns the documented shapes."""

import pytest
import torch

from worldmodels.registry import (
    CONTINUES,
    DECODERS,
    DYNAMICS,
    ENCODERS,
    POLICIES,
    REPRESENTATIONS,
    REWARDS,
    VALUES,
    load_all,
)

load_all()
B, T, D, Z, A = 3, 5, 6, 8, 2


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoders(name):
    enc = ENCODERS.build(name, None, obs_shape=(D,))
    assert enc(torch.randn(B, T, D)).shape == (B, T, enc.out_dim)


@pytest.mark.parametrize("name", DECODERS.names())
def test_decoders(name):
    dec = DECODERS.build(name, None, in_dim=Z, obs_shape=(D,))
    pred = dec(torch.randn(B, T, Z))
    assert pred.mean.shape == (B, T, D) and pred.loss(torch.randn(B, T, D)).shape == (B, T, D)


@pytest.mark.parametrize("name", REPRESENTATIONS.names())
def test_representations(name):
    rep = REPRESENTATIONS.build(name, {"latent_dim": Z}, in_dim=16)
    assert rep(torch.randn(B, T, 16)).rsample().shape == (B, T, Z)


@pytest.mark.parametrize("name", DYNAMICS.names())
def test_dynamics(name):
    dyn = DYNAMICS.build(name, None, latent_dim=Z, action_dim=A)
    assert dyn(torch.randn(B, Z), torch.randn(B, A)).rsample().shape == (B, Z)


@pytest.mark.parametrize("registry", [REWARDS, VALUES, CONTINUES], ids=["reward", "value", "continue"])
def test_scalar_heads(registry):
    for name in registry.names():
        head = registry.build(name, None, in_dim=Z)
        assert head(torch.randn(B, T, Z)).mean.shape == (B, T)


@pytest.mark.parametrize("name", POLICIES.names())
def test_policies(name):
    policy = POLICIES.build(name, None, in_dim=Z, action_dim=A)
    dist = policy(torch.randn(B, T, Z))
    for sample in (dist.sample(), dist.rsample(), dist.mode):
        assert sample.shape == (B, T, A)
        assert sample.min() >= -1 and sample.max() <= 1
    assert dist.log_prob(dist.sample()).shape == (B, T)
    assert dist.entropy().shape == (B, T)
