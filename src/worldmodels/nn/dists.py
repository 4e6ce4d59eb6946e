"""Distributions and transforms used by the heads: symlog, one-hot categorical with straight-through
gradients, and tanh-squashed Normal."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as D


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · ln(|x| + 1): compresses large magnitudes, identity-like near 0."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `symlog`."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def perplexity(codes: torch.Tensor, vocab: int) -> torch.Tensor:
    """e^(entropy of how often each of `vocab` codes occurs in `codes` `[...]`): how many codes are in use,
    from 1 (one code) to `vocab` (all equally)."""
    p = torch.bincount(codes.flatten(), minlength=vocab).float()
    p = p / p.sum()
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum())


def sample_index(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of non-negative weights `[..., K]` (not necessarily normalised), drawn in proportion
    to them: argmax p / q with q ~ Exp(1). These are `torch.multinomial(p, 1)`'s own draws, the same numbers
    from the same generator, without its checks of the whole tensor, which cost it more than the draw."""
    rows = probs.reshape(-1, probs.shape[-1])  # as multinomial takes them (its noise fills rows in this layout)
    return (rows / exponential_noise(rows, generator)).argmax(-1).reshape(probs.shape[:-1])


def exponential_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Exp(1) draws shaped like `like`: `Tensor.exponential_`'s own numbers, leaving the generator in the same
    state. For float32 on a CPU it draws one float64 uniform u per element and rounds −log1p(−u), element by
    element in scalar code; the same formula over the whole tensor is 3–7 × faster (2.6 or 6.5 → 0.9 ms for
    131k draws on one thread, `benchmarks/exponential_speed.py`). Its float64 log1p differs from the scalar
    one in the last bit for about 8 % of draws, so a float32 draw can differ in its last bit where that bit
    decides the rounding (none in 12M draws tried); elsewhere (other dtypes, devices) this is `exponential_`
    itself."""
    if like.device.type != "cpu" or like.dtype != torch.float32:
        return torch.empty_like(like).exponential_(1, generator=generator)
    u = torch.empty(like.shape, dtype=torch.float64).uniform_(generator=generator)  # torch.rand's numbers; unlike
    # torch.rand(..., generator=None), traceable by torch.compile at a symbolic batch size (MCTS's compiled search)
    return u.neg_().log1p_().neg_().to(like.dtype)


class SymlogMSE:
    """A point prediction made in symlog space: loss is MSE there, the mean is symexp of the output."""

    def __init__(self, pred: torch.Tensor, use_symlog: bool = True):
        self.pred = pred
        self.use_symlog = use_symlog

    @property
    def mean(self) -> torch.Tensor:
        return symexp(self.pred) if self.use_symlog else self.pred

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """Squared error per element, summed over no dims: `[...]` like `target`."""
        target = symlog(target) if self.use_symlog else target
        return (self.pred - target) ** 2


class OneHotDist:
    """Categorical over `[..., n]` logits with one-hot samples; `rsample` passes straight-through gradients.

    `unimix` mixes that fraction of the uniform distribution into the probabilities (DreamerV2/V3).
    """

    def __init__(self, logits: torch.Tensor, unimix: float = 0.0):
        if unimix > 0:
            probs = F.softmax(logits, -1)
            probs = (1 - unimix) * probs + unimix / logits.shape[-1]
            logits = torch.log(probs)
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.probs = self.logits.exp()

    @property
    def mode(self) -> torch.Tensor:
        return F.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).to(self.logits.dtype)

    def sample(self) -> torch.Tensor:
        return F.one_hot(sample_index(self.probs), self.logits.shape[-1]).to(self.logits.dtype)

    def rsample(self) -> torch.Tensor:
        sample = self.sample()
        return sample + self.probs - self.probs.detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return (value * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)


class TanhNormal:
    """A diagonal Normal squashed by tanh into (-1, 1), with the change-of-variables log-probability."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.base = D.Normal(mean, std)

    @property
    def mode(self) -> torch.Tensor:
        return torch.tanh(self.base.mean)

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample()

    def rsample(self) -> torch.Tensor:
        return torch.tanh(self.base.rsample())

    def sample_from(self, eps: torch.Tensor) -> torch.Tensor:
        """The sample whose standard-normal draw is `eps` (noise coloured in time, say)."""
        return torch.tanh(self.base.mean + self.base.stddev * eps)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = value.clamp(-1 + 1e-6, 1 - 1e-6)
        pre = torch.atanh(value)
        return (self.base.log_prob(pre) - self._log_det(pre)).sum(-1)

    def entropy(self) -> torch.Tensor:
        # No closed form; a one-sample estimate is unbiased and what actor losses need.
        pre = self.base.rsample()
        return (self.base.entropy() + self._log_det(pre)).sum(-1)

    @staticmethod
    def _log_det(pre: torch.Tensor) -> torch.Tensor:
        return 2 * (math.log(2) - pre - F.softplus(-2 * pre))


class ClippedNormal:
    """DreamerV3's continuous policy: Normal with tanh mean and bounded std; samples clipped to [-1, 1]."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.base = D.Normal(mean, std)

    @property
    def mode(self) -> torch.Tensor:
        return self.base.mean

    def sample(self) -> torch.Tensor:
        with torch.no_grad():
            return self.base.sample().clamp(-1, 1)

    def rsample(self) -> torch.Tensor:
        raw = self.base.rsample()
        return raw + (raw.clamp(-1, 1) - raw).detach()  # clip the value, keep the gradient

    def sample_from(self, eps: torch.Tensor) -> torch.Tensor:
        """The sample whose standard-normal draw is `eps` (noise coloured in time, say)."""
        return (self.base.mean + self.base.stddev * eps).clamp(-1, 1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.base.log_prob(value).sum(-1)

    def entropy(self) -> torch.Tensor:
        return self.base.entropy().sum(-1)
