"""KL terms of latent world models: the dynamics/representation split with free bits (DreamerV3 eq. 5), and
World Models' VAE loss, whose KL is free below a tolerance."""

from __future__ import annotations

import torch
from torch import distributions as D


def detach_dist(dist: D.Distribution) -> D.Distribution:
    """The same distribution with gradients stopped at its parameters."""
    if isinstance(dist, D.Independent):
        return D.Independent(detach_dist(dist.base_dist), dist.reinterpreted_batch_ndims)
    if isinstance(dist, D.Normal):
        return D.Normal(dist.loc.detach(), dist.scale.detach())
    if isinstance(dist, D.OneHotCategorical):
        return type(dist)(logits=dist.logits.detach())
    raise TypeError(f"detach_dist does not know {type(dist).__name__}")


def kl_split(
    post: D.Distribution, prior: D.Distribution, free_bits: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two halves of KL(post ‖ prior), each clipped below at `free_bits` nats.

    dynamics loss = max(free, KL(sg(post) ‖ prior))   trains the prior towards the posterior;
    representation loss = max(free, KL(post ‖ sg(prior)))   keeps the posterior predictable.
    Returns (dyn, rep, raw KL), each `[...]` over the distributions' batch shape.
    """
    dyn = D.kl_divergence(detach_dist(post), prior)
    rep = D.kl_divergence(post, detach_dist(prior))
    return dyn.clamp(min=free_bits), rep.clamp(min=free_bits), dyn.detach()


def tolerant_elbo(
    recon: torch.Tensor, q: D.Independent, kl_tolerance: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The paper's V loss from the mean reconstruction term and the posterior q `[N, Z]`: recon + the mean of
    KL(q ‖ N(0, I)) floored at `kl_tolerance` nats per latent dimension; and its parts as metrics."""
    prior = D.Independent(D.Normal(torch.zeros_like(q.mean), torch.ones_like(q.mean)), 1)
    kl = D.kl_divergence(q, prior)  # [N]
    loss = recon + kl.clamp(min=kl_tolerance * q.mean.shape[-1]).mean()
    return loss, {"vae/loss": loss.detach(), "vae/recon": recon.detach(), "vae/kl": kl.mean().detach()}
