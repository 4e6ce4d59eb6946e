"""The probabilistic ensemble: documented shapes per propagation mode, bootstrapped members that differ,
learning a known transition, the learned variance bounds, and the ensemble reward head."""

import pytest
import torch

import worldmodels.dynamics  # noqa: F401
from worldmodels.dynamics.ensemble import by_member
from worldmodels.errors import ConfigError
from worldmodels.heads.ensemble import EnsembleReward
from worldmodels.nn import Normaliser
from worldmodels.registry import DYNAMICS

S, A, E = 3, 2, 4


def ensemble(**cfg):
    return DYNAMICS.build("ensemble", {"members": E, "hidden": 32, "layers": 2, **cfg}, latent_dim=S, action_dim=A)


def true_step(s, a):
    return s + 0.1 * torch.tanh(s.roll(1, -1)) + 0.2 * torch.cat([a, a[..., :1]], -1)


def train(model, steps=300, bootstrap=True):
    torch.manual_seed(1)
    s, a = torch.randn(256, S), torch.rand(256, A) * 2 - 1
    nxt = true_step(s, a) + 0.01 * torch.randn(256, S)
    model.update_normalisers(s, a, nxt)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(steps):
        idx = torch.randint(0, 256, (E, 256)) if bootstrap else torch.arange(256).expand(E, -1)
        loss, _ = model.loss(s[idx], a[idx], nxt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return s, a, nxt


@pytest.mark.parametrize("mode", ["ts1", "tsinf", "expectation"])
def test_propagation_shapes(mode):
    model = ensemble()
    state, action = torch.randn(6, 8, S), torch.randn(6, A)  # N = 6 rows, K = 8 particles
    nxt = model.propagate(state, action, mode)
    assert nxt.shape == (6, 8, S) and torch.isfinite(nxt).all()
    if mode == "expectation":  # no sampling: identical particles stay identical
        same = model.propagate(state[:, :1].expand(-1, 8, -1), action, mode)
        assert torch.allclose(same, same[:, :1].expand_as(same))


def members_of(model, state, action, nxt):
    """Which member gave each particle its next state `[N, K]` (variance off: the members' means)."""
    N, K, _ = state.shape
    s, a = state.reshape(1, N * K, S).expand(E, -1, -1), action[:, None].expand(N, K, A).reshape(1, N * K, A)
    mean, _ = model.members_next(s, a.expand(E, -1, -1))  # [E, N·K, S]
    hit = (mean - nxt.reshape(1, N * K, S)).abs().amax(-1) < 1e-5  # [E, N·K]
    assert (hit.sum(0) == 1).all()  # exactly one member fits each particle
    return hit.float().argmax(0).view(N, K)


def test_tsinf_keeps_particles_on_their_member():
    """TS∞: particle k follows member k mod E, at every step."""
    model = ensemble(probabilistic=False)
    state, action = torch.randn(2, 2 * E, S), torch.randn(2, A)
    for _ in range(2):
        nxt = model.propagate(state, action, "tsinf")
        assert (members_of(model, state, action, nxt) == torch.arange(2 * E) % E).all()


def test_ts1_deals_each_rows_particles_afresh_every_step():
    """TS1: every step each row's particles are dealt to the members again, K/E to each."""
    torch.manual_seed(0)
    model = ensemble(probabilistic=False)
    state, action = torch.randn(3, 2 * E, S), torch.randn(3, A)
    deals = [members_of(model, state, action, model.propagate(state, action, "ts1")) for _ in range(3)]
    for members in deals:
        assert (torch.stack([(members == e).sum(1) for e in range(E)]) == 2).all()  # balanced in every row
    assert not torch.equal(deals[0], deals[1]) or not torch.equal(deals[1], deals[2])


def test_by_member_puts_outputs_back_in_particle_order():
    """A per-member function on an assignment gives each particle the output of its own member."""
    model = ensemble()
    order = model.assignment(3, 2 * E, "ts1", torch.device("cpu"))
    x = torch.randn(3, 2 * E, 5)
    out = by_member(lambda x: x.sum(-1) * torch.arange(1.0, E + 1)[:, None], order, x)  # [E, M] → [3, 2E]
    member = torch.empty(3 * 2 * E, dtype=torch.long)
    member[order.reshape(-1)] = torch.arange(E).repeat_interleave(order.shape[1])
    assert torch.allclose(out, x.sum(-1) * (member.view(3, 2 * E) + 1))


def test_particles_must_split_over_members():
    with pytest.raises(ConfigError, match="divisible"):
        ensemble().propagate(torch.randn(2, E + 1, S), torch.randn(2, A), "ts1")
    with pytest.raises(ConfigError, match="unknown propagation"):
        ensemble().propagate(torch.randn(2, E, S), torch.randn(2, A), "ts2")


def test_bootstrapped_members_learn_and_differ():
    model = ensemble()
    s, a, nxt = train(model)
    members, _ = model.members_next(s[None].expand(E, -1, -1), a[None].expand(E, -1, -1))
    error = ((members - nxt) ** 2).mean((1, 2))  # [E]
    assert (error < 0.05 * nxt.var()).all()  # every member learned the transition
    spread = members.std(0).mean()
    assert spread > 1e-3  # and they disagree: different inits and bootstrap samples
    assert model.forward(s, a).mean.shape == (256, S)


def test_learned_variance_bounds_move():
    model = ensemble()
    before = (model.max_logvar.detach().clone(), model.min_logvar.detach().clone())
    train(model, steps=50)
    assert not torch.equal(model.max_logvar, before[0]) and not torch.equal(model.min_logvar, before[1])
    _, logvar = model.members_normalised(torch.randn(E, 10, S), torch.randn(E, 10, A))
    assert (logvar <= model.max_logvar + 1e-5).all() and (logvar >= model.min_logvar - 1e-5).all()


def test_normaliser_matches_batch_statistics():
    model = ensemble()
    x = torch.randn(500, S) * 3 + 1
    model.update_normalisers(x[:200], torch.zeros(200, A), x[:200] * 2)
    model.update_normalisers(x[200:], torch.zeros(300, A), x[200:] * 2)
    assert torch.allclose(model.inputs.mean[:S], x.mean(0), atol=1e-4)
    assert torch.allclose(model.targets.std, x.std(0, correction=0), atol=1e-3)


def test_normalise_floors_the_spread_and_denormalise_inverts_it():
    moments = Normaliser(2)
    x = torch.stack([torch.linspace(-1, 1, 101), torch.full((101,), 5.0)], -1)  # spread 0.58 and 0
    moments.update(x)
    z = moments.normalise(x, min_std=0.1)
    assert z[:, 0].std(correction=0) == pytest.approx(1.0, abs=1e-4)
    assert torch.all(z[:, 1] == 0)  # a constant is 0, not 0 / 0
    assert moments.normalise(torch.tensor([[0.0, 6.0]]), min_std=0.1)[0, 1] == pytest.approx(10.0)
    assert torch.allclose(moments.denormalise(z, min_std=0.1), x, atol=1e-6)


def test_ensemble_reward_head():
    torch.manual_seed(0)
    head = EnsembleReward(EnsembleReward.Config(members=E, hidden=32, layers=2), in_dim=S)
    x = torch.randn(256, S)
    r = -(x**2).sum(-1)
    head.update_normalisers(x, r)
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    for _ in range(300):
        idx = torch.randint(0, 256, (E, 256))
        loss = head.loss(x[idx], r[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert head(x).mean.shape == (256,)
    assert ((head(x).mean - r) ** 2).mean() < 0.1 * r.var()
