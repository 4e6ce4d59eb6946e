"""The RSSM's backbones: a window run in one call equals the same window stepped (the transformer's masked
parallel pass against its key/value cache), a start picked out of a window continues it exactly, a reset
empties a cache row, and the RSSM observing a window at once equals it filtering step by step."""

import pytest
import torch

from worldmodels.dynamics.backbones import reset
from worldmodels.registry import BACKBONES, RSSMS

B, T, I, D = 3, 9, 5, 8
OPTIONS = {"gru": {"blocks": 2}, "lstm": {}, "transformer": {"layers": 2, "heads": 2, "context": 4}}


def _window() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    is_first[1, 3] = is_first[2, 7] = True  # episodes restart inside two windows
    return torch.randn(B, T, I), is_first


def _stepped(backbone, x: torch.Tensor, is_first: torch.Tensor, start: dict) -> torch.Tensor:
    carry, outs = start, []
    for t in range(x.shape[1]):
        carry = backbone.step(x[:, t], reset(carry, start, is_first[:, t]))
        outs.append(carry["deter"])
    return torch.stack(outs, 1)


@pytest.mark.parametrize("name", OPTIONS)
def test_a_window_in_one_call_equals_the_window_stepped(name):
    backbone = BACKBONES.build(name, OPTIONS[name], in_dim=I, dim=D, norm=True)
    x, is_first = _window()
    start = backbone.initial(torch.randn(1, D).tanh().expand(B, D))
    whole = backbone.sequence(x, is_first, start)["deter"]
    assert whole.shape == (B, T, D)
    torch.testing.assert_close(whole, _stepped(backbone, x, is_first, start), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", OPTIONS)
def test_a_start_picked_from_a_window_continues_it(name):
    """From every step t but the last, one more step with x_{t+1} gives the window's h_{t+1} (unless an
    episode starts there): the transformer's start carries the right tokens of the right episode."""
    backbone = BACKBONES.build(name, OPTIONS[name], in_dim=I, dim=D, norm=True)
    x, is_first = _window()
    start = backbone.initial(torch.zeros(B, D))
    carries = backbone.sequence(x, is_first, start)
    b, t = torch.meshgrid(torch.arange(B), torch.arange(T - 1), indexing="ij")
    keep = ~is_first[b, t + 1]
    b, t = b[keep], t[keep]
    nxt = backbone.step(x[b, t + 1], backbone.starts(carries, b * T + t))
    torch.testing.assert_close(nxt["deter"], carries["deter"][b, t + 1], atol=1e-5, rtol=1e-5)


def test_a_reset_empties_a_cache_row_and_leaves_the_others():
    backbone = BACKBONES.build("transformer", OPTIONS["transformer"], in_dim=I, dim=D, norm=True)
    x, _ = _window()
    start = backbone.initial(torch.zeros(B, D))
    carry = start
    for t in range(3):
        carry = backbone.step(x[:, t], carry)
    restart = torch.tensor([True, False, False])
    after = backbone.step(x[:, 3], reset(carry, start, restart))
    fresh = backbone.step(x[:, 3], start)
    going = backbone.step(x[:, 3], carry)
    torch.testing.assert_close(after["deter"][0], fresh["deter"][0])
    torch.testing.assert_close(after["deter"][1:], going["deter"][1:])
    assert not torch.allclose(fresh["deter"][1:], going["deter"][1:])  # the cache mattered


@pytest.mark.parametrize("name", OPTIONS)
def test_the_rssm_observing_a_window_at_once_equals_filtering_it(name):
    """q(z_t | e_t): `observe` draws every z_t, then runs the backbone once; filtering with `obs_step`
    must see the same inputs (the previous latent and action, none at an episode start). Sampling is
    replaced by the distributions' means so that both orders of drawing agree."""
    rssm = RSSMS.build(
        "rssm",
        {"deter": D, "hidden": 6, "stoch": 3, "classes": 0, "posterior": "observation"}
        | {"backbone": {"name": name, **OPTIONS[name]}},
        embed_dim=4,
        action_dim=2,
    )
    rssm._sample = lambda stats: stats["mean"]
    _, is_first = _window()
    embed, action = torch.randn(B, T, 4), torch.randn(B, T, 2)
    post, prior = rssm.observe(embed, action, is_first)
    state, first = rssm.initial(B), is_first.clone()
    for t in range(T):
        state, step_prior = rssm.obs_step(state, action[:, t], embed[:, t], first[:, t])
        torch.testing.assert_close(rssm.features(state), rssm.features(post)[:, t], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(step_prior["mean"], prior["mean"][:, t], atol=1e-5, rtol=1e-5)
