"""Every registered component builds from its defaults and returns the documented shapes."""

import pytest
import torch

from worldmodels.config import load_all  # noqa: E402
from worldmodels.decoders.prediction import VectorPrediction
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


def test_a_normalised_vector_decoder_weighs_every_dimension_by_its_spread():
    """Targets whose two dimensions vary by 1 and by 0.01. Predicting one dimension exactly and the other by
    its mean costs ~1 or ~1e-4 in the plain squared error, ~1 either way with `normalise`; the prediction's
    mean maps back to the observation, and a loss taken without gradients (evaluation) leaves the moments."""
    g = torch.Generator().manual_seed(0)
    target = torch.randn(4096, 2, generator=g) * torch.tensor([1.0, 0.01]) + torch.tensor([0.5, -0.02])
    spec = ObsSpec((2,), "float32")
    decoder = DECODERS.build("mlp", {"use_symlog": False, "normalise": True}, in_dim=Z, obs_spec=spec)
    decoder(torch.zeros(1, Z)).loss(target)  # a training step's loss folds its targets into the moments
    moments = decoder.moments
    assert torch.allclose(moments.mean, torch.tensor([0.5, -0.02]), atol=0.05)
    exact = (target - moments.mean) / moments.std  # the prediction in units of the spread
    centre = target.mean(0).expand_as(target)
    for d in range(2):
        other = [1 - d]
        plain = VectorPrediction(torch.where(torch.arange(2) == d, target, centre), False).loss(target).mean()
        spread = VectorPrediction(exact.index_fill(1, torch.tensor(other), 0.0), False, moments, 1e-3)
        assert plain == pytest.approx((0.01 if d == 0 else 1.0) ** 2, rel=0.1)
        assert spread.loss(target).mean() == pytest.approx(1.0, rel=0.1)
    assert torch.allclose(VectorPrediction(exact, False, moments, 1e-3).mean, target, atol=1e-5)
    count = moments.count.clone()
    with torch.no_grad():
        decoder(torch.zeros(8, Z)).loss(target[:8])
    assert moments.count == count
