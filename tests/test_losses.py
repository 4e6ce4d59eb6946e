import math

import torch
from torch import distributions as D

from worldmodels.losses import ReturnScale, TwoHotSymlog, kl_split, lambda_return, symlog_bins, two_hot
from worldmodels.nn import OneHotDist, symexp, symlog


def test_lambda_return_by_hand():
    # H = 2; R_1 = r_1 + d_1 v_2 ; R_0 = r_0 + d_0 ((1 - λ) v_1 + λ R_1)
    reward = torch.tensor([[1.0, 2.0]])
    discount = torch.tensor([[0.9, 0.5]])
    value = torch.tensor([[10.0, 20.0, 30.0]])
    lam = 0.8
    r1 = 2.0 + 0.5 * 30.0  # 17
    r0 = 1.0 + 0.9 * (0.2 * 20.0 + 0.8 * r1)  # 1 + 0.9 * (4 + 13.6) = 16.84
    out = lambda_return(reward, discount, value, lam)
    assert torch.allclose(out, torch.tensor([[r0, r1]]))


def test_lambda_return_limits():
    reward = torch.tensor([[1.0, 1.0, 1.0]])
    discount = torch.full((1, 3), 0.5)
    value = torch.tensor([[0.0, 4.0, 4.0, 8.0]])
    # λ = 0: one-step TD targets r + d v'
    assert torch.allclose(lambda_return(reward, discount, value, 0.0), torch.tensor([[3.0, 3.0, 5.0]]))
    # λ = 1: discounted Monte-Carlo return bootstrapped with the last value: 1 + .5(1 + .5(1 + .5·8))
    assert torch.allclose(lambda_return(reward, discount, value, 1.0)[0, 0], torch.tensor(2.75))


def test_lambda_return_cut_at_a_new_episode():
    # the step out of state 1 starts a new episode: R_1 = v_1, and R_0 bootstraps from it
    reward = torch.tensor([[1.0, 100.0, 1.0]])
    discount = torch.full((1, 3), 0.5)
    value = torch.tensor([[0.0, 4.0, 6.0, 8.0]])
    cut = torch.tensor([[False, True, False]])
    out = lambda_return(reward, discount, value, 1.0, cut)
    assert torch.allclose(out, torch.tensor([[1.0 + 0.5 * 4.0, 4.0, 1.0 + 0.5 * 8.0]]))
    # without cuts it is the plain λ-return
    assert torch.equal(
        lambda_return(reward, discount, value, 0.7, torch.zeros_like(cut)), lambda_return(reward, discount, value, 0.7)
    )


def test_symlog_symexp():
    x = torch.tensor([-100.0, -1.0, 0.0, 0.5, 1000.0])
    assert torch.allclose(symlog(x), torch.sign(x) * torch.log(torch.abs(x) + 1))
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert abs(symlog(torch.tensor(math.e - 1)).item() - 1) < 1e-6


def test_return_scale_percentile_range_with_floor_and_ema():
    scale = ReturnScale(decay=0.5)
    returns = torch.arange(101.0)  # 5th percentile 5, 95th 95
    assert scale.update(returns).item() == 90.0
    assert scale.update(torch.zeros(10)).item() == 45.0  # 0.5 · 90 + 0.5 · 0
    small = ReturnScale()
    assert small.update(torch.tensor([0.1, 0.2])).item() == 1.0  # floored at 1


def test_kl_split_free_bits_and_gradients():
    post = D.Independent(D.Normal(torch.zeros(3, requires_grad=True), torch.ones(3)), 1)
    loc = torch.tensor([1.0, 0.0, 0.0], requires_grad=True)
    prior = D.Independent(D.Normal(loc, torch.ones(3)), 1)
    dyn, rep, raw = kl_split(post, prior, free_bits=0.0)
    assert torch.allclose(raw, torch.tensor(0.5))  # KL of unit Gaussians 1 apart = ½ · 1²
    dyn.backward()
    assert loc.grad is not None and post.base_dist.loc.grad is None  # the dynamics term trains only the prior
    dyn, rep, _ = kl_split(post, prior, free_bits=1.0)
    assert dyn.item() == 1.0 and rep.item() == 1.0  # below the free nats the loss is flat


def test_one_hot_dist_straight_through():
    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    dist = OneHotDist(logits)
    sample = dist.rsample()
    assert sample.detach().sum() == 1.0 and set(sample.detach().flatten().tolist()) <= {0.0, 1.0}
    (sample * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    mixed = OneHotDist(torch.tensor([100.0, 0.0]), unimix=0.01)
    assert mixed.probs.min().item() >= 0.005 - 1e-6


def test_two_hot_by_hand():
    bins = torch.tensor([-2.0, 0.0, 1.0, 4.0])
    x = torch.tensor([0.25, 2.5, -5.0, 4.0, 1.0])
    expected = torch.tensor(
        [
            [0.0, 0.75, 0.25, 0.0],  # between 0 and 1, a quarter of the way
            [0.0, 0.0, 0.5, 0.5],  # halfway between 1 and 4
            [1.0, 0.0, 0.0, 0.0],  # clipped to the first bin
            [0.0, 0.0, 0.0, 1.0],  # on the last bin
            [0.0, 0.0, 1.0, 0.0],  # on a bin
        ]
    )
    assert torch.allclose(two_hot(x, bins), expected)
    assert torch.allclose((two_hot(x, bins) * bins).sum(-1), x.clamp(-2, 4))  # decodes back


def test_two_hot_symlog_prediction_round_trips_and_learns():
    bins = symlog_bins(255)
    targets = torch.tensor([-1000.0, -3.0, 0.0, 0.7, 12345.0])
    # logits equal to the log of the target's two-hot weights predict the target exactly
    perfect = TwoHotSymlog(torch.log(two_hot(symlog(targets), bins) + 1e-12), bins)
    assert torch.allclose(perfect.mean, targets, rtol=1e-3, atol=1e-3)
    logits = torch.zeros(5, 255, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(600):
        loss = TwoHotSymlog(logits, bins).loss(targets).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(symlog(TwoHotSymlog(logits, bins).mean), symlog(targets), atol=0.05)


def test_exponential_noise_is_what_exponential_draws():
    """The fast Exp(1) draws are `Tensor.exponential_`'s, bit for bit here, and leave the generator where it
    leaves it (float64 is `exponential_` itself)."""
    from worldmodels.nn.dists import exponential_noise

    cases = [((1,), torch.float32), ((300, 7), torch.float32), ((64, 33), torch.float64)]
    for seed, (shape, dtype) in enumerate(cases):
        like = torch.zeros(shape, dtype=dtype)
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        drawn = exponential_noise(like, ours)
        expected = torch.empty_like(like).exponential_(1, generator=theirs)
        assert drawn.dtype == dtype and torch.equal(drawn, expected)
        assert torch.equal(ours.get_state(), theirs.get_state())


def test_exponential_noise_traces_at_a_symbolic_size():
    """`torch.compile` traces the draws when the batch size is symbolic, as MCTS's compiled search does from
    its second batch size on (`torch.rand(..., generator=None)` refused that shape)."""
    from worldmodels.nn.dists import exponential_noise, sample_index

    traced = torch.compile(lambda p: sample_index(p), backend="eager", dynamic=True)
    for rows in (3, 5):
        index = traced(torch.ones(rows, 4))
        assert index.shape == (rows,) and exponential_noise(torch.ones(rows)).min() > 0


def test_sample_index_draws_what_multinomial_draws():
    """`sample_index` is `torch.multinomial(p, 1)` without its checks: the same indices from the same
    generator, leaving it in the same state, for unnormalised weights with zeros and for views."""
    from worldmodels.nn.dists import sample_index

    for seed, shape in enumerate([(1, 4), (16, 3), (5, 2, 18), (256, 2), (3, 7, 5)]):
        weights = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) ** 3
        if seed == 4:
            weights = weights.transpose(0, 1)  # a view, not contiguous
            shape = weights.shape
        weights[..., 1:] *= torch.rand(shape[:-1] + (shape[-1] - 1,)) > 0.2  # some zeros, never a whole row
        weights[..., 0] += 1e-3
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        drawn = sample_index(weights, ours)
        expected = torch.multinomial(weights.reshape(-1, shape[-1]), 1, generator=theirs).reshape(shape[:-1])
        assert torch.equal(drawn, expected) and torch.equal(ours.get_state(), theirs.get_state())
        assert weights.gather(-1, drawn[..., None]).gt(0).all()
