"""Every registered component builds from its defaults and returns the documented shapes."""

import pytest
import torch

from worldmodels.config import load_all  # noqa: E402
from worldmodels.errors import ConfigError
from worldmodels.registry import (
    CONTINUES,
    DECODERS,
    DYNAMICS,
    ENCODERS,
    POLICIES,
    REPRESENTATIONS,
    REWARDS,
    VALUES,
)
from worldmodels.spaces import ObsSpec

load_all()
B, T, D, Z, A = 3, 5, 6, 8, 2


VECTOR = ObsSpec((D,), "float32")
IMAGE = ObsSpec((64, 64, 3), "uint8")
BOTH = ObsSpec(parts=(("image", IMAGE), ("state", VECTOR)))


def _obs(spec: ObsSpec):
    if spec.parts:
        return {key: _obs(part) for key, part in spec.parts}
    if spec.is_image:
        return torch.randint(0, 256, (B, T, *spec.shape), dtype=torch.uint8)
    return torch.randn(B, T, *spec.shape)


def _fits(name: str, spec: ObsSpec, encoder: bool) -> bool:
    """multi takes anything; the image encoders only frames; an mlp encoder flattens any single array, its
    decoder makes vectors."""
    if name == "multi":
        return True
    if name in ("cnn", "impala", "vit"):
        return spec.is_image
    return not spec.parts and (encoder or not spec.is_image)


@pytest.mark.parametrize("spec", [VECTOR, IMAGE, BOTH], ids=["vector", "image", "dict"])
@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoders(name, spec):
    if not _fits(name, spec, encoder=True):
        with pytest.raises(ConfigError):
            ENCODERS.build(name, None, obs_spec=spec)
        return
    enc = ENCODERS.build(name, None, obs_spec=spec)
    assert enc(_obs(spec)).shape == (B, T, enc.out_dim)


@pytest.mark.parametrize("spec", [VECTOR, IMAGE, BOTH], ids=["vector", "image", "dict"])
@pytest.mark.parametrize("name", DECODERS.names())
def test_decoders(name, spec):
    if not _fits(name, spec, encoder=False):
        with pytest.raises(ConfigError):
            DECODERS.build(name, None, in_dim=Z, obs_spec=spec)
        return
    dec = DECODERS.build(name, None, in_dim=Z, obs_spec=spec)
    pred = dec(torch.randn(B, T, Z))
    target = _obs(spec)
    mean = pred.mean
    for key, part in spec.items():
        assert (mean[key] if key else mean).shape == (B, T, *part.shape)
    assert pred.loss(target).shape == (B, T)


@pytest.mark.parametrize("name", REPRESENTATIONS.names())
def test_representations(name):
    rep = REPRESENTATIONS.build(name, {"latent_dim": Z}, in_dim=16)
    assert rep(torch.randn(B, T, 16)).rsample().shape == (B, T, Z)


@pytest.mark.parametrize("name", DYNAMICS.names())
def test_latent_transition_dynamics(name):
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
